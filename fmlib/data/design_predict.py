r"""The FM on a relational design, without building the flat matrix.

Write the row of rating :math:`s` as the concatenation of its blocks, :math:`\mathbf x_s =
(\mathbf x^{(0)}, \dots, \mathbf x^{(R)})`, where block :math:`r` holds the columns
:math:`J_r` and :math:`\mathbf x^{(r)}` is row :math:`\phi_r(s)` of :math:`\mathbf
B^{(r)}` (``fmlib.data.design``). Lemma 3.1 of Rendle (2010) writes the pairwise
term with the per-factor sums; split each sum by block,

.. math::

    q_{r,f} = \sum_{l \in J_r} v_{l,f}\, x_l, \qquad
    q^{(2)}_{r,f} = \sum_{l \in J_r} v_{l,f}^2\, x_l^2 .

Then :math:`\sum_{l<l'} \langle \mathbf v_l, \mathbf v_{l'}\rangle x_l x_{l'} = \tfrac12
\sum_f \big[(\sum_r q_{r,f})^2 - \sum_r q^{(2)}_{r,f}\big]`, and expanding the square,
:math:`(\sum_r q_{r,f})^2 = \sum_r q_{r,f}^2 + 2\sum_{r<r'} q_{r,f}\, q_{r',f}`, gives

.. math::

    \hat y(\mathbf x_s) &= w_0 + \sum_r p_r
    + \sum_r \underbrace{\tfrac12 \sum_f \big(q_{r,f}^2 -
    q^{(2)}_{r,f}\big)}_{\text{within block } r} \\
    &\quad + \underbrace{\sum_{r<r'} \langle \mathbf q_r, \mathbf
    q_{r'}\rangle}_{\text{across blocks}},
    \qquad p_r = \sum_{l \in J_r} w_l x_l .

The linear term :math:`p_r`, :math:`\mathbf q_r` and the within-block term depend on
the block row :math:`\phi_r(s)` alone: they are computed once per distinct row (``B w``,
``B V`` and ``(B∘B)(V∘V)``) and gathered per rating. Only the across-block term needs
the rating, and it is :math:`\tfrac12\big(\lVert\sum_r \mathbf q_r\rVert^2 - \sum_r
\lVert\mathbf q_r\rVert^2\big)`, O(k R) per rating: the cost is O(k nnz of the distinct
rows + k R N) instead of O(k nnz of the flat matrix). Chapter "Relation blocks".
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fmlib.data.design import RelationalDesign


def _gather(values, index):
    return values if index is None else values[index]


def block_terms(B, w_B: np.ndarray, V_B: np.ndarray):
    r"""Per distinct row of one block: :math:`\ell = B\mathbf w`, :math:`Q = BV` and the
    within-block pairwise term :math:`\tfrac12\sum_f (Q_f^2 - ((B\circ B)(V\circ
    V))_f)`.
    """
    lin = B @ w_B
    q = B @ V_B
    s = B.multiply(B) @ (V_B * V_B)
    return lin, q, 0.5 * np.sum(q * q - s, axis=1)


def predict(
    design: RelationalDesign,
    w0: float,
    w: np.ndarray,
    V: np.ndarray,
    batch_size: int = 65536,
) -> np.ndarray:
    """ŷ of every rating of ``design`` (numpy, float64) by the split in the module
    docstring.

    Args:
        design: the ratings.
        w0, w, V: the FM's parameters, ``w`` of shape ``(n,)`` and ``V`` ``(n, k)`` over
            the flat columns.
        batch_size: ratings gathered at a time (bounds the ``(batch, k)`` temporaries).

    Returns:
        ``(N,)`` float64 predictions, equal to the FM on ``design.to_csr()``.
    """
    w, V = np.asarray(w, np.float64), np.asarray(V, np.float64)
    if (
        w.shape != (design.n_features,)
        or V.ndim != 2
        or V.shape[0] != design.n_features
    ):
        raise ValueError(
            f"`w` and `V` must have {design.n_features} rows (the design's "
            f"columns); got shapes {w.shape} and {V.shape}."
        )
    off = design.offsets
    terms = []  # per block: matrix, its w and V, index, terms per distinct row
    for j, (B, index) in enumerate(design.block_matrices()):
        wV = (w[off[j] : off[j + 1]], V[off[j] : off[j + 1]])
        per_row = None if index is None else block_terms(B, *wV)  # main: per batch
        terms.append((B, wV, index, per_row))
    out = np.empty(design.n_rows)
    for start in range(0, design.n_rows, batch_size):
        rows = slice(start, min(start + batch_size, design.n_rows))
        y_hat = np.full(rows.stop - rows.start, float(w0))
        q_sum = np.zeros((y_hat.size, V.shape[1]))
        q_norms = np.zeros(y_hat.size)
        for B, wV, index, per_row in terms:
            if index is None:  # main block: this batch's rows only
                (lin, q, within), at = block_terms(B[rows], *wV), slice(None)
            else:
                (lin, q, within), at = per_row, index[rows]
            q_rows = q[at]
            y_hat += lin[at] + within[at]
            q_sum += q_rows
            q_norms += np.sum(q_rows * q_rows, axis=1)
        out[rows] = y_hat + 0.5 * (np.sum(q_sum * q_sum, axis=1) - q_norms)  # across
    return out


def _sparse(B, dtype) -> tf.SparseTensor:
    coo = B.tocoo()
    return tf.SparseTensor(
        np.stack([coo.row, coo.col], 1).astype(np.int64),
        tf.constant(coo.data, dtype),
        np.asarray(B.shape, np.int64),
    )


def predict_tf(
    design: RelationalDesign,
    w0: tf.Tensor,
    w: tf.Tensor,
    V: tf.Tensor,
    rows: np.ndarray | None = None,
) -> tf.Tensor:
    """The same as :func:`predict` in TensorFlow, differentiable in ``w0``, ``w`` and
    ``V``.

    Per block: ``B w``, ``B V`` and ``(B∘B)(V∘V)`` once per distinct row, ``tf.gather``
    per rating, combined by the within/across split of the module docstring; the
    gradient of ``V`` is then ``B^T`` times the per-row gradients, accumulated over the
    distinct rows (a rating's gradient is never formed over the flat row).

    Args:
        design: the ratings.
        w0, w, V: tensors (or variables) of shapes ``()``, ``(n,)`` and ``(n, k)``.
        rows: optional rating indices (a minibatch); all ratings by default.

    Returns:
        ``(len(rows),)`` tensor of ŷ.
    """
    dtype = V.dtype
    rows = np.arange(design.n_rows) if rows is None else np.asarray(rows, np.int64)
    off = design.offsets
    y_hat = tf.fill(
        [rows.size], tf.cast(tf.convert_to_tensor(w0, dtype_hint=dtype), dtype)
    )
    q_sum = tf.zeros([rows.size, V.shape[1]], dtype)
    q_norms = tf.zeros([rows.size], dtype)
    for j, (B, index) in enumerate(design.block_matrices()):
        if B.shape[1] == 0:
            continue
        at = rows if index is None else index[rows]
        if index is None:  # main block: only the batch's rows
            B, at = B[rows], np.arange(rows.size)
        Bt, Bt_sq = _sparse(B, dtype), _sparse(B.multiply(B).tocsr(), dtype)
        w_B, V_B = w[off[j] : off[j + 1]], V[off[j] : off[j + 1]]
        lin = tf.sparse.sparse_dense_matmul(Bt, w_B[:, None])[:, 0]
        q = tf.sparse.sparse_dense_matmul(Bt, V_B)
        s = tf.sparse.sparse_dense_matmul(Bt_sq, V_B * V_B)
        within = 0.5 * tf.reduce_sum(q * q - s, axis=1)
        q_rows = tf.gather(q, at)
        y_hat += tf.gather(lin, at) + tf.gather(within, at)
        q_sum += q_rows
        q_norms += tf.reduce_sum(q_rows * q_rows, axis=1)
    return y_hat + 0.5 * (tf.reduce_sum(q_sum * q_sum, axis=1) - q_norms)
