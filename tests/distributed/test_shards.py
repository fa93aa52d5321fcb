"""fmlib.distributed input by file and checkpoints, in this process: shards and their
manifest against the rows written, the vectorised encoder against the CSR input, each
example read exactly once per epoch by two synchronous workers and by the
parameter-server shard closures, and a resumed run equal to an uninterrupted one."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

import fmlib
from fmlib import distributed as dist
from fmlib.data.stream import stream_ratings
from fmlib.distributed import shards as shards_mod
from fmlib.distributed.ps import make_shard_step
from fmlib.distributed.records import encode_examples, file_counts
from fmlib.distributed.sync import plan_steps, sharded_batches


def _id_rows(N, n=3):
    """N rows whose target y is the row's number (to see which rows a worker read)."""
    rng = np.random.default_rng(0)
    X = sp.random(N, n, density=0.6, format="csr", random_state=1, dtype=np.float32)
    X = X + sp.csr_matrix(
        (np.ones(N, np.float32), (np.arange(N), rng.integers(0, n, N)))
    )
    return sp.csr_matrix(X, dtype=np.float32), np.arange(N, dtype=np.float32)


def test_encoded_examples_parse_back_to_the_csr_rows():
    X, y = _id_rows(57, n=6)
    X = X.tolil()
    X[3] = 0  # a row without non-zeros
    X = X.tocsr()
    X.eliminate_zeros()
    parsed = tf.io.parse_example(encode_examples(X, y), dist.records.FEATURES)
    rows = parsed["ids"].indices[:, 0].numpy()
    np.testing.assert_array_equal(rows, np.repeat(np.arange(57), np.diff(X.indptr)))
    np.testing.assert_array_equal(parsed["ids"].values.numpy(), X.indices)
    np.testing.assert_array_equal(parsed["values"].values.numpy(), X.data)
    np.testing.assert_array_equal(parsed["y"].numpy(), y)


def test_write_shards_deals_rows_in_turn_and_the_manifest_counts_them(tmp_path):
    stream = stream_ratings(40, 30, n_ratings=1000, chunk_size=300, seed=2)
    files = dist.write_shards(stream.chunks(), tmp_path / "s", 3)
    manifest = dist.read_manifest(tmp_path / "s")
    assert manifest["n_features"] == stream.n_features == 70
    # counts read from the files themselves, not from the manifest
    read = [
        int(tf.data.TFRecordDataset(f).reduce(np.int64(0), lambda n, _: n + 1))
        for f in files
    ]
    assert read == list(manifest["files"].values()) == [334, 333, 333]
    assert file_counts(files) == read
    X = sp.vstack([x for x, _ in stream.chunks()]).tocsr()
    y = np.concatenate([t for _, t in stream.chunks()])
    for s, f in enumerate(files):  # shard s holds rows s, s + 3, s + 6, ... in order
        (batch,) = list(dist.read_batches([f], 1000))
        np.testing.assert_array_equal(batch.y.numpy(), y[s::3])
        np.testing.assert_array_equal(batch.ids.numpy(), X[s::3].indices)


def test_a_glob_names_the_shards_in_order_and_a_bad_one_is_named(tmp_path):
    X, y = _id_rows(20)
    files = dist.write_shards([(X, y)], tmp_path, 4)
    assert dist.records.check_files(str(tmp_path / "train-*.tfrecord"), "f") == files
    with pytest.raises(ValueError, match="`train_files`: no file matches"):
        dist.records.check_files(str(tmp_path / "nope-*.tfrecord"), "train_files")


@pytest.mark.parametrize("n_shards", [2, 4])
def test_two_workers_on_their_shards_see_every_example_once_per_epoch(
    tmp_path, n_shards
):
    N, B = 96, 8  # 48 rows per worker: 12 local batches of 4 each
    X, y = _id_rows(N)
    files = dist.write_shards([(X, y)], tmp_path, n_shards)
    steps, by_file = plan_steps(file_counts(files), 2, B)
    assert (steps, by_file) == (12, True)
    orders = []
    for epoch in (1, 2):
        make = sharded_batches(
            files, N, B, True, 7, steps=steps, by_file=True, epoch=epoch
        )
        per_worker = [
            np.concatenate(
                [b.y.numpy() for b in make(tf.distribute.InputContext(2, r, 2))]
            )
            for r in range(2)
        ]
        for r, seen in enumerate(per_worker):  # worker r read only its own shards
            mine = np.concatenate([y[s::n_shards] for s in range(r, n_shards, 2)])
            np.testing.assert_array_equal(np.sort(seen), np.sort(mine))
        everything = np.concatenate(per_worker)
        np.testing.assert_array_equal(np.sort(everything), y)  # each row exactly once
        orders.append(everything)
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch
    # resuming after 5 steps of epoch 2 reads the rest of epoch 2's order
    make = sharded_batches(
        files, N, B, True, 7, steps=steps, by_file=True, epoch=2, skip=5
    )
    rest = np.concatenate(
        [b.y.numpy() for b in make(tf.distribute.InputContext(2, 0, 2))]
    )
    np.testing.assert_array_equal(rest, orders[1][: len(orders[1]) // 2][5 * 4 :])


def test_plan_steps_uses_the_smallest_worker_share():
    assert plan_steps([50, 40, 30], 2, 10) == (min(80 // 5, 40 // 5), True)
    assert plan_steps([100], 2, 10) == (10, False)  # one file: shared by example
    assert plan_steps([30, 30], 3, 12) == (5, False)  # fewer files than workers


def test_parameter_server_shard_closures_read_each_example_once_per_epoch(tmp_path):
    """The unit the coordinator schedules (one shard, the last batch partial) run here with
    a step that counts the rows it is given; an epoch schedules every shard once."""
    N, B = 103, 8
    X, y = _id_rows(N)
    files = dist.write_shards([(X, y)], tmp_path, 5)
    seen = tf.Variable(tf.zeros(N, tf.int32))

    @tf.function
    def counting_step(iterator):
        batch = next(iterator)
        seen.scatter_nd_add(
            tf.cast(batch.y, tf.int32)[:, None], tf.ones_like(batch.y, tf.int32)
        )
        return tf.reduce_sum(batch.y) / B  # shard_step multiplies by B: the sum of y

    shard_step = make_shard_step(counting_step, B)
    counts = file_counts(files)
    for epoch in (1, 2):
        order = shards_mod.epoch_order(len(files), 0, epoch)
        assert sorted(order) == list(range(5))
        total = sum(float(shard_step(files[f], -(-counts[f] // B))) for f in order)
        assert total == pytest.approx(y.sum())
        np.testing.assert_array_equal(seen.numpy(), np.full(N, epoch))


class _Crash(Exception):
    pass


class _CrashAfter(dist.Checkpoints):
    """Checkpoints that stop the run (as a lost worker would) right after saving ``at``."""

    def __init__(self, *args, at, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def save(self, unit, steps=None):
        super().save(unit, steps)
        if unit == self.at:
            raise _Crash


def _sync_run(files, n, epochs, checkpoints, optimizer, seed=3, init_seed=3):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        fm = fmlib.FactorizationMachine(n, k=3, init_std=0.1, seed=init_seed)
    history = dist.train_multi_worker(
        strategy, fm, files, num_epochs=epochs, batch_size=16, lr=0.1, seed=seed,
        optimizer=optimizer,
        checkpoints=checkpoints,
    )  # fmt: skip
    return history, {
        k: tf.convert_to_tensor(v).numpy() for k, v in fm.get_weights().items()
    }


@pytest.mark.parametrize("n_shards, optimizer", [(1, "sgd"), (3, "adam")])
def test_a_resumed_run_applies_every_step_once(tmp_path, n_shards, optimizer):
    """Stopped after the checkpoint at step 8 (of 3 epochs of 6 steps) and resumed, the run
    ends with the weights of an uninterrupted one: no step repeated, none lost (Adam: its
    slots and step counter are in the checkpoint too)."""
    X, y, _, _ = dist.synthetic_split(20, 15, 110, seed=1)  # 99 rows: 6 batches of 16
    files = dist.write_shards([(X, y)], tmp_path / "data", n_shards)
    say = []
    _, reference = _sync_run(files, X.shape[1], 3, None, optimizer)
    crash = _CrashAfter(tmp_path / "ck", 4, at=8, say=say.append)
    with pytest.raises(_Crash):
        _sync_run(files, X.shape[1], 3, crash, optimizer)
    assert say == ["checkpoint step=4", "checkpoint step=8"]
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        dist.Checkpoints(tmp_path / "ck", 4)
    resumed = dist.Checkpoints(tmp_path / "ck", 4, resume=True, say=say.append)
    history, weights = _sync_run(
        files, X.shape[1], 3, resumed, optimizer, init_seed=11
    )  # init overwritten
    assert say[2].endswith("at step=8") and say[3:] == [
        "checkpoint step=12",
        "checkpoint step=16",
        "checkpoint step=18",
    ]
    assert list(history.index) == [2, 3]
    for name, value in reference.items():
        np.testing.assert_allclose(
            weights[name], value, rtol=1e-6, atol=1e-7, err_msg=name
        )
