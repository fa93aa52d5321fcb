r"""The step of both distributed trainers: loss, row gradients, penalty, lazy optimizer.

A batch :math:`B` touches the distinct features :math:`U`. Its loss is the squared error
(``task="regression"``) or the logistic loss of the logit :math:`\hat y` with labels in
{0, 1} (``task="classification"``), as in :func:`fmlib.fit`; the gradient of the mean
loss with respect to the pulled rows :math:`w_U, \mathbf V_U` (and :math:`w_0`) is that of
:func:`fmlib.fit` with ``updates="sparse"``. The penalty's gradient is added to the rows
:math:`U` (``fmlib.learning.sparse.row_penalty``):

.. math::

    \begin{aligned}
    \mathbf g_u &\mathrel{+}= 2\lambda\,\theta_u && (\text{present}), \\
    \mathbf g_u &\mathrel{+}= 2\lambda\,\frac{c_u}{|B|}\,\theta_u && (\text{occurrence}),
    \end{aligned}

with :math:`c_u` the rows of :math:`B` holding feature :math:`u`; the global penalty (plain
SGD only) decays every row, :math:`\theta \leftarrow (1 - 2\eta\lambda)\theta`, before the
data step. Then the lazy rule of :mod:`fmlib.learning.lazy_optimizers` (SGD, Adagrad or
Adam; the same class methods ``coefficient`` and ``update``) changes the rows :math:`U`
and their slots, and nothing else:

.. math::

    \begin{aligned}
    (\Delta_U, \mathbf s_U) &\leftarrow \mathrm{update}(\mathbf g_U, \mathbf s_U, c_t), \\
    \theta_U &\leftarrow \theta_U - \Delta_U .
    \end{aligned}

The slots :math:`\mathbf s` (Adagrad's accumulator, Adam's :math:`\mathbf m, \mathbf v`)
have the shape of their variable and are created under the strategy's scope: mirrored on
every worker with ``MultiWorkerMirroredStrategy``, and with ``ParameterServerStrategy``
split into the same blocks of rows as :math:`\mathbf w` and :math:`\mathbf V`, each block
created on the server of its rows (:func:`slot_like`), so that each parameter server holds
the slots of its own rows and a step reads and writes only the rows :math:`U` (a gather
and a scatter per slot). Chapter "Training on several
machines".
"""

from __future__ import annotations

import tensorflow as tf

from fmlib.distributed.lookup import (
    Batch,
    Pulled,
    batch_gradients,
    gather_rows,
    pull_rows,
)
from fmlib.learning.lazy_optimizers import LAZY_OPTIMIZERS
from fmlib.learning.sparse import row_penalty


def _shards(variable) -> list:
    """The blocks of rows of a ``ShardedVariable``; ``[variable]`` otherwise."""
    return list(getattr(variable, "variables", [variable]))


def slot_like(strategy, variable, init, name: str):
    """A variable of ``variable``'s shape filled with ``init``, placed as ``variable``.

    A ``ShardedVariable`` gets a ``ShardedVariable`` slot whose every shard is created
    next to the same block of rows (``colocate_vars_with``): the strategy's round-robin
    would otherwise put shard ``j`` of the slot on another server than shard ``j`` of the
    rows, and every step would send the slots' rows across the network.
    """
    parts = _shards(variable)
    slots = []
    for j, part in enumerate(parts):
        with strategy.extended.colocate_vars_with(part):
            slots.append(
                tf.Variable(
                    tf.fill(part.shape, init), trainable=False, name=f"{name}/part_{j}"
                )
            )
    if parts == [variable]:
        return slots[0]
    return tf.__internal__.distribute.ShardedVariable(slots, name=name)


@tf.autograph.experimental.do_not_convert  # autograph breaks ``extended.update``
def scatter_rows(variable, method: str, rows: tf.IndexedSlices) -> None:
    """``variable.<method>(rows)`` (``"scatter_update"`` or ``"scatter_sub"``), writing only
    the rows ``rows.indices`` and reading nothing back.

    A mirrored variable's own ``scatter_sub`` returns the updated table, which TensorFlow
    reads whole on every copy (a full copy of the buffer once it has been updated by
    rows); the strategy's ``update`` with ``group=False`` writes each copy and returns
    nothing that is read.
    """
    if isinstance(variable, tf.distribute.DistributedValues):
        variable.distribute_strategy.extended.update(
            variable,
            lambda copy, r: getattr(copy, method)(r),
            args=(rows,),
            group=False,
        )
    else:
        getattr(variable, method)(rows)


class RowOptimizer(tf.Module):
    r"""A lazy optimizer on a distributed FM: slots beside their rows, one update rule.

    The constructor creates the slots under ``strategy.scope()``, each with its variable's
    shape and dtype and placed with it (:func:`slot_like`): mirrored like a mirrored
    variable, and for a ``ShardedVariable`` one shard per shard of rows, on the same
    parameter server. ``iterations`` counts the steps (Adam's :math:`t`).

    Args:
        strategy: the model's strategy.
        model: a :class:`fmlib.FactorizationMachine` created under ``strategy.scope()``.
        optimizer: ``"sgd"``, ``"adagrad"`` or ``"adam"`` (their lazy forms).
        lr: the learning rate :math:`\eta`.
        regularization: ``"present"``, ``"occurrence"`` or ``"global"`` (SGD only).
        lambda_w, lambda_v: the L2 strengths.
    """

    def __init__(
        self, strategy, model, optimizer, lr, regularization, lambda_w, lambda_v
    ):
        super().__init__(name=f"row_{optimizer}")
        self.model, self.rule = model, LAZY_OPTIMIZERS[optimizer]
        self.regularization = regularization
        dtype = model.V.dtype
        self.lr = tf.constant(lr, dtype)
        self.lambda_w, self.lambda_v = (
            tf.constant(v, dtype) for v in (lambda_w, lambda_v)
        )
        init = tf.constant(self.rule.slot_init, dtype)
        with strategy.scope():
            self.iterations = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="iterations"
            )
            self.slots = {
                name: {
                    slot: slot_like(strategy, var, init, f"{name}_{slot}")
                    for slot in self.rule.slot_names
                }
                for name, var in (("w0", model.w0), ("w", model.w), ("V", model.V))
            }

    def apply(self, g0, uid, g_w, g_V, counts, batch_size, w_U=None, V_U=None):
        """One step on the distinct rows ``uid`` with their data gradients ``g_w``, ``g_V``
        and non-zero counts (``w_U``, ``V_U``: the rows, if already pulled)."""
        model = self.model
        if self.regularization == "global":  # every row decays (plain SGD)
            for var, lam in ((model.w, self.lambda_w), (model.V, self.lambda_v)):
                for part in _shards(var):
                    part.assign(part * (1 - 2 * self.lr * lam), read_value=False)
        else:
            if w_U is None:
                w_U = gather_rows(model.w, uid)
                V_U = gather_rows(model.V, uid)
            g_w, g_V = row_penalty(
                self.regularization,
                g_w,
                g_V,
                w_U,
                V_U,
                counts,
                batch_size,
                self.lambda_w,
                self.lambda_v,
            )
        coef = self.rule.coefficient(self.lr, self.iterations + 1)
        slots = self.slots["w0"]
        step, new = self.rule.update(
            g0, {name: s.read_value() for name, s in slots.items()}, coef
        )
        model.w0.assign_sub(step)
        for name, slot in slots.items():
            slot.assign(new[name])
        for name, var, g in (("w", model.w, g_w), ("V", model.V, g_V)):
            slots = self.slots[name]
            old = {s: gather_rows(v, uid) for s, v in slots.items()}
            step, new = self.rule.update(g, old, coef)
            for s, v in slots.items():
                scatter_rows(v, "scatter_update", tf.IndexedSlices(new[s], uid))
            scatter_rows(var, "scatter_sub", tf.IndexedSlices(step, uid))
        self.iterations.assign_add(1)


def make_sync_step(strategy, opt: RowOptimizer, task: str, global_batch: int):
    r"""The compiled synchronous step: each replica's row gradients of its share of the
    global mean loss, all-gathered (``IndexedSlices``), summed per distinct row, then one
    update everywhere; returns the global batch's summed loss."""
    model = opt.model

    def replica(batch):
        pulled = _pull(model, batch)
        loss, g0, g_w, g_V, counts = batch_gradients(
            pulled, batch, task, 1.0 / global_batch
        )
        rows = tf.concat([g_w[:, None], g_V, counts[:, None]], axis=1)
        return loss, g0, tf.IndexedSlices(rows, pulled.uid)

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica, args=(batch,))
        loss, g0, rows = (strategy.reduce("SUM", t, axis=None) for t in per_replica)
        uid, pos = tf.unique(rows.indices)  # a row in two replicas: one summed row
        summed = tf.math.unsorted_segment_sum(rows.values, pos, tf.size(uid))
        opt.apply(g0, uid, summed[:, 0], summed[:, 1:-1], summed[:, -1], global_batch)
        return loss

    return step


def make_ps_step(strategy, opt: RowOptimizer, task: str, batch_size: int):
    """The compiled step a worker runs on parameter servers: pull the rows, their
    gradients, push the update of the rows and their slots; returns the batch's mean loss
    (before the update)."""
    model = opt.model

    def replica_step(batch):
        pulled = _pull(model, batch)
        loss, g0, g_w, g_V, counts = batch_gradients(
            pulled, batch, task, 1.0 / batch_size
        )
        opt.apply(
            g0,
            pulled.uid,
            g_w,
            g_V,
            counts,
            batch_size,
            pulled.w_rows,
            pulled.V_rows,
        )
        return loss / batch_size

    @tf.function
    def step(iterator):
        return strategy.run(replica_step, args=(next(iterator),))

    return step


def _pull(model, batch: Batch) -> Pulled:
    """``w0`` and the rows of ``w`` and ``V`` that ``batch`` touches."""
    return pull_rows(model.w0, model.w, model.V, batch.ids)
