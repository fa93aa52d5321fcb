r"""Parameter servers with ``tf.distribute.ParameterServerStrategy`` and a ``ClusterCoordinator``.

The parameter servers hold :math:`\mathbf w` and :math:`\mathbf V` split by rows into shards
(``variable_partitioner``); the coordinator (the chief) schedules steps on the workers. A
step on a worker *pulls* :math:`w_0` and the rows :math:`\mathbf w_U, \mathbf V_U` of the
distinct features :math:`U` of its batch, computes the gradient of the batch's mean squared
error with respect to them, and *pushes* one SGD update per pulled row,

.. math::

    \mathbf v_i \leftarrow \mathbf v_i - \eta\, \frac{\partial}{\partial \mathbf v_i}
    \frac{1}{|B|} \sum_{(\mathbf x, y) \in B} (y - \hat y(\mathbf x))^2, \qquad i \in U,

with ``scatter_sub`` on the sharded variable (each server receives only its own rows).
Workers do not wait for each other (asynchronous SGD): the result is close to, but not
equal to, one process's. Chapter "Training on several machines".
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
from fmlib.distributed.shards import epoch_order

SHUFFLE_BUFFER = 1 << 16  # examples a worker shuffles among within one shard


def sharded_shapes(variable) -> list[tuple[tuple[int, ...], str]]:
    """``[(shape, device), ...]`` of the shards of a ``ShardedVariable`` (one entry for an
    unsharded variable): where each block of rows lives."""
    parts = getattr(variable, "variables", [variable])
    return [(tuple(v.shape), v.device) for v in parts]


def make_ps_step(strategy: tf.distribute.Strategy, model, lr: float, batch_size: int):
    """The compiled step a worker runs: pull rows, gradient, push row updates; returns the
    batch's mean squared error (before the update)."""

    def replica_step(batch):
        p = pull_rows(model.w0, model.w, model.V, batch.ids)  # pull
        sse, g0, gw, gV = row_gradients(p, batch, 1.0 / batch_size)
        model.w0.assign_sub(lr * g0)  # push
        model.w.scatter_sub(tf.IndexedSlices(lr * gw, p.uid))
        model.V.scatter_sub(tf.IndexedSlices(lr * gV, p.uid))
        return sse / batch_size

    @tf.function
    def step(iterator):
        return strategy.run(replica_step, args=(next(iterator),))

    return step


def make_shard_step(step, batch_size: int):
    """The unit of work the coordinator schedules: one shard, read by the worker that runs
    it (shuffled within a buffer, in batches; the last may be smaller), one ``step`` per
    batch; returns the shard's sum of squared errors (before each batch's update)."""

    @tf.function
    def shard_step(file, n_batches):
        ds = tf.data.TFRecordDataset(file).shuffle(SHUFFLE_BUFFER)
        iterator = iter(ds.batch(batch_size).map(parse_batch).prefetch(2))
        sse = tf.constant(0.0)
        for _ in tf.range(n_batches):
            sse += step(iterator) * batch_size
        return sse

    return shard_step


def train_parameter_server(
    coordinator,
    model,
    train_files,
    *,
    validation_files=None,
    num_epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.01,
    on_epoch=None,
    checkpoints=None,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Train ``model`` by asynchronous SGD on parameter servers; run it on the coordinator.

    Args:
        coordinator: a ``tf.distribute.coordinator.ClusterCoordinator`` of a
            ``ParameterServerStrategy``.
        model: a float32 :class:`~fmlib.FactorizationMachine` created under the strategy's
            scope (with a ``variable_partitioner``, its ``w`` and ``V`` are sharded).
        train_files: TFRecord file(s) or a glob of them (:func:`~fmlib.distributed.write_shards`).
            Every file is one unit of work: each epoch the coordinator schedules every file
            once, in an order drawn from ``(seed, epoch)``
            (:func:`~fmlib.distributed.shards.epoch_order`), and the worker that runs it
            reads that file alone; use several files per worker. A worker lost mid-file has
            its file re-run on another worker (the updates it had pushed stay).
        validation_files: evaluated on the coordinator after every epoch.
        num_epochs, batch_size, lr: as in :func:`fmlib.fit` with ``optimizer="sgd"``.
        on_epoch: called with each history row (a dict).
        checkpoints: a :class:`~fmlib.distributed.checkpoints.Checkpoints`: after at least
            ``every`` steps' worth of files the coordinator waits for the scheduled files and
            saves (the unit counted is the file); a resumed run schedules the files after
            the last checkpoint. A lost parameter server ends the run: resume it.
        seed: the seed of the files' order.

    Returns:
        The history table of :func:`fmlib.fit` (``loss``, ``val_loss``, ``val_rmse``);
        ``history.attrs["epoch_seconds"]``: wall-clock seconds of each epoch's steps.
    """
    train_files, validation_files, num_epochs, batch_size, lr, seed = check_training(
        model, train_files, validation_files, num_epochs, batch_size, lr, seed
    )
    if not isinstance(coordinator, tf.distribute.coordinator.ClusterCoordinator):
        raise TypeError(
            "`coordinator` must be a tf.distribute.coordinator.ClusterCoordinator; "
            f"got {type(coordinator).__name__}."
        )
    strategy = coordinator.strategy
    check_created_in(strategy, model)
    counts = file_counts(train_files)
    n_batches = [-(-c // batch_size) for c in counts]
    if sum(counts) < batch_size:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the {sum(counts)} examples."
        )
    shard_step = make_shard_step(
        make_ps_step(strategy, model, lr, batch_size), batch_size
    )
    F = len(train_files)
    start = 0 if checkpoints is None else checkpoints.track(model_state(model))
    rows, seconds, since = [], [], 0
    steps_done = (start // F) * sum(n_batches) + sum(
        n_batches[f] for f in epoch_order(F, seed or 0, start // F + 1)[: start % F]
    )
    for epoch in range(start // F + 1, num_epochs + 1):
        started, losses = time.perf_counter(), []
        order = epoch_order(F, seed or 0, epoch)
        for j in range(max(0, start - (epoch - 1) * F), F):
            f = order[j]
            losses.append(
                (
                    coordinator.schedule(
                        shard_step, args=(train_files[f], n_batches[f])
                    ),
                    f,
                )
            )
            since, steps_done = since + n_batches[f], steps_done + n_batches[f]
            unit = (epoch - 1) * F + j + 1
            if checkpoints is not None and since >= checkpoints.every:
                coordinator.join()
                checkpoints.save(unit, steps_done)
                since = 0
        coordinator.join()
        seconds.append(time.perf_counter() - started)
        seen = sum(counts[f] for _, f in losses)
        train_loss = sum(float(v.fetch()) for v, _ in losses) / seen
        rows.append(epoch_row(epoch, train_loss, model, validation_files))
        if on_epoch is not None:
            on_epoch(rows[-1])
    if checkpoints is not None and since:
        checkpoints.save(num_epochs * F, steps_done)
    return history_frame(rows, seconds)
