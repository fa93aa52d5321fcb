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
all-gathered and summed per distinct row), and every worker applies the same lazy step
of :mod:`fmlib.distributed.optimizers` (SGD: :math:`\theta \leftarrow \theta - \eta
\sum_r g_r`; or Adagrad, Adam, with a penalty) to its copy of the parameters and of the
optimizer's slots: the copies stay identical, and the run equals one process's
``fit(updates="sparse")`` on the full batches. The same holds for the logistic loss
(``task="classification"``). Chapter "Training on several machines".
"""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from fmlib.distributed._checks import (
    check_created_in,
    check_optimization,
    check_training,
)
from fmlib.distributed.evaluation import train_epochs
from fmlib.distributed.optimizers import RowOptimizer, make_sync_step
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
        # a pipeline feeds num_replicas_in_sync / num_input_pipelines replicas per step
        per_step = context.num_replicas_in_sync // context.num_input_pipelines
        return (
            ds.batch(local, drop_remainder=True).take(steps * per_step).map(parse_batch)
        )

    return dataset_fn


def train_multi_worker(
    strategy: tf.distribute.Strategy,
    model,
    train_files,
    *,
    validation_files=None,
    num_epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.01,
    optimizer: str = "sgd",
    regularization: str = "present",
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
    task: str | None = None,
    shuffle: bool = True,
    seed: int | None = 0,
    on_epoch=None,
) -> pd.DataFrame:
    r"""Train ``model`` synchronously on every worker of ``strategy``; run it on each worker.

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
        lr: the learning rate :math:`\eta`.
        optimizer: ``"sgd"``, ``"adagrad"`` or ``"adam"``, in the lazy form of
            ``fit(updates="sparse")``; the slots are mirrored like the weights.
        regularization, lambda_w, lambda_v: the penalty, as in :func:`fmlib.fit` with
            ``updates="sparse"`` (``"present"``, ``"occurrence"``, or ``"global"`` with SGD).
        task: ``"regression"`` or ``"classification"`` (logistic loss, labels {0, 1} or
            {-1, +1}); None follows ``model.task``. Sets ``model.task``.
        shuffle: reshuffle every epoch; every worker uses ``seed``, so all shuffle alike.
        seed: the shuffling seed (needed when ``shuffle``).
        on_epoch: called with each history row (a dict), e.g. to print progress.

    Returns:
        The history table of :func:`fmlib.fit` (from :func:`fmlib.learning.loop.run_epochs`):
        ``loss`` (mean loss of the epoch's batches before their steps), ``val_loss``,
        ``val_rmse`` or ``val_accuracy``; identical on every worker.
        ``history.attrs["epoch_seconds"]``: wall-clock seconds of each epoch's steps.

    Raises:
        fmlib.TrainingDivergedError: a loss or weight became NaN or infinite.
    """
    train_files, validation_files, num_epochs, batch_size, lr, seed = check_training(
        model, train_files, validation_files, num_epochs, batch_size, lr, seed
    )
    optimizer, regularization, lambda_w, lambda_v, task = check_optimization(
        model, optimizer, regularization, lambda_w, lambda_v, task, "train_multi_worker"
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
    opt = RowOptimizer(
        strategy, model, optimizer, lr, regularization, lambda_w, lambda_v
    )
    step = make_sync_step(strategy, opt, task, batch_size)
    model.task = task

    def run_epoch() -> float:
        return sum(float(step(batch)) for batch in dataset) / (steps * batch_size)

    return train_epochs(
        model, run_epoch, num_epochs, task, validation_files, lr, on_epoch
    )
