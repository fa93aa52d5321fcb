r"""Gradient training (SGD, Adam, Adagrad) on a relational design, never flattened.

A minibatch :math:`\mathcal B` of ratings reads, from every relation block :math:`r`,
the rows :math:`\phi_r(s)` of its ratings :math:`s`; many ratings share a row (all the
ratings of one user). Write :math:`U_r = \{\phi_r(s) : s \in \mathcal B\}` for the *distinct*
rows.
The split of :mod:`fmlib.data.design_predict` (Lemma 3.1 by block) gives

.. math::
    :label: eq-block-batch

    \hat y_s &= w_0 + \sum_{r} a_r\big(\phi_r(s)\big) \\
    &\quad + \tfrac12 \sum_f \Big[\big(\textstyle\sum_r q_{r,f}(\phi_r(s))\big)^2 \\
    &\qquad - \sum_r q_{r,f}(\phi_r(s))^2\Big], \\
    a_r(b) &= p_r(b) + \tfrac12 \sum_f \big(q_{r,f}(b)^2 - q^{(2)}_{r,f}(b)\big),

with :math:`\mathbf p_r = \mathbf B^{(r)} \mathbf w`, :math:`\mathbf q_r = \mathbf B^{(r)}
\mathbf V` and :math:`\mathbf q^{(2)}_r = (\mathbf B^{(r)} \circ \mathbf B^{(r)})(\mathbf V
\circ \mathbf V)` over the block's columns, row :math:`b` of each for block row :math:`b`
(the main block is a relation block whose rows are the ratings themselves,
:math:`\phi_0(s) = s`). A step therefore evaluates :math:`a_r` and :math:`\mathbf q_r` once per row of :math:`U_r` (a sparse product over
the non-zeros of those rows), gathers them per rating, and combines them: :math:`O(k
\cdot \mathrm{nnz}(U)) + O(k R |\mathcal B|)` instead of :math:`O(k \cdot
\mathrm{nnz}_{\mathcal B})` of the flat batch, and the gradient, which flows back through the gather and the
product, costs the same. The last term is Lemma 3.1 again, with the blocks'
:math:`\mathbf q_r` in the role of the features' :math:`\mathbf v_l x_l`.

The saving is the number of ratings per distinct row *within a batch*: a batch of
:math:`|\mathcal B|` ratings drawn at random from :math:`N` ratings of :math:`n_U` users
holds about :math:`n_U(1 - e^{-|\mathcal B|/n_U})` distinct users (users equally active), so
blocks pay off once the batch is comparable to or larger than the number of block rows
(chapter "Relation blocks"). The
memory saving does not depend on the batch: the flat matrix is never built.

All the non-zeros of a batch, those of the main rows and those of the distinct block
rows, form one sparse matrix :math:`\mathbf Z` over the batch's distinct features
:math:`F` (``tf.unique``), exactly as :class:`fmlib.learning.sparse.SparseStep` does
for a flat batch; the gradient comes out for the rows :math:`F` of :math:`\mathbf w` and
:math:`\mathbf V` and is applied

* with ``updates="dense"`` by a Keras optimizer (SGD, Adam, Adagrad) together with the
  global penalty :math:`\lambda_w\lVert\mathbf w\rVert^2 + \lambda_v\lVert\mathbf
  V\rVert_F^2`, as :func:`fmlib.fit` does on the flat matrix (O(k n) per step for the
  optimizer, fine for models of up to some 10^5 features);
* with ``updates="sparse"`` by the lazy optimizers of :mod:`fmlib.learning.lazy_optimizers` on
  the rows :math:`F` only, with the occurrence penalty (libFM's), the present penalty or,
  for SGD, the exact global decay, as :func:`fmlib.fit` does with ``updates="sparse"``.

Whole chunks of batches (``fmlib.learning.sparse.ROWS_PER_CALL`` ratings at most) run
inside one compiled call. Batches are
the same as the flat path's (the same permutation for the same seed), so the weights
after an epoch equal those of :func:`fmlib.fit` on ``design.to_csr()`` to float
rounding. ``shuffle=BlockChunks(block, size)`` (:mod:`fmlib.data.chunks`)
orders the ratings in chunks of one block row instead, so that a batch holds fewer
distinct rows; the step is the same exact step.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from fmlib.data.chunks import BlockChunks
from fmlib.data.design import RelationalDesign
from fmlib.learning.optimizers import OPTIMIZERS, check_unused_or_ours
from fmlib.learning.settings import GradientSettings
from fmlib.learning.sparse import ROWS_PER_CALL, SparseStep, sparse_optimizer
from fmlib.model.losses import l2_loss, l2_penalty_unchecked, logistic_loss
from fmlib.model.pairwise import factor_products, lemma31
from fmlib.validation import check_learning_rate


def block_scores(w0, w_F, V_F, Z: tf.SparseTensor, gathers) -> tf.Tensor:
    r"""ŷ of a batch by :eq:`eq-block-batch`, from the batch's rows ``Z`` over its
    features.

    Args:
        w0, w_F, V_F: the bias and the rows of ``w`` and ``V`` of the batch's features.
        Z: ``(rows, |F|)`` sparse: the main block's rows of the batch, then the distinct
            rows of every relation block, over the columns ``F``.
        gathers: one ``(batch,)`` int tensor per block: the row of ``Z`` of every
            rating.

    Returns:
        ``(batch,)`` tensor of ŷ.
    """
    k = V_F.shape[1]
    ZVw, s = factor_products(Z, tf.concat([V_F, w_F[:, None]], axis=1), V_F)
    q = ZVw[:, :k]  # q_r of every row of Z
    t = ZVw[:, k] + lemma31(q, s)  # linear + within-block term of every row
    q_at = [tf.gather(q, at) for at in gathers]
    t_sum = tf.add_n([tf.gather(t, at) for at in gathers])
    q_sq = tf.add_n([a * a for a in q_at])
    return w0 + t_sum + lemma31(tf.add_n(q_at), q_sq)  # across blocks


class BatchRows:
    """In the graph: the rows ``s:e`` of a chunk as ``(F, Z, gathers, weight)``.

    ``F`` the distinct features, ``Z`` the main rows and the distinct block rows over
    ``F``, ``gathers`` the row of ``Z`` of every rating per block, ``weight`` the number
    of ratings that read each non-zero of ``Z`` (1 for the main block, the count of the
    row for a relation block: the occurrence penalty of the flat batch).
    """

    def __init__(self, offsets, has_main: bool):
        self.offsets = [int(o) for o in offsets]
        self.has_main = has_main

    def __call__(self, main, tables, index, s, e):
        b = e - s
        rows, cols, vals, weight, gathers = [], [], [], [], []
        n_z = tf.constant(0, tf.int32)
        if self.has_main:
            indptr, indices, data, row_of = main
            a, z = indptr[s], indptr[e]
            rows.append(row_of[a:z] - s)
            cols.append(indices[a:z])
            vals.append(data[a:z])
            weight.append(tf.ones([z - a], data.dtype))
            gathers.append(tf.range(b))
            n_z += b
        for r, ((indptr, indices, data), idx) in enumerate(zip(tables, index)):
            U, pos, count = tf.unique_with_counts(idx[s:e])
            span = tf.ragged.range(tf.gather(indptr, U), tf.gather(indptr, U + 1))
            at, row = span.flat_values, tf.cast(span.value_rowids(), tf.int32)
            rows.append(n_z + row)
            cols.append(tf.gather(indices, at) + self.offsets[r + 1])
            vals.append(tf.gather(data, at))
            weight.append(tf.cast(tf.gather(count, row), data.dtype))
            gathers.append(n_z + pos)
            n_z += tf.size(U)
        F, col = tf.unique(tf.concat(cols, 0))
        rows, vals = tf.concat(rows, 0), tf.concat(vals, 0)
        Z = tf.SparseTensor(
            tf.cast(tf.stack([rows, col], 1), tf.int64),
            vals,
            tf.cast(tf.stack([n_z, tf.size(F)]), tf.int64),
        )
        return F, col, Z, gathers, tf.concat(weight, 0)


class DenseUpdate:
    """One step with a Keras optimizer: batch loss + global L2 penalty (as ``fit``'s
    compiled flat step), the gradient of ``w`` and ``V`` through the batch's rows."""

    def __init__(self, model, opt, task: str):
        self.model, self.opt = model, opt
        self.loss_fn = l2_loss if task == "regression" else logistic_loss

    def __call__(self, F, col, Z, gathers, weight, yb, lambda_w, lambda_v):
        model = self.model
        variables = [model.w0, model.w, model.V]
        with tf.GradientTape() as tape:
            w_F, V_F = tf.gather(model.w, F), tf.gather(model.V, F)
            data_loss = self.loss_fn(yb, block_scores(model.w0, w_F, V_F, Z, gathers))
            objective = data_loss + l2_penalty_unchecked(model, lambda_w, lambda_v)
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(objective, variables)]
        self.opt.apply_gradients(zip(grads, variables))
        return data_loss


class SparseUpdate(SparseStep):
    r"""One row-sparse step with a lazy optimizer, as
    :class:`fmlib.learning.sparse.SparseStep` on the flat batch (same slope, penalty and
    update), with the gradient of :eq:`eq-block-batch` written out. With :math:`d_i` the
    loss's slope in :math:`\hat y_i` and :math:`\mathbf Q_i = \sum_r \mathbf
    q_r(\phi_r(i))`, a row :math:`z` of :math:`\mathbf Z` read by the ratings
    :math:`\{(i, r): \phi_r(i) = z\}` gets

    .. math::

        D_z = \sum_{\phi_r(i) = z} d_i, \qquad
        \mathbf P_z = \sum_{\phi_r(i) = z} d_i \mathbf Q_i

    (the across-block term gives :math:`d_i(\mathbf Q_i - \mathbf q_z)`, the within-block
    term :math:`d_i \mathbf q_z`), and then, as eq. (4) summed over the rows of
    :math:`\mathbf Z`,

    .. math::

        \mathbf g_{w_F} = \mathbf Z^\top \mathbf D, \qquad
        \mathbf g_{V_F} = \mathbf Z^\top \mathbf P
            - \mathbf V_F \circ \big((\mathbf Z \circ \mathbf Z)^\top \mathbf D\big),
        \qquad g_{w_0} = \textstyle\sum_i d_i .
    """

    def __call__(self, F, col, Z, gathers, weight, yb, lambda_w, lambda_v):
        model = self.model
        k = model.V.shape[1]
        w_F, V_F = tf.gather(model.w, F), tf.gather(model.V, F)
        ZA, s = factor_products(Z, tf.concat([V_F, w_F[:, None]], axis=1), V_F)
        q = ZA[:, :k]  # q_r of every row of Z
        t = ZA[:, k] + lemma31(q, s)  # linear + within-block term of every row
        q_at = [tf.gather(q, at) for at in gathers]
        Q = tf.add_n(q_at)
        y_hat = model.w0 + tf.add_n([tf.gather(t, at) for at in gathers])
        loss, d = self.loss_and_slope(
            yb, y_hat + lemma31(Q, tf.add_n([a * a for a in q_at]))
        )
        dQd = tf.concat([d[:, None] * Q, d[:, None]], axis=1)  # [d Q | d] per rating
        PD = tf.math.unsorted_segment_sum(  # [P | D] per row of Z
            tf.tile(dQd, [len(gathers), 1]), tf.concat(gathers, 0), Z.dense_shape[0]
        )
        G = tf.sparse.sparse_dense_matmul(Z, PD, adjoint_a=True)  # Z^T [P | D]
        Z_sq = tf.SparseTensor(Z.indices, tf.square(Z.values), Z.dense_shape)
        g_V = G[:, :k] - V_F * tf.sparse.sparse_dense_matmul(
            Z_sq, PD[:, k:], adjoint_a=True
        )
        counts = None  # occurrences of every feature, for the occurrence penalty only
        if self.regularization == "occurrence":
            counts = tf.math.unsorted_segment_sum(weight, col, tf.size(F))
        g_w, g_V = self.penalized(
            G[:, k], g_V, w_F, V_F, counts, tf.size(yb), lambda_w, lambda_v
        )
        self.opt.apply([tf.reduce_sum(d)], F, [g_w, g_V])
        return loss


class ChunkEpoch:
    """Compiled: the update over consecutive batches of a chunk; returns the summed
    loss."""

    def __init__(self, rows: BatchRows, update):
        self.rows, self.update = rows, update

    def __call__(self, main, tables, index, y, batch_size, lambda_w, lambda_v):
        n = tf.shape(y)[0]
        total = tf.zeros([], y.dtype)
        for b in tf.range((n + batch_size - 1) // batch_size):
            s = b * batch_size
            e = tf.minimum(s + batch_size, n)
            batch = self.rows(main, tables, index, s, e)
            loss = self.update(*batch, y[s:e], lambda_w, lambda_v)
            total += loss * tf.cast(e - s, y.dtype)
        return total


def _keras_optimizer(model, optimizer, lr: float, key: tuple):
    """``(opt, fresh state)``: a named Keras optimizer (reset on every ``fit``, as the
    flat path does) or the instance given (its state kept)."""
    variables = [model.w0, model.w, model.V]
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {sorted(OPTIMIZERS)} or a Keras "
                f"optimizer; got {optimizer!r}."
            )
        lr = check_learning_rate(lr)
        opt = model._compiled_steps.get(key + ("opt",))
        if opt is None:
            opt = OPTIMIZERS[optimizer.lower()](learning_rate=lr)
            opt.build(variables)
            fresh = [v.numpy() for v in opt.variables]
            model._compiled_steps[key + ("opt",)] = opt, fresh
        opt, fresh = model._compiled_steps[key + ("opt",)]
        for var, value in zip(opt.variables, fresh):
            var.assign(value)
        opt.learning_rate = lr
        return opt
    if isinstance(optimizer, keras.optimizers.Optimizer):
        check_unused_or_ours(optimizer, variables)
        if not optimizer.built:
            optimizer.build(variables)
        return optimizer
    raise TypeError(
        "`optimizer` must be a name or a keras.optimizers.Optimizer; got "
        f"{type(optimizer).__name__}."
    )


def _signature(design: RelationalDesign, dtype: tf.DType) -> list:
    i32, vec = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], dtype)
    scalar = tf.TensorSpec([], dtype)
    R = len(design.blocks)
    return [
        (i32, i32, vec, i32),
        tuple((i32, i32, vec) for _ in range(R)),
        tuple(i32 for _ in range(R)),
        vec,
        tf.TensorSpec([], tf.int32),
        scalar,
        scalar,
    ]


def relational_epochs(
    model, design: RelationalDesign, yh: np.ndarray, settings: GradientSettings
) -> Callable[[], float]:
    """Prepare gradient training on the blocks; returns ``epoch()`` (its mean loss).

    Called by :func:`fmlib.fit` (``solver="gradient"``) for a
    :class:`~fmlib.RelationalDesign` whose arguments it has checked; the epoch is the
    one of the flat path with the same ``updates``, ``regularization``, batch order and
    loss (the mean of the batches' losses before their updates, without the penalty).
    """
    s = settings
    task, batch_size, optimizer, lr = s.task, s.batch_size, s.optimizer, s.lr
    lambda_w, lambda_v, updates = s.lambda_w, s.lambda_v, s.updates
    regularization, shuffle, seed = s.regularization, s.shuffle, s.seed
    dtype = model.dtype
    np_dtype = dtype.as_numpy_dtype
    has_main = design.X.shape[1] > 0
    structure = (tuple(int(o) for o in design.offsets), has_main)
    if updates == "sparse":
        opt = sparse_optimizer(model, optimizer, lr, regularization)
        name = optimizer.lower()
        key = ("relational", "sparse", name, task, regularization) + structure

        def make_update():
            return SparseUpdate(model, opt, task, regularization)

    else:
        name = optimizer.lower() if isinstance(optimizer, str) else id(optimizer)
        key = ("relational", "dense", name, task) + structure
        opt = _keras_optimizer(model, optimizer, lr, key)

        def make_update():
            return DenseUpdate(model, opt, task)

    if key not in model._compiled_steps:
        model._compiled_steps[key] = tf.function(
            ChunkEpoch(BatchRows(design.offsets, has_main), make_update()),
            input_signature=_signature(design, dtype),
        )
    run = model._compiled_steps[key]

    tables = tuple(_table(b.data, np_dtype) for b in design.blocks)
    X, y = design.X, yh.astype(np_dtype)
    n = design.n_rows
    rows_per_call = max(batch_size, ROWS_PER_CALL // batch_size * batch_size)
    rng = np.random.default_rng(seed)
    empty = (np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0, np_dtype))

    def epoch() -> float:
        if isinstance(shuffle, BlockChunks):  # grouped by a block's rows
            order = shuffle.permutation(design, rng)
        else:
            order = rng.permutation(n) if shuffle else None
        total = 0.0
        for s in range(0, n, rows_per_call):
            e = min(s + rows_per_call, n)
            at = slice(s, e) if order is None else order[s:e]
            if has_main:
                Xc = X[at]
                row_of = np.repeat(np.arange(e - s, dtype=np.int32), np.diff(Xc.indptr))
                main = (
                    Xc.indptr.astype(np.int32),
                    Xc.indices.astype(np.int32, copy=False),
                    Xc.data,
                    row_of,
                )
            else:
                main = empty + (np.zeros(0, np.int32),)
            index = tuple(b.index[at].astype(np.int32) for b in design.blocks)
            total += float(
                run(
                    main,
                    tables,
                    index,
                    y[at],
                    np.int32(batch_size),
                    np.asarray(lambda_w, np_dtype),
                    np.asarray(lambda_v, np_dtype),
                )
            )
        return total / n

    return epoch


def _table(B, np_dtype) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """A block's CSR arrays as tensors, made once per ``fit`` (not copied per call)."""
    if B.nnz >= 2**31 or B.shape[1] >= 2**31:
        raise ValueError(
            f"a relation block must have fewer than 2^31 non-zeros and columns; got "
            f"{B.nnz} non-zeros and {B.shape[1]} columns."
        )
    return (
        tf.constant(B.indptr.astype(np.int32)),
        tf.constant(B.indices.astype(np.int32)),
        tf.constant(B.data.astype(np_dtype, copy=False)),
    )
