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
from fmlib.distributed.evaluation import train_epochs
from fmlib.distributed.optimizers import RowOptimizer, make_ps_step
from fmlib.distributed.records import count_examples, parse_batch


def sharded_shapes(variable) -> list[tuple[tuple[int, ...], str]]:
    """``[(shape, device), ...]`` of the shards of a ``ShardedVariable`` (one entry for an
    unsharded variable): where each block of rows lives."""
    parts = getattr(variable, "variables", [variable])
    return [(tuple(v.shape), v.device) for v in parts]


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
) -> pd.DataFrame:
    r"""Train ``model`` asynchronously on parameter servers; run it on the coordinator.

    Args:
        coordinator: a ``tf.distribute.coordinator.ClusterCoordinator`` of a
            ``ParameterServerStrategy``.
        model: a float32 :class:`~fmlib.FactorizationMachine` created under the strategy's
            scope (with a ``variable_partitioner``, its ``w`` and ``V`` are sharded).
        train_files: TFRecord file(s) readable by every worker. Each worker streams all of
            them, shuffled in its own (unseeded) order and repeated, as the TensorFlow guide
            advises for this strategy; an epoch is ``N // batch_size``
            steps, whichever workers run them.
        validation_files: evaluated on the coordinator after every epoch.
        num_epochs, batch_size, lr: as in :func:`fmlib.fit`.
        optimizer, regularization, lambda_w, lambda_v, task: as in
            :func:`~fmlib.distributed.train_multi_worker` (``fit(updates="sparse")``'s);
            the optimizer's slots are sharded like ``w`` and ``V``.
        on_epoch: called with each history row (a dict).

    Returns:
        The history table of :func:`fmlib.fit` (``loss``, ``val_loss``, ``val_rmse`` or
        ``val_accuracy``; :func:`fmlib.learning.loop.run_epochs`);
        ``history.attrs["epoch_seconds"]``: wall-clock seconds of each epoch's steps.

    Raises:
        fmlib.TrainingDivergedError: a loss or weight became NaN or infinite.
    """
    train_files, validation_files, num_epochs, batch_size, lr, _ = check_training(
        model, train_files, validation_files, num_epochs, batch_size, lr, None
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
    n_examples = count_examples(train_files)
    steps = n_examples // batch_size
    if steps == 0:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than the {n_examples} examples."
        )

    def dataset_fn():
        ds = tf.data.TFRecordDataset(train_files).shuffle(min(n_examples, 1 << 20))
        return (
            ds.repeat()
            .batch(batch_size, drop_remainder=True)
            .map(parse_batch)
            .prefetch(2)
        )

    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))
    opt = RowOptimizer(
        strategy, model, optimizer, lr, regularization, lambda_w, lambda_v
    )
    step = make_ps_step(strategy, opt, task, batch_size)
    model.task = task

    def run_epoch() -> float:
        losses = [coordinator.schedule(step, args=(iterator,)) for _ in range(steps)]
        coordinator.join()
        return sum(float(v.fetch()) for v in losses) / steps

    return train_epochs(
        model, run_epoch, num_epochs, task, validation_files, lr, on_epoch
    )
