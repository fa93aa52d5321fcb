"""fmlib.distributed with the optimizers, penalties and tasks of fit(updates="sparse").

* The synchronous step on two replicas (a MirroredStrategy over two logical CPUs) against a
  numpy loop of the lazy update: eq. (4) summed over the batch, the penalty of the rows
  present, Keras' SGD / Adagrad / Adam rules on those rows, slots included.
* train_multi_worker on two replicas against fmlib.fit(updates="sparse") in one process.
* ParameterServerStrategy (an in-process cluster, run in a fresh interpreter): the slots are
  ShardedVariables whose shards sit on the parameter servers of their rows' shards, and an
  asynchronous Adam run ends within 5% of one process's test RMSE.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_gradient, fm_loop

import fmlib
from fmlib import distributed as dist
from fmlib.distributed.optimizers import RowOptimizer, make_sync_step
from fmlib.distributed.sync import sharded_batches

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SUBPROCESS_TIMEOUT = 300  # seconds (a bound: the run takes far less)

# Keras' defaults, which fit(updates="sparse") uses (written here independently)
ADAGRAD_INIT, EPS, BETA_1, BETA_2 = 0.1, 1e-7, 0.9, 0.999


def _two_cpus() -> bool:
    return len(tf.config.list_logical_devices("CPU")) >= 2


def _ran_in_fresh_process(request) -> bool:
    """When this process already fixed its devices (one CPU), run the test in a fresh
    pytest process, where conftest.py gives two, and require that it passes."""
    if _two_cpus():
        return False
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            request.node.nodeid,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return True


def _two_replicas() -> tf.distribute.MirroredStrategy:
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


# ---------------------------------------------------------------- the numpy reference


def _rule(name, theta, g, slots, t, lr):
    """One lazy update of parameters ``theta`` with gradient ``g`` (Keras' equations)."""
    if name == "sgd":
        return theta - lr * g
    if name == "adagrad":
        slots["accumulator"] = slots["accumulator"] + g * g
        return theta - lr * g / np.sqrt(slots["accumulator"] + EPS)
    slots["m"] = BETA_1 * slots["m"] + (1 - BETA_1) * g
    slots["v"] = BETA_2 * slots["v"] + (1 - BETA_2) * g * g
    alpha = lr * np.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
    return theta - alpha * slots["m"] / (np.sqrt(slots["v"]) + EPS)


SLOTS = {"sgd": {}, "adagrad": {"accumulator": ADAGRAD_INIT}, "adam": {"m": 0, "v": 0}}


def numpy_lazy_steps(X, y, weights, batch, optimizer, regularization, lam, task, lr):
    """The weights and slots after one lazy step per consecutive batch of ``batch`` rows."""
    w0, w, V = (np.array(weights[k], np.float64) for k in ("w0", "w", "V"))
    slots = {
        name: {
            s: np.full(np.shape(v), init, np.float64)
            for s, init in SLOTS[optimizer].items()
        }
        for name, v in (("w0", w0), ("w", w), ("V", V))
    }
    lw, lv = lam
    for t, s in enumerate(range(0, len(y), batch), start=1):
        Xb, yb = X[s : s + batch], y[s : s + batch]
        y_hat = fm_loop(Xb, w0, w, V)
        if task == "regression":
            d = 2 * (y_hat - yb) / len(yb)
        else:
            d = (1 / (1 + np.exp(-y_hat)) - (yb > 0)) / len(yb)
        g0, gw, gV = d.sum(), np.zeros_like(w), np.zeros_like(V)
        for r in range(len(yb)):
            _, dw, dV = fm_gradient(Xb[r], V)
            gw, gV = gw + d[r] * dw, gV + d[r] * dV
        U = np.flatnonzero((Xb != 0).any(axis=0))
        c = (Xb != 0).sum(axis=0)[U]
        if regularization == "global":  # every row decays
            w, V = w * (1 - 2 * lr * lw), V * (1 - 2 * lr * lv)
        else:
            share = 2 * c / len(yb) if regularization == "occurrence" else 2 + 0 * c
            gw[U] += lw * share * w[U]
            gV[U] += lv * share[:, None] * V[U]
        w0 = _rule(optimizer, w0, g0, slots["w0"], t, lr)
        for theta, g, name in ((w, gw, "w"), (V, gV, "V")):
            rows = {k: v[U] for k, v in slots[name].items()}
            theta[U] = _rule(optimizer, theta[U], g[U], rows, t, lr)
            for k, v in rows.items():
                slots[name][k][U] = v
    return {"w0": w0, "w": w, "V": V}, slots


def _problem(seed=0, N=24, n=11, k=3):
    """Rows with 1-4 non-zeros of any value, features shared between rows."""
    rng = np.random.default_rng(seed)
    X = np.zeros((N, n), np.float32)
    for r in range(N):
        cols = rng.choice(n, size=rng.integers(1, 5), replace=False)
        X[r, cols] = rng.normal(0, 1.2, cols.size)
    weights = dict(
        w0=np.float32(0.3),
        w=rng.normal(0, 0.5, n).astype(np.float32),
        V=rng.normal(0, 0.5, (n, k)).astype(np.float32),
    )
    return X, rng.normal(1, 1, N).astype(np.float32), weights


CASES = [
    ("sgd", "present", "regression"),
    ("sgd", "occurrence", "regression"),
    ("sgd", "global", "regression"),
    ("adagrad", "present", "regression"),
    ("adagrad", "occurrence", "regression"),
    ("adam", "present", "regression"),
    ("adam", "occurrence", "regression"),
    ("sgd", "occurrence", "classification"),
    ("adagrad", "present", "classification"),
    ("adam", "present", "classification"),
]


def _two_replica_step(tmp_path, X, y, weights, settings, task, batch):
    """``(strategy, fm, opt, step, data)``: an FM with ``weights`` on two replicas, its
    ``RowOptimizer(optimizer, lr, regularization, lambda_w, lambda_v)`` (``settings``), the
    synchronous step and the batches of ``(X, y)`` in order."""
    dist.write_examples(tmp_path / "t.tfrecord", sp.csr_matrix(X), y)
    strategy = _two_replicas()
    with strategy.scope():
        fm = fmlib.FactorizationMachine(X.shape[1], k=3)
    fm.set_weights(**weights)
    optimizer, lr, regularization, lambda_w, lambda_v = settings
    opt = RowOptimizer(strategy, fm, optimizer, lr, regularization, lambda_w, lambda_v)
    step = make_sync_step(strategy, opt, task, batch)
    data = strategy.distribute_datasets_from_function(
        sharded_batches([str(tmp_path / "t.tfrecord")], len(y), batch, False, None)
    )
    return strategy, fm, opt, step, data


@pytest.mark.parametrize("optimizer,regularization,task", CASES)
def test_two_replica_step_equals_the_numpy_lazy_update_with_its_slots(
    request, tmp_path, optimizer, regularization, task
):
    if _ran_in_fresh_process(request):
        return
    X, y, p = _problem(seed=len(optimizer) + len(regularization))
    if task == "classification":
        y = (y > 1).astype(np.float32)
    batch, lr, lam = 8, 0.1, (0.05, 0.1)
    strategy, fm, opt, step, data = _two_replica_step(
        tmp_path, X, y, p, (optimizer, lr, regularization, *lam), task, batch
    )
    for b in data:
        step(b)
    ref, ref_slots = numpy_lazy_steps(
        X.astype(np.float64), y, p, batch, optimizer, regularization, lam, task, lr
    )
    for name in ("w0", "w", "V"):
        trained = tf.convert_to_tensor(getattr(fm, name)).numpy()
        np.testing.assert_allclose(
            trained, ref[name], rtol=2e-4, atol=2e-6, err_msg=name
        )
        assert not np.allclose(trained, p[name])  # the steps moved it
        assert set(opt.slots[name]) == set(SLOTS[optimizer])
        for slot, value in ref_slots[name].items():
            np.testing.assert_allclose(
                tf.convert_to_tensor(opt.slots[name][slot]).numpy(),
                value,
                rtol=2e-4,
                atol=2e-7,
                err_msg=f"{name} {slot}",
            )


def _reads_of_whole_tables(graph, tables) -> list[str]:
    """The ``ReadVariableOp`` of ``graph`` (and of the functions it calls) whose output has
    the shape of one of ``tables``: a full read of a table (or a slot)."""
    shapes = {tuple(t.shape) for t in tables}
    found = []
    for op in graph.get_operations():
        if op.type == "ReadVariableOp" and tuple(op.outputs[0].shape) in shapes:
            found.append(op.name)
    for fn in graph._functions.values():  # nested function bodies, if any
        found += _reads_of_whole_tables(fn.graph, tables)
    return found


@pytest.mark.parametrize(
    "optimizer,regularization",
    [("sgd", "present"), ("adagrad", "occurrence"), ("adam", "present")],
)
def test_the_two_replica_step_reads_rows_never_a_whole_table(
    request, tmp_path, optimizer, regularization
):
    """A full read of a mirrored table in the step costs O(n k) per step (TensorFlow copies
    a row-updated variable whole on every dense read): the compiled step must gather
    and scatter rows only, for w, V and every slot."""
    if _ran_in_fresh_process(request):
        return
    X, y, p = _problem(seed=1)
    strategy, fm, opt, step, data = _two_replica_step(
        tmp_path, X, y, p, (optimizer, 0.1, regularization, 0.01, 0.01), "regression", 8
    )
    batch = next(iter(data))
    graph = step.get_concrete_function(batch).graph
    tables = [fm.w, fm.V] + [s for name in ("w", "V") for s in opt.slots[name].values()]
    assert len(tables) == 2 + 2 * len(SLOTS[optimizer])
    assert _reads_of_whole_tables(graph, tables) == []
    gathers = [op for op in graph.get_operations() if op.type == "ResourceGather"]
    # the pull (w, V on each replica), the penalty's rows and the slots' rows
    assert len(gathers) == 2 * 2 + 2 + 2 * len(SLOTS[optimizer])
    # the global penalty does read whole tables (it decays every row): the check sees it
    opt_global = RowOptimizer(strategy, fm, "sgd", 0.1, "global", 0.01, 0.01)
    global_step = make_sync_step(strategy, opt_global, "regression", 8)
    assert _reads_of_whole_tables(
        global_step.get_concrete_function(batch).graph, [fm.w, fm.V]
    )


@pytest.mark.parametrize(
    "optimizer,regularization,task",
    [
        ("sgd", "occurrence", "regression"),
        ("adagrad", "present", "regression"),
        ("adam", "present", "regression"),
        ("adam", "occurrence", "classification"),
    ],
)
def test_two_replicas_train_as_fit_sparse_in_one_process(
    request, tmp_path, optimizer, regularization, task
):
    if _ran_in_fresh_process(request):
        return
    X, y, Xt, yt = dist.synthetic_split(40, 30, 600, seed=3)  # 540 rows: 9 batches
    if task == "classification":
        y, yt = (y > 3).astype(np.float32), (yt > 3).astype(np.float32)
    dist.write_examples(tmp_path / "t.tfrecord", X, y)
    dist.write_examples(tmp_path / "v.tfrecord", Xt, yt)
    settings = dict(
        optimizer=optimizer,
        regularization=regularization,
        lambda_w=0.01,
        lambda_v=0.02,
        lr=0.05,
        batch_size=60,
        num_epochs=2,
    )
    strategy = _two_replicas()
    with strategy.scope():
        fm = fmlib.FactorizationMachine(X.shape[1], k=4, init_std=0.1, seed=5)
    history = dist.train_multi_worker(
        strategy,
        fm,
        [str(tmp_path / "t.tfrecord")],
        validation_files=[str(tmp_path / "v.tfrecord")],
        shuffle=False,
        task=task,
        **settings,
    )
    ref = fmlib.FactorizationMachine(X.shape[1], k=4, init_std=0.1, seed=5)
    ref_history = fmlib.fit(
        ref,
        X,
        y,
        updates="sparse",
        shuffle=False,
        task=task,
        validation_data=(Xt, yt),
        **settings,
    )
    assert list(history.columns) == list(ref_history.columns)
    np.testing.assert_allclose(history.to_numpy(), ref_history.to_numpy(), rtol=1e-4)
    for name, value in ref.get_weights().items():
        trained = tf.convert_to_tensor(getattr(fm, name)).numpy()
        np.testing.assert_allclose(trained, value, rtol=1e-4, atol=1e-6, err_msg=name)
    assert fm.task == task


def test_new_arguments_are_checked_and_named(tmp_path):
    X, y, _, _ = dist.synthetic_split(10, 8, 60, seed=0)
    dist.write_examples(tmp_path / "t.tfrecord", X, y)
    files = [str(tmp_path / "t.tfrecord")]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        fm = fmlib.FactorizationMachine(X.shape[1], k=2)
    train = dist.train_multi_worker
    with pytest.raises(ValueError, match="`optimizer` must be one of .*got 'rmsprop'"):
        train(strategy, fm, files, optimizer="rmsprop")
    with pytest.raises(ValueError, match="`regularization` must be one of .*got 'l1'"):
        train(strategy, fm, files, regularization="l1")
    with pytest.raises(
        ValueError, match="regularization='global' needs optimizer='sgd'"
    ):
        train(strategy, fm, files, optimizer="adam", regularization="global")
    with pytest.raises(ValueError, match="`lambda_w` must be a finite number >= 0"):
        train(strategy, fm, files, lambda_w=-1.0)
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        train(strategy, fm, files, lr=0.0)
    with pytest.raises(ValueError, match="`task`"):
        train(strategy, fm, files, task="ranking")
    fm.task = "classification"
    with pytest.raises(ValueError, match="conflicts with the model's task"):
        train(strategy, fm, files, task="regression")


# ---------------------------------------------------------------- parameter servers


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ps_main(run_dir: str) -> None:
    """In a fresh interpreter: an in-process cluster of 2 workers and 2 parameter servers
    (the TensorFlow guide's), the slots' placement, then an asynchronous Adam run."""
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    ports = _free_ports(4)
    spec = tf.train.ClusterSpec(
        {
            "worker": [f"localhost:{p}" for p in ports[:2]],
            "ps": [f"localhost:{p}" for p in ports[2:]],
        }
    )
    threads = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4)
    for job, count in (("worker", 2), ("ps", 2)):
        for i in range(count):
            tf.distribute.Server(
                spec, job, i, protocol="grpc", config=threads, start=True
            )
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, rpc_layer="grpc"
    )
    strategy = tf.distribute.ParameterServerStrategy(
        resolver,
        variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(
            2
        ),
    )
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        fm = fmlib.FactorizationMachine(config["n"], k=4, seed=0)
    opt = RowOptimizer(strategy, fm, "adam", 0.01, "present", 0.0, 0.0)
    placement = {
        name: {
            "variable": dist.sharded_shapes(getattr(fm, name)),
            "kinds": sorted({type(s).__name__ for s in opt.slots[name].values()}),
            "slots": {k: dist.sharded_shapes(v) for k, v in opt.slots[name].items()},
        }
        for name in ("w", "V")
    }
    history = dist.train_parameter_server(
        coordinator,
        fm,
        [str(run / "t.tfrecord")],
        validation_files=[str(run / "v.tfrecord")],
        **config["settings"],
    )
    (run / "result.json").write_text(
        json.dumps({"placement": placement, "val_rmse": history["val_rmse"].tolist()})
    )


def test_parameter_servers_shard_the_slots_with_their_rows_and_adam_trains(tmp_path):
    X, y, Xt, yt = dist.synthetic_split(150, 100, 6000, seed=4)
    dist.write_examples(tmp_path / "t.tfrecord", X, y)
    dist.write_examples(tmp_path / "v.tfrecord", Xt, yt)
    settings = dict(
        optimizer="adam",
        regularization="present",
        lambda_w=0.001,
        lambda_v=0.001,
        lr=0.01,
        batch_size=64,
        num_epochs=3,
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"n": X.shape[1], "settings": settings})
    )
    code = (
        f"import sys; sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent)!r}]; "
        f"import test_optimizers; test_optimizers.ps_main({str(tmp_path)!r})"
    )
    env = dict(os.environ, GRPC_FAIL_FAST="use_caller", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    for name, place in result["placement"].items():
        rows = place["variable"]
        assert len(rows) == 2 and sum(s[0][0] for s in rows) == X.shape[1]
        assert len({device for _, device in rows}) == 2  # one shard per server
        assert place["kinds"] == ["ShardedVariable"]
        assert set(place["slots"]) == {"m", "v"}
        for slot in place["slots"].values():
            assert slot == rows, (name, slot, rows)  # same rows on the same server

    ref = fmlib.FactorizationMachine(X.shape[1], k=4, seed=0)
    fmlib.fit(ref, X, y, updates="sparse", seed=0, **settings)
    ref_rmse = fmlib.evaluate(ref, Xt, yt)["rmse"]
    ps_rmse = result["val_rmse"][-1]
    assert abs(ps_rmse - ref_rmse) <= 0.05 * ref_rmse, (ps_rmse, ref_rmse)


def test_worker_flags_reach_the_trainers_and_bad_combinations_are_refused():
    from fmlib.distributed import task

    args = task.training_parser().parse_args(
        "--optimizer adam --regularization occurrence --lambda-w 0.5 --lambda-v 0.25 "
        "--task classification".split()
    )
    assert task._optimization(args) == {
        "optimizer": "adam",
        "regularization": "occurrence",
        "lambda_w": 0.5,
        "lambda_v": 0.25,
        "task": "classification",
    }
    defaults = task._optimization(task.training_parser().parse_args([]))
    assert defaults == {
        "optimizer": "sgd",
        "regularization": "present",
        "lambda_w": 0.0,
        "lambda_v": 0.0,
        "task": "regression",
    }
    bad = task.training_parser().parse_args(
        "--optimizer adagrad --regularization global --lambda-w -1".split()
    )
    assert task.flag_errors(bad, task.TRAINING_BOUNDS) == [
        "--lambda-w must be >= 0; got -1.0",
        "--regularization global needs --optimizer sgd (lazy adagrad cannot apply "
        "a penalty with a gradient in every row)",
    ]
