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
from fmlib.distributed.evaluation import epoch_row, history_frame
from fmlib.distributed.lookup import pull_rows, row_gradients
from fmlib.distributed.records import count_examples, parse_batch


def sharded_batches(files, n_examples: int, global_batch: int, shuffle: bool, seed):
    """``dataset_fn(input_context)`` for ``distribute_datasets_from_function``: this worker's
    part of each of the ``n_examples // global_batch`` global batches (the rest is dropped)."""
    steps = n_examples // global_batch

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(files)
        if (
            shuffle
        ):  # the same seed on every worker: the same order, then disjoint shards
            ds = ds.shuffle(n_examples, seed=seed, reshuffle_each_iteration=True)
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        local = context.get_per_replica_batch_size(global_batch)
        return ds.batch(local, drop_remainder=True).take(steps).map(parse_batch)

    return dataset_fn


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
) -> pd.DataFrame:
    r"""Train ``model`` by synchronous SGD on every worker of ``strategy``; run it on each worker.

    Args:
        strategy: a ``tf.distribute.MultiWorkerMirroredStrategy`` (any synchronous strategy
            works, e.g. ``MirroredStrategy`` on one machine).
        model: a float32 :class:`~fmlib.FactorizationMachine` created under ``strategy.scope()``.
        train_files: TFRecord file(s) of :func:`~fmlib.distributed.records.write_examples`, readable by
            every worker; each worker keeps its shard of every global batch.
        validation_files: evaluated after every epoch (each worker, its own copy of the model).
        num_epochs: passes over the data; each has ``N // batch_size`` steps (the last,
            partial global batch is dropped, so that every worker takes the same steps).
        batch_size: the global batch :math:`|B|`, divisible by the number of replicas.
        lr: the SGD learning rate :math:`\eta`.
        shuffle: reshuffle every epoch; every worker uses ``seed``, so all shuffle alike.
        seed: the shuffling seed (needed when ``shuffle``).
        on_epoch: called with each history row (a dict), e.g. to print progress.

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
    n_examples = count_examples(train_files)
    steps = n_examples // batch_size
    if steps == 0:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the {n_examples} examples."
        )
    dataset = strategy.distribute_datasets_from_function(
        sharded_batches(train_files, n_examples, batch_size, shuffle, seed)
    )
    step = make_sync_step(strategy, model, lr, batch_size)
    rows, seconds = [], []
    for epoch in range(1, num_epochs + 1):
        started = time.perf_counter()
        sse = sum(float(step(batch)) for batch in dataset)
        seconds.append(time.perf_counter() - started)
        rows.append(
            epoch_row(epoch, sse / (steps * batch_size), model, validation_files)
        )
        if on_epoch is not None:
            on_epoch(rows[-1])
    return history_frame(rows, seconds)
