r"""Synchronous data parallelism with ``tf.distribute.MultiWorkerMirroredStrategy``.

Every worker holds a copy of :math:`w_0, \mathbf w, \mathbf V` and reads its own shard of
every global batch :math:`B` (``tf.data``: shuffle alike with one seed, then
``shard(workers, index)``). Worker :math:`r` computes the gradient of its share of the
global mean loss,

.. math::

    g_r = \nabla_\theta \frac{1}{|B|} \sum_{(\mathbf x, y) \in B_r} (y - \hat y(\mathbf x))^2,
    \qquad \sum_r g_r = \nabla_\theta \frac{1}{|B|} \sum_{(\mathbf x, y) \in B}
    (y - \hat y(\mathbf x))^2 ,

the strategy all-reduces :math:`\sum_r g_r` (row gradients, ``IndexedSlices``, are
all-gathered), and every worker applies the same SGD step
:math:`\theta \leftarrow \theta - \eta \sum_r g_r`: the copies stay identical, and the run
equals one process on the full batches. Chapter "Training on several machines".
"""

from __future__ import annotations

import time

import pandas as pd
import tensorflow as tf

from fmlib.distributed._checks import check_created_in, check_training
from fmlib.distributed.checkpoints import model_state
from fmlib.distributed.evaluation import epoch_row, history_frame
from fmlib.distributed.lookup import pull_rows, row_gradients
from fmlib.distributed.records import file_counts, parse_batch
from fmlib.distributed.shards import worker_files

SHUFFLE_BUFFER = (
    1 << 16
)  # examples a worker shuffles among when it reads its own shards


def sharded_batches(
    files,
    n_examples: int,
    global_batch: int,
    shuffle: bool,
    seed,
    *,
    steps: int | None = None,
    by_file: bool = False,
    epoch: int | None = None,
    skip: int = 0,
):
    """``dataset_fn(input_context)`` for ``distribute_datasets_from_function``: this worker's
    part of each of the ``steps`` (default ``n_examples // global_batch``) global batches.

    ``by_file``: worker :math:`r` of :math:`W` reads only its shards
    (:func:`~fmlib.distributed.shards.worker_files`), else every worker reads all files and
    keeps every :math:`W`-th example. ``epoch``: shuffle with ``seed + epoch``, the same
    order after a restart (else reshuffle every pass); ``skip``: batches already trained."""
    steps = n_examples // global_batch if steps is None else steps

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        k, r = context.num_input_pipelines, context.input_pipeline_id
        order_seed = seed if epoch is None else seed + epoch
        again = epoch is None
        if by_file:
            mine = worker_files(files, k, r)
            ds = tf.data.Dataset.from_tensor_slices(mine)
            if shuffle:
                ds = ds.shuffle(
                    len(mine), seed=order_seed + r, reshuffle_each_iteration=again
                )
            ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(mine)))
            if shuffle:
                ds = ds.shuffle(
                    SHUFFLE_BUFFER, seed=order_seed + r, reshuffle_each_iteration=again
                )
        else:
            ds = tf.data.TFRecordDataset(files)
            if (
                shuffle
            ):  # the same seed on every worker: the same order, then disjoint shards
                ds = ds.shuffle(
                    n_examples, seed=order_seed, reshuffle_each_iteration=again
                )
            ds = ds.shard(k, r)
        local = context.get_per_replica_batch_size(global_batch)
        ds = ds.batch(local, drop_remainder=True).take(steps).skip(skip)
        return ds.map(parse_batch)

    return dataset_fn


def plan_steps(counts: list[int], workers: int, global_batch: int) -> tuple[int, bool]:
    """``(steps per epoch, by_file)``: with at least as many shards as workers (and more than
    one), each worker reads its own shards and an epoch lasts until the worker with the
    fewest examples runs out; otherwise every worker reads all files."""
    if len(counts) > 1 and len(counts) >= workers:
        local = global_batch // workers
        return min(sum(counts[r::workers]) // local for r in range(workers)), True
    return sum(counts) // global_batch, False


def make_sync_step(
    strategy: tf.distribute.Strategy, model, lr: float, global_batch: int
):
    """The compiled step: per-replica row gradients, all-reduced, one SGD update everywhere;
    returns the global batch's sum of squared errors."""

    def replica_gradients(batch):
        p = pull_rows(model.w0, model.w, model.V, batch.ids)
        sse, g0, gw, gV = row_gradients(
            p, batch, 1.0 / global_batch
        )  # this replica's share
        return sse, g0, tf.IndexedSlices(gw, p.uid), tf.IndexedSlices(gV, p.uid)

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_gradients, args=(batch,))
        sse, g0, gw, gV = (strategy.reduce("SUM", t, axis=None) for t in per_replica)
        model.w0.assign_sub(lr * g0)
        model.w.scatter_sub(tf.IndexedSlices(lr * gw.values, gw.indices))
        model.V.scatter_sub(tf.IndexedSlices(lr * gV.values, gV.indices))
        return sse

    return step


def train_multi_worker(
    strategy: tf.distribute.Strategy,
    model,
    train_files,
    *,
    validation_files=None,
    num_epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.01,
    shuffle: bool = True,
    seed: int | None = 0,
    on_epoch=None,
    checkpoints=None,
) -> pd.DataFrame:
    r"""Train ``model`` by synchronous SGD on every worker of ``strategy``; run it on each worker.

    Args:
        strategy: a ``tf.distribute.MultiWorkerMirroredStrategy`` (any synchronous strategy
            works, e.g. ``MirroredStrategy`` on one machine).
        model: a float32 :class:`~fmlib.FactorizationMachine` created under ``strategy.scope()``.
        train_files: TFRecord file(s) or a glob of them (:func:`~fmlib.distributed.write_shards`).
            With at least as many files as workers, each worker reads only its own files
            (:func:`plan_steps`); else every worker reads all and keeps its share of
            every global batch.
        validation_files: evaluated after every epoch (each worker, its own copy of the model).
        num_epochs: passes over the data; each has ``N // batch_size`` steps (the last,
            partial global batch is dropped, so that every worker takes the same steps).
        batch_size: the global batch :math:`|B|`, divisible by the number of replicas.
        lr: the SGD learning rate :math:`\eta`.
        shuffle: reshuffle every epoch; every worker uses ``seed``, so all shuffle alike.
        seed: the shuffling seed (needed when ``shuffle``).
        on_epoch: called with each history row (a dict), e.g. to print progress.
        checkpoints: a :class:`~fmlib.distributed.checkpoints.Checkpoints` (on every
            worker): save every ``every`` steps, and when resuming, start after the last
            saved step with the data order of an uninterrupted run. A lost worker ends the
            run; run it again with ``resume=True``.

    Returns:
        The history table of :func:`fmlib.fit`: ``loss`` (mean squared error of the epoch's
        batches before their steps), ``val_loss``, ``val_rmse``; identical on every worker.
        ``history.attrs["epoch_seconds"]``: wall-clock seconds of each epoch's steps.
    """
    train_files, validation_files, num_epochs, batch_size, lr, seed = check_training(
        model, train_files, validation_files, num_epochs, batch_size, lr, seed
    )
    check_created_in(strategy, model)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size` must be divisible by the {replicas} replicas; "
            f"got {batch_size}."
        )
    if shuffle and seed is None:
        raise ValueError(
            "`seed` must be set when `shuffle=True`: every worker shuffles with it, "
            "so that the shards of one epoch are disjoint."
        )
    counts = file_counts(train_files)
    n_examples = sum(counts)
    steps, by_file = plan_steps(counts, strategy.num_replicas_in_sync, batch_size)
    if steps == 0:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the {n_examples} examples."
        )
    step = make_sync_step(strategy, model, lr, batch_size)
    start = 0 if checkpoints is None else checkpoints.track(model_state(model))
    rows, seconds = [], []
    for epoch in range(start // steps + 1, num_epochs + 1):
        done = (epoch - 1) * steps
        skip = max(0, start - done)
        dataset = strategy.distribute_datasets_from_function(
            sharded_batches(
                train_files,
                n_examples,
                batch_size,
                shuffle,
                seed,
                steps=steps,
                by_file=by_file,
                epoch=epoch,
                skip=skip,
            )
        )
        started, sse = time.perf_counter(), 0.0
        for unit, batch in enumerate(dataset, done + skip + 1):
            sse += float(step(batch))
            if checkpoints is not None and checkpoints.due(unit):
                checkpoints.save(unit)
        seconds.append(time.perf_counter() - started)
        rows.append(
            epoch_row(
                epoch, sse / ((steps - skip) * batch_size), model, validation_files
            )
        )
        if on_epoch is not None:
            on_epoch(rows[-1])
    end = num_epochs * steps
    if checkpoints is not None and start < end and not checkpoints.due(end):
        checkpoints.save(end)
    return history_frame(rows, seconds)
