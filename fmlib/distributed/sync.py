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
from fmlib.distributed.checkpoints import train_epochs_from, train_state
from fmlib.distributed.optimizers import RowOptimizer, make_sync_step
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
        # a pipeline feeds num_replicas_in_sync / num_input_pipelines replicas per step
        per_step = context.num_replicas_in_sync // context.num_input_pipelines
        ds = ds.batch(local, drop_remainder=True).take(steps * per_step)
        return ds.skip(skip * per_step).map(parse_batch)

    return dataset_fn


def plan_steps(counts: list[int], workers: int, global_batch: int) -> tuple[int, bool]:
    """``(steps per epoch, by_file)``: with at least as many shards as workers (and more than
    one), each worker reads its own shards and an epoch lasts until the worker with the
    fewest examples runs out; otherwise every worker reads all files."""
    if len(counts) > 1 and len(counts) >= workers:
        local = global_batch // workers
        return min(sum(counts[r::workers]) // local for r in range(workers)), True
    return sum(counts) // global_batch, False


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
    checkpoints=None,
) -> pd.DataFrame:
    r"""Train ``model`` synchronously on every worker of ``strategy``; run it on each worker.

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
        checkpoints: a :class:`~fmlib.distributed.checkpoints.Checkpoints` (on every
            worker): save the weights and slots every ``every`` steps, and when resuming,
            start after the last saved step with the data order of an uninterrupted run.
            A lost worker ends the run; run it again with ``resume=True``.

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
    counts = file_counts(train_files)
    n_examples = sum(counts)
    steps, by_file = plan_steps(counts, input_pipelines(strategy), batch_size)
    if steps == 0:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the {n_examples} examples."
        )
    opt = RowOptimizer(
        strategy, model, optimizer, lr, regularization, lambda_w, lambda_v
    )
    step = make_sync_step(strategy, opt, task, batch_size)
    model.task = task
    start = 0 if checkpoints is None else checkpoints.track(train_state(model, opt))
    epoch = [start // steps]

    def run_epoch() -> float:
        epoch[0] += 1
        done = (epoch[0] - 1) * steps
        skip = max(0, start - done)
        dataset = strategy.distribute_datasets_from_function(
            sharded_batches(
                train_files, n_examples, batch_size, shuffle, seed,
                steps=steps, by_file=by_file, epoch=epoch[0], skip=skip,
            )
        )  # fmt: skip
        total = 0.0
        for unit, batch in enumerate(dataset, done + skip + 1):
            total += float(step(batch))
            if checkpoints is not None and checkpoints.due(unit):
                checkpoints.save(unit)
        return total / ((steps - skip) * batch_size)

    history = train_epochs_from(
        start // steps + 1, model, run_epoch, num_epochs, task, validation_files, lr,
        on_epoch,
    )  # fmt: skip
    end = num_epochs * steps
    if checkpoints is not None and start < end and not checkpoints.due(end):
        checkpoints.save(end)
    return history


def input_pipelines(strategy) -> int:
    """The number of workers (input pipelines) of a synchronous strategy: 1 on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))
