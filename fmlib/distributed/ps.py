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
With Adagrad or Adam (:mod:`fmlib.distributed.optimizers`) the step also gathers and
scatters the rows :math:`U` of the optimizer's slots, which are sharded like their
variables, so each server updates the slots of its own rows; a penalty and the logistic
loss enter the gradient as in ``fit(updates="sparse")``. Workers do not wait for each
other (asynchronous updates): the result is close to, but not equal to, one process's. Chapter "Training on several machines".
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
from fmlib.distributed.optimizers import RowOptimizer, make_ps_step
from fmlib.distributed.records import file_counts, parse_batch
from fmlib.distributed.shards import epoch_order

SHUFFLE_BUFFER = 1 << 16  # examples a worker shuffles among within one shard


def sharded_shapes(variable) -> list[tuple[tuple[int, ...], str]]:
    """``[(shape, device), ...]`` of the shards of a ``ShardedVariable`` (one entry for an
    unsharded variable): where each block of rows lives."""
    parts = getattr(variable, "variables", [variable])
    return [(tuple(v.shape), v.device) for v in parts]


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
    optimizer: str = "sgd",
    regularization: str = "present",
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
    task: str | None = None,
    on_epoch=None,
    checkpoints=None,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Train ``model`` asynchronously on parameter servers; run it on the coordinator.

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
        num_epochs, batch_size, lr: as in :func:`fmlib.fit`.
        optimizer, regularization, lambda_w, lambda_v, task: as in
            :func:`~fmlib.distributed.train_multi_worker` (``fit(updates="sparse")``'s);
            the optimizer's slots are sharded like ``w`` and ``V``.
        on_epoch: called with each history row (a dict).
        checkpoints: a :class:`~fmlib.distributed.checkpoints.Checkpoints`: after at least
            ``every`` steps' worth of files the coordinator waits for the scheduled files and
            saves the weights and slots (the unit counted is the file); a resumed run
            schedules the files after the last checkpoint. A lost parameter server ends the
            run: resume it.
        seed: the seed of the files' order.

    Returns:
        The history table of :func:`fmlib.fit` (``loss``, ``val_loss``, ``val_rmse`` or
        ``val_accuracy``; :func:`fmlib.learning.loop.run_epochs`);
        ``history.attrs["epoch_seconds"]``: wall-clock seconds of each epoch's steps.

    Raises:
        fmlib.TrainingDivergedError: a loss or weight became NaN or infinite.
    """
    train_files, validation_files, num_epochs, batch_size, lr, seed = check_training(
        model, train_files, validation_files, num_epochs, batch_size, lr, seed
    )
    optimizer, regularization, lambda_w, lambda_v, task = check_optimization(
        model,
        optimizer,
        regularization,
        lambda_w,
        lambda_v,
        task,
        "train_parameter_server",
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
    opt = RowOptimizer(
        strategy, model, optimizer, lr, regularization, lambda_w, lambda_v
    )
    shard_step = make_shard_step(
        make_ps_step(strategy, opt, task, batch_size), batch_size
    )
    model.task = task
    F = len(train_files)
    start = 0 if checkpoints is None else checkpoints.track(train_state(model, opt))
    epoch, since = [start // F], [0]
    steps_done = [
        (start // F) * sum(n_batches)
        + sum(
            n_batches[f] for f in epoch_order(F, seed or 0, start // F + 1)[: start % F]
        )
    ]

    def run_epoch() -> float:
        epoch[0] += 1
        order, losses = epoch_order(F, seed or 0, epoch[0]), []
        for j in range(max(0, start - (epoch[0] - 1) * F), F):
            f = order[j]
            losses.append(
                (
                    coordinator.schedule(
                        shard_step, args=(train_files[f], n_batches[f])
                    ),
                    f,
                )
            )
            since[0] += n_batches[f]
            steps_done[0] += n_batches[f]
            if checkpoints is not None and since[0] >= checkpoints.every:
                coordinator.join()
                checkpoints.save((epoch[0] - 1) * F + j + 1, steps_done[0])
                since[0] = 0
        coordinator.join()
        seen = sum(counts[f] for _, f in losses)
        return sum(float(v.fetch()) for v, _ in losses) / seen

    history = train_epochs_from(
        start // F + 1, model, run_epoch, num_epochs, task, validation_files, lr,
        on_epoch,
    )  # fmt: skip
    if checkpoints is not None and since[0]:
        checkpoints.save(num_epochs * F, steps_done[0])
    return history
