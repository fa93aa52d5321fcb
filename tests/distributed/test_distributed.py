"""fmlib.distributed: the row-lookup forward pass against eq. (1) and eq. (4), two synchronous
workers against one process, parameter servers against one process, and the launcher's
clean shutdown (a killed worker, Ctrl-C). Every subprocess has a timeout."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_gradient, fm_loop

import fmlib
from fmlib import distributed as dist

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300  # seconds for one local cluster run (a bound: they take far less)


def _sparse_problem(seed=0, N=7, n=9, k=3):
    """Distinct rows with 1-4 non-zeros of any value, features shared between rows."""
    rng = np.random.default_rng(seed)
    X = np.zeros((N, n), np.float32)
    for r in range(N):
        cols = rng.choice(n, size=rng.integers(1, 5), replace=False)
        X[r, cols] = rng.normal(0, 1.5, cols.size)
    weights = dict(
        w0=np.float32(0.4),
        w=rng.normal(0, 1, n).astype(np.float32),
        V=rng.normal(0, 0.7, (n, k)).astype(np.float32),
    )
    return X, rng.normal(3, 1, N).astype(np.float32), weights


def _batch(tmp_path, X, y):
    dist.write_examples(tmp_path / "b.tfrecord", sp.csr_matrix(X), y)
    (batch,) = list(dist.read_batches([str(tmp_path / "b.tfrecord")], len(y)))
    return batch


def test_row_lookup_forward_equals_eq1_and_the_factorization_machine(tmp_path):
    X, y, p = _sparse_problem()
    batch = _batch(tmp_path, X, y)
    y_hat = dist.fm_score_rows(p["w0"], tf.constant(p["w"]), tf.constant(p["V"]), batch)
    np.testing.assert_allclose(
        y_hat, fm_loop(X, p["w0"], p["w"], p["V"]), rtol=1e-5, atol=1e-5
    )
    fm = fmlib.FactorizationMachine(X.shape[1], k=3)
    fm.set_weights(**p)
    np.testing.assert_allclose(y_hat, fm.predict(X), rtol=1e-5, atol=1e-5)
    pulled = dist.pull_rows(
        p["w0"], tf.constant(p["w"]), tf.constant(p["V"]), batch.ids
    )
    assert sorted(pulled.uid.numpy()) == sorted(
        set(np.nonzero(X)[1])
    )  # only touched rows


def test_row_gradients_equal_eq4_summed_over_the_batch(tmp_path):
    X, y, p = _sparse_problem(seed=1)
    batch = _batch(tmp_path, X, y)
    pulled = dist.pull_rows(
        p["w0"], tf.constant(p["w"]), tf.constant(p["V"]), batch.ids
    )
    sse, g0, gw, gV = dist.lookup.row_gradients(pulled, batch, 1.0 / len(y))
    e = fm_loop(X, p["w0"], p["w"], p["V"]) - y  # d/dθ mean (y_hat - y)^2, eq. (4)
    ref0, refw, refV = 0.0, np.zeros(X.shape[1]), np.zeros_like(p["V"], float)
    for r in range(len(y)):
        d0, dw, dV = fm_gradient(X[r], p["V"])
        ref0, refw, refV = (
            ref0 + 2 * e[r] * d0,
            refw + 2 * e[r] * dw,
            refV + 2 * e[r] * dV,
        )
    uid = pulled.uid.numpy()
    np.testing.assert_allclose(sse, np.sum(e**2), rtol=1e-5)
    np.testing.assert_allclose(g0, ref0 / len(y), rtol=1e-4)
    np.testing.assert_allclose(gw, refw[uid] / len(y), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gV, refV[uid] / len(y), rtol=1e-4, atol=1e-5)
    untouched = np.setdiff1d(np.arange(X.shape[1]), uid)
    assert np.all(refw[untouched] == 0) and np.all(refV[untouched] == 0)


def _alive(pid: int) -> bool:
    """A process that still runs (a zombie, an exited but unreaped child, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _run(X, y, Xt, yt, lines, **kwargs):
    return dist.run_local(X, y, Xt, yt, timeout=RUN_TIMEOUT, say=lines.append, **kwargs)


def _pids(lines):
    return [
        int(m.group(1))
        for line in lines
        for m in [re.search(r"\(pid (\d+)\)", line)]
        if m
    ]


def test_two_synchronous_workers_equal_one_process_on_full_batches(tmp_path):
    X, y, Xt, yt = dist.synthetic_split(
        40, 30, 600, seed=3
    )  # 540 rows: 9 batches of 60
    settings = dict(k=4, num_epochs=2, batch_size=60, lr=0.1)
    lines = []
    history, result = _run(
        X,
        y,
        Xt,
        yt,
        lines,
        workers=2,
        ps=0,
        init_std=0.1,
        seed=5,
        shuffle=False,
        save=tmp_path / "fm.npz",
        **settings,
    )
    assert result["strategy"] == "multi-worker" and result["workers"] == 2
    assert len(_pids(lines)) == 2 and not any(_alive(pid) for pid in _pids(lines))

    ref = fmlib.FactorizationMachine(X.shape[1], k=4, init_std=0.1, seed=5)
    start = ref.get_weights()
    ref_history = fmlib.fit(
        ref,
        X,
        y,
        optimizer="sgd",
        shuffle=False,
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        num_epochs=2,
        validation_data=(Xt, yt),
    )
    trained = fmlib.FactorizationMachine.load(tmp_path / "fm.npz").get_weights()
    for name, value in ref.get_weights().items():
        np.testing.assert_allclose(
            trained[name], value, rtol=1e-4, atol=1e-6, err_msg=name
        )
        assert not np.allclose(value, start[name])  # training moved every parameter
    np.testing.assert_allclose(history["loss"], ref_history["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["val_rmse"], ref_history["val_rmse"], rtol=1e-5)


def test_parameter_servers_shard_V_and_train_as_well_as_one_process(tmp_path):
    X, y, Xt, yt = dist.synthetic_split(150, 100, 6000, seed=4)
    settings = dict(k=4, num_epochs=3, batch_size=64, lr=0.05)
    lines = []
    history, result = _run(
        X,
        y,
        Xt,
        yt,
        lines,
        workers=2,
        ps=2,
        seed=0,
        save=tmp_path / "fm.npz",
        **settings,
    )
    assert (result["strategy"], result["workers"], result["ps"]) == (
        "parameter-server",
        2,
        2,
    )
    assert len(_pids(lines)) == 5 and not any(_alive(pid) for pid in _pids(lines))
    shards = result["V_shards"]
    assert len(shards) == 2 and sum(shape[0] for shape, _ in shards) == X.shape[1]
    tasks = sorted(
        re.search(r"/job:ps/replica:0/task:(\d+)/", device).group(1)
        for _, device in shards
    )
    assert tasks == ["0", "1"]  # one shard per server

    ref = fmlib.FactorizationMachine(X.shape[1], k=4, seed=0)
    fmlib.fit(
        ref,
        X,
        y,
        optimizer="sgd",
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        num_epochs=settings["num_epochs"],
        seed=0,
    )
    ref_rmse = fmlib.evaluate(ref, Xt, yt)["rmse"]
    ps_rmse = history["val_rmse"].iloc[-1]
    assert abs(ps_rmse - ref_rmse) <= 0.05 * ref_rmse, (ps_rmse, ref_rmse)
    # the sharded lookups of the chief scored the test set as the gathered model does
    trained = fmlib.FactorizationMachine.load(tmp_path / "fm.npz")
    np.testing.assert_allclose(
        fmlib.evaluate(trained, Xt, yt)["rmse"], ps_rmse, rtol=1e-5
    )


def _start_cli(tmp_path, *args):
    """The launcher as a subprocess, its output in files (read with deadlines, never blocking)."""
    out, err = open(tmp_path / "out.txt", "w"), open(tmp_path / "err.txt", "w")
    cmd = [
        sys.executable,
        "-m",
        "fmlib.distributed",
        "--ratings",
        "2000",
        "--users",
        "60",
        "--items",
        "40",
        "--epochs",
        "10000",
        "--batch-size",
        "32",
        "--timeout",
        "300",
        "--run-dir",
        str(tmp_path / "run"),
        *args,
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL
    )


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def _training_started(tmp_path, launcher, n_processes, log):
    """Wait until every process was started and the trainer has finished an epoch; their pids."""
    out = tmp_path / "out.txt"
    _wait_for(
        lambda: (
            len(_pids(out.read_text().splitlines())) == n_processes
            or launcher.poll() is not None
        ),
        120,
        "the processes to start",
    )
    _wait_for(
        lambda: (
            "epoch=1 " in (tmp_path / "run" / log).read_text(errors="replace")
            or launcher.poll() is not None
        ),
        180,
        "the first epoch",
    )
    assert launcher.poll() is None, (tmp_path / "err.txt").read_text()
    return _pids(out.read_text().splitlines())


def _finish(launcher, timeout=60):
    try:
        return launcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait(timeout=10)
        raise AssertionError(f"the launcher did not exit within {timeout} s")


def test_a_killed_synchronous_worker_stops_the_cluster_with_a_clear_error(tmp_path):
    """All-reduce needs every worker: a lost one ends the run (resume from a checkpoint);
    parameter servers carry on without it (test_faults.py)."""
    launcher = _start_cli(tmp_path, "--workers", "2", "--ps", "0")
    try:
        pids = _training_started(tmp_path, launcher, 2, "worker-0.log")
        worker_1 = pids[1]  # worker 0, worker 1
        os.kill(worker_1, signal.SIGKILL)
        killed_at = time.monotonic()
        code = _finish(launcher)
        assert time.monotonic() - killed_at < 30
    finally:
        if launcher.poll() is None:
            launcher.kill()
    err = (tmp_path / "err.txt").read_text()
    assert code == 1
    assert (
        f"worker 1 (pid {worker_1}) was killed by SIGKILL before training finished"
        in err
    )
    assert not any(_alive(pid) for pid in pids)


def test_ctrl_c_stops_every_process(tmp_path):
    launcher = _start_cli(tmp_path, "--workers", "2", "--ps", "0")
    try:
        pids = _training_started(tmp_path, launcher, 2, "worker-0.log")
        launcher.send_signal(signal.SIGINT)
        code = _finish(launcher)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert code == 130
    assert "interrupted: the cluster was stopped" in (tmp_path / "err.txt").read_text()
    assert not any(_alive(pid) for pid in pids)


def test_shuffled_shards_of_the_workers_partition_every_epoch(tmp_path):
    """With one seed, the workers' shards of each epoch are disjoint and cover N // B * B rows,
    and the order changes from epoch to epoch."""
    N, B = 50, 8
    ids = np.arange(N, dtype=np.float32)  # y identifies the row
    dist.write_examples(tmp_path / "d.tfrecord", sp.csr_matrix(np.ones((N, 1))), ids)
    make = dist.sync.sharded_batches([str(tmp_path / "d.tfrecord")], N, B, True, 7)
    datasets = [make(tf.distribute.InputContext(2, r, 2)) for r in range(2)]
    epochs = []
    for _ in range(2):
        per_worker = [[b.y.numpy() for b in ds] for ds in datasets]
        assert [len(p) for p in per_worker] == [N // B, N // B]
        assert all(len(b) == B // 2 for p in per_worker for b in p)
        rows = np.concatenate([np.concatenate(p) for p in per_worker])
        assert len(np.unique(rows)) == N // B * B  # no row twice
        epochs.append(np.concatenate([np.r_[a, b] for a, b in zip(*per_worker)]))
    assert not np.array_equal(epochs[0], epochs[1])


def test_bad_arguments_are_named(tmp_path):
    X, y, _, _ = dist.synthetic_split(10, 8, 60, seed=0)
    dist.write_examples(tmp_path / "t.tfrecord", X, y)
    files = [str(tmp_path / "t.tfrecord")]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    outside = fmlib.FactorizationMachine(X.shape[1], k=2)
    with pytest.raises(ValueError, match="not created under `strategy.scope"):
        dist.train_multi_worker(strategy, outside, files)
    with strategy.scope():
        fm = fmlib.FactorizationMachine(X.shape[1], k=2)
    with pytest.raises(ValueError, match="`train_files`: no such file"):
        dist.train_multi_worker(strategy, fm, [str(tmp_path / "missing.tfrecord")])
    with pytest.raises(
        ValueError, match="`batch_size`=100 is larger than the 54 examples"
    ):
        dist.train_multi_worker(strategy, fm, files, batch_size=100)
    with pytest.raises(ValueError, match="`seed` must be set"):
        dist.train_multi_worker(strategy, fm, files, seed=None)
    with pytest.raises(TypeError, match="`model` must be a fmlib.FactorizationMachine"):
        dist.train_multi_worker(strategy, object(), files)
    with pytest.raises(ValueError, match="`workers` must be >= 1; got 0"):
        dist.launch([], tmp_path, workers=0)
    with pytest.raises(ValueError, match="`y` has 53 rows, but X has 54 rows"):
        dist.write_examples(tmp_path / "bad.tfrecord", X, y[:-1])


def test_help_and_bad_flags_answer_before_tensorflow_loads(tmp_path):
    """``python -m fmlib.distributed`` checks its flags with the package's names loaded
    lazily: a bad flag is named and ``--help`` prints, and TensorFlow is never imported."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['fmlib.distributed', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('fmlib.distributed', run_name='__main__')\n"
        "except SystemExit as e:\n    print('exit', e.code)\n"
        "print('tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for flags, code_expected in ((["--help"], 0), (["--workers", "0", "--bogus"], 2)):
        done = subprocess.run(
            [sys.executable, "-c", code, *flags],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = done.stdout.splitlines()
        assert lines[-2:] == [f"exit {code_expected}", "False"], done.stdout
        if code_expected:
            assert "unrecognized arguments: --bogus" in done.stderr
        else:
            assert "--checkpoint-dir" in done.stdout
    assert sorted(dist.__all__) == sorted(dist._EXPORTS)
    assert all(callable(getattr(dist, name)) for name in dist.__all__)


def test_one_replica_mirrored_strategy_equals_fit_in_process(tmp_path):
    """The synchronous step with one replica, in this process, is fmlib.fit's plain SGD."""
    X, y, _, _ = dist.synthetic_split(20, 15, 160, seed=2)  # 144 rows: 4 batches of 36
    dist.write_examples(tmp_path / "t.tfrecord", X, y)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        fm = fmlib.FactorizationMachine(X.shape[1], k=3, init_std=0.2, seed=1)
    history = dist.train_multi_worker(
        strategy,
        fm,
        [str(tmp_path / "t.tfrecord")],
        num_epochs=3,
        batch_size=36,
        lr=0.2,
        shuffle=False,
    )
    ref = fmlib.FactorizationMachine(X.shape[1], k=3, init_std=0.2, seed=1)
    ref_history = fmlib.fit(
        ref, X, y, optimizer="sgd", lr=0.2, batch_size=36, num_epochs=3, shuffle=False
    )
    np.testing.assert_allclose(history["loss"], ref_history["loss"], rtol=1e-5)
    np.testing.assert_allclose(fm.V.numpy(), ref.V.numpy(), rtol=1e-4, atol=1e-6)
