"""fmlib.distributed on a local parameter-server cluster with injected faults: a worker
killed mid-training (the coordinator re-runs its shard; the test RMSE stays within 5% of
one process's), a parameter server killed (the run ends with a clear error; ``resume``
continues from the last checkpoint and finishes), and no process left behind."""

import re

import pytest
import tensorflow as tf
from test_distributed import RUN_TIMEOUT, _alive, _pids

import fmlib
from fmlib import distributed as dist

SETTINGS = dict(k=4, num_epochs=3, batch_size=64, lr=0.05)
TOLERANCE = 0.05  # relative test RMSE of asynchronous SGD against one process


@pytest.fixture(scope="module")
def data():
    X, y, Xt, yt = dist.synthetic_split(150, 100, 6000, seed=4)  # 5400 rows: 85 steps
    ref = fmlib.FactorizationMachine(X.shape[1], k=4, seed=0)
    fmlib.fit(ref, X, y, optimizer="sgd", lr=0.05, batch_size=64, num_epochs=3, seed=0)
    return X, y, Xt, yt, fmlib.evaluate(ref, Xt, yt)["rmse"]


def _run(data, lines, run_dir, checkpoint_dir, **kwargs):
    X, y, Xt, yt, _ = data
    return dist.run_local(
        X, y, Xt, yt, workers=2, ps=1, seed=0, timeout=RUN_TIMEOUT, say=lines.append,
        run_dir=run_dir, checkpoint_dir=checkpoint_dir, checkpoint_every=20, **SETTINGS, **kwargs,
    )  # fmt: skip


def test_a_killed_worker_has_its_shards_rerun_and_training_finishes(tmp_path, data):
    lines = []
    history, result = _run(
        data, lines, tmp_path / "run", tmp_path / "ck", kill="worker:1@step30"
    )
    pids = _pids([line for line in lines if line.startswith("started")])
    assert len(pids) == 4 and not any(_alive(pid) for pid in pids)
    assert f"injected fault: killed worker 1 (pid {pids[2]})" in lines
    log = (tmp_path / "run" / "chief-0.log").read_text()
    assert (
        "Worker /job:worker/replica:0/task:1 failed" in log
    )  # seen by the coordinator
    steps = [int(s) for s in re.findall(r"^checkpoint step=(\d+)", log, re.M)]
    killed_after = min(s for s in steps if s >= 30)
    assert steps[-1] > killed_after  # training went on after the worker was lost
    assert list(history.index) == [1, 2, 3]
    rmse, ref_rmse = history["val_rmse"].iloc[-1], data[-1]
    assert abs(rmse - ref_rmse) <= TOLERANCE * ref_rmse, (rmse, ref_rmse)


def test_a_killed_parameter_server_ends_the_run_and_resume_finishes_it(tmp_path, data):
    lines = []
    with pytest.raises(
        dist.ClusterError, match=r"ps 0 \(pid \d+\) was killed by SIGKILL"
    ):
        _run(data, lines, tmp_path / "run1", tmp_path / "ck", kill="ps:0@step30")
    pids = _pids([line for line in lines if line.startswith("started")])
    assert len(pids) == 4 and not any(_alive(pid) for pid in pids)
    last = tf.train.latest_checkpoint(str(tmp_path / "ck"))
    unit = int(last.rsplit("-", 1)[1])  # shards done when it was saved: 8 per epoch
    assert 1 <= unit < 3 * 8
    lines = []
    history, _ = _run(data, lines, tmp_path / "run2", tmp_path / "ck", resume=True)
    assert not any(_alive(pid) for pid in _pids(lines))
    log = (tmp_path / "run2" / "chief-0.log").read_text()
    assert f"resumed from {last} at step={unit}" in log
    assert list(history.index) == list(range(unit // 8 + 1, 4))  # the epochs left
    assert tf.train.latest_checkpoint(str(tmp_path / "ck")).endswith("ckpt-24")
    rmse, ref_rmse = history["val_rmse"].iloc[-1], data[-1]
    assert abs(rmse - ref_rmse) <= TOLERANCE * ref_rmse, (rmse, ref_rmse)


def test_fault_and_resume_flags_are_checked_before_any_process_starts(capsys):
    from fmlib.distributed.__main__ import main

    assert main(["--resume", "--kill", "worker1"]) == 2
    err = capsys.readouterr().err
    assert "--resume needs --checkpoint-dir" in err
    assert "--kill must look like 'worker:1@step200'" in err
    assert dist.launcher.parse_kill("ps:0@2.5s") == dist.launcher.Kill(
        "ps", 0, None, 2.5
    )
