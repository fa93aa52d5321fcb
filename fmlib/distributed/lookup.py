r"""The FM's forward pass on the rows a batch touches: pull rows, score, push row updates.

A sparse example :math:`\mathbf x` with non-zeros :math:`x_i,\ i \in \operatorname{supp}(\mathbf
x)`, needs only the rows :math:`w_i, \mathbf v_i` of those features. With the sums
:math:`q_f(\mathbf x) = \sum_{i \in \operatorname{supp}(\mathbf x)} v_{i,f} x_i` and
:math:`q^{(2)}_f(\mathbf x) = \sum_{i \in \operatorname{supp}(\mathbf x)} v_{i,f}^2 x_i^2`,
Rendle's Lemma 3.1 gives

.. math::

    \hat y(\mathbf x) &= w_0 + \sum_{i \in \operatorname{supp}(\mathbf x)} w_i x_i \\
        &\quad + \frac12 \sum_{f=1}^{k} \big(q_f(\mathbf x)^2 - q^{(2)}_f(\mathbf x)\big).

:func:`pull_rows` gathers the distinct rows of a batch (``tf.gather`` / embedding lookup,
which on a ``ShardedVariable`` asks each parameter server only for its own rows),
:func:`score_pulled` evaluates the equation above from them, and the training steps of
``fmlib.distributed.sync`` and ``fmlib.distributed.ps`` push back one gradient row per
pulled row (:func:`batch_gradients`: the squared or the logistic loss, as in
:func:`fmlib.fit`). Chapter "Training on several machines".
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from fmlib.model.score import fm_score_unchecked

TASKS = ("regression", "classification")


class Batch(NamedTuple):
    """A minibatch of sparse examples in COO form (what ``tf.io.parse_example`` gives).

    Fields: ``rows`` ``(nnz,)`` int64, the example (row of the batch) of every non-zero;
    ``ids`` ``(nnz,)`` int64, the feature (column ``i``) of every non-zero; ``x`` ``(nnz,)``
    float32, the value :math:`x_i` of every non-zero; ``y`` ``(batch,)`` float32 targets.
    """

    rows: tf.Tensor
    ids: tf.Tensor
    x: tf.Tensor
    y: tf.Tensor


class Pulled(NamedTuple):
    """The parameters one batch needs: ``uid`` the distinct feature ids of the batch, ``pos``
    the position in ``uid`` of every non-zero, ``w0``, ``w_rows = w[uid]``, ``V_rows = V[uid]``."""

    uid: tf.Tensor
    pos: tf.Tensor
    w0: tf.Tensor
    w_rows: tf.Tensor
    V_rows: tf.Tensor


def pull_rows(w0, w, V, ids: tf.Tensor) -> Pulled:
    """Gather ``w0`` and the rows of ``w`` and ``V`` for the distinct feature ``ids`` of a batch.

    ``w`` and ``V`` may be ``tf.Variable``, ``MirroredVariable`` or ``ShardedVariable``: the
    lookup reads ``len(uid)`` rows, never the whole table (:func:`gather_rows`).
    """
    uid, pos = tf.unique(ids)
    return Pulled(
        uid,
        pos,
        tf.convert_to_tensor(w0),
        gather_rows(w, uid),
        gather_rows(V, uid),
    )


def gather_rows(table, ids: tf.Tensor) -> tf.Tensor:
    """The rows ``table[ids]``, reading only those rows.

    A ``ShardedVariable`` asks each parameter server for its own rows
    (``tf.nn.embedding_lookup``). A mirrored variable is read from its copy on this
    device (in a replica) or its first copy (across replicas) by a sparse read:
    ``tf.gather`` or ``embedding_lookup`` on the mirrored variable itself would read the
    whole table first, and once the table has been updated by rows, TensorFlow copies
    the whole buffer on every such full read.
    """
    if not isinstance(table, tf.distribute.DistributedValues):
        return tf.nn.embedding_lookup(table, ids)
    strategy = table.distribute_strategy
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.strategy is strategy:  # in strategy.run
        return tf.raw_ops.ResourceGather(
            resource=table.handle, indices=ids, dtype=table.dtype
        )
    return tf.gather(strategy.experimental_local_results(table)[0], ids)


def score_pulled(w0, w_rows, V_rows, pos, batch: Batch) -> tf.Tensor:
    r""":math:`\hat y` of every example of ``batch`` from its pulled rows; shape ``(batch,)``.

    The batch becomes a sparse matrix over its own features (column ``pos`` of each non-zero),
    and the model's Lemma 3.1 function scores it with the pulled rows: the absent features
    contribute nothing, so this is eq. (1) of the whole model (the same step as
    :class:`fmlib.learning.sparse.SparseStep`).
    """
    n_rows = tf.shape(batch.y, out_type=tf.int64)[0]
    indices = tf.stack([tf.cast(batch.rows, tf.int64), tf.cast(pos, tf.int64)], axis=1)
    X_U = tf.SparseTensor(
        indices, batch.x, tf.stack([n_rows, tf.shape(w_rows, out_type=tf.int64)[0]])
    )
    return fm_score_unchecked(w0, w_rows, V_rows, X_U)


def fm_score_rows(w0, w, V, batch: Batch) -> tf.Tensor:
    """:math:`\\hat y` of a :class:`Batch` with row lookups: :func:`pull_rows` then
    :func:`score_pulled`. Equal to ``FactorizationMachine`` on the same weights."""
    pulled = pull_rows(w0, w, V, batch.ids)
    return score_pulled(pulled.w0, pulled.w_rows, pulled.V_rows, pulled.pos, batch)


def labels(batch: Batch, task: str) -> tf.Tensor:
    """The targets of a batch; for classification the labels {0, 1} ({-1, +1} mapped so)."""
    return batch.y if task == "regression" else tf.cast(batch.y > 0, batch.y.dtype)


def example_losses(y, y_hat, task: str) -> tf.Tensor:
    r"""Each example's loss: :math:`(y - \hat y)^2`, or the logistic loss
    :math:`\log(1 + e^{\hat y}) - y\hat y` of a logit (``fmlib.model.losses``)."""
    if task == "regression":
        return tf.square(y - y_hat)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=y_hat)


def batch_gradients(pulled: Pulled, batch: Batch, task: str, scale) -> tuple:
    r"""``(loss_sum, g0, g_w, g_V, counts)``: the batch's summed loss, the gradients of
    ``scale * loss_sum`` in :math:`w_0` and the pulled rows (one per id of ``pulled.uid``),
    and :math:`c_u`, the non-zeros of each pulled feature in the batch."""
    y = labels(batch, task)
    with tf.GradientTape() as tape:
        tape.watch([pulled.w0, pulled.w_rows, pulled.V_rows])
        y_hat = score_pulled(pulled.w0, pulled.w_rows, pulled.V_rows, pulled.pos, batch)
        loss_sum = tf.reduce_sum(example_losses(y, y_hat, task))
        objective = scale * loss_sum
    grads = tape.gradient(objective, [pulled.w0, pulled.w_rows, pulled.V_rows])
    counts = tf.math.unsorted_segment_sum(
        tf.ones_like(batch.x), pulled.pos, tf.size(pulled.uid)
    )
    return (loss_sum, *(tf.convert_to_tensor(g) for g in grads), counts)


def row_gradients(pulled: Pulled, batch: Batch, scale) -> tuple[tf.Tensor, ...]:
    r"""``(sse, g0, g_w, g_V)``: the batch's sum of squared errors and the gradients of
    ``scale * sse`` with respect to the pulled :math:`w_0`, rows of ``w`` and rows of ``V``
    (dense, one row per id of ``pulled.uid``; untouched rows have zero gradient): the
    regression case of :func:`batch_gradients`."""
    return batch_gradients(pulled, batch, "regression", scale)[:4]
