r"""The pairwise interaction term of a Factorization Machine.

Rendle (2010), eq. (1), models every pair of features through the inner product
of their factor vectors:

.. math::

    \sum_{i=1}^{n} \sum_{j=i+1}^{n} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j .

Two implementations of the same sum live here (chapter "Fast pairwise interactions: Lemma 3.1"
derives the second from the first):

* :func:`pairwise_naive` follows the definition: all n(n-1)/2 pairs, O(k n²).
* :func:`pairwise_fast` uses Lemma 3.1 of the paper, O(k n) for a dense row and
  O(k · nnz) for a sparse one.
"""

from __future__ import annotations

import tensorflow as tf

from fmlib.validation import as_batch


def _factors(V) -> tf.Tensor:
    V = tf.convert_to_tensor(V)
    if V.shape.rank != 2:
        raise ValueError(f"`V` must be 2-D (n, k); got shape {tuple(V.shape)}.")
    if not V.dtype.is_floating:
        raise TypeError(f"`V` must be a float tensor; got dtype {V.dtype.name}.")
    return V


def pairwise_naive(X, V) -> tf.Tensor:
    r"""Pairwise term by its definition, O(k n²) per row.

    .. math::

        \hat y_{\text{pair}}(\mathbf x) = \sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j

    The Gram matrix :math:`G_{ij} = \langle \mathbf v_i, \mathbf v_j\rangle` costs
    O(k n²); keeping its strict upper triangle (:math:`i<j`) and summing
    :math:`x_i\, G_{ij}\, x_j` over all pairs costs O(n²) per row. Sparse ``X``
    is densified first: this function is the teaching reference, not the fast path.

    Args:
        X: ``(batch, n)`` dense or sparse design matrix (or one row ``(n,)``).
        V: ``(n, k)`` factor matrix; row ``i`` is :math:`\mathbf v_i`.

    Returns:
        ``(batch,)`` tensor of the pairwise term, in ``V``'s dtype.

    See the chapter "Fast pairwise interactions: Lemma 3.1".
    """
    V = _factors(V)
    X = as_batch(X, n_features=V.shape[0], dtype=V.dtype, name="X")
    return pairwise_naive_unchecked(X, V)


def pairwise_naive_unchecked(X, V: tf.Tensor) -> tf.Tensor:
    """The definition on an already checked dense or sparse batch (the model's naive path)."""
    if isinstance(X, tf.SparseTensor):
        X = tf.sparse.to_dense(tf.sparse.reorder(X))
    G = tf.matmul(V, V, transpose_b=True)  # G_ij = <v_i, v_j>, (n, n)
    upper = tf.linalg.band_part(tf.ones_like(G), 0, -1) - tf.linalg.band_part(
        tf.ones_like(G), 0, 0
    )
    G_upper = G * upper  # keep i < j only
    # sum_i x_i * sum_{j>i} G_ij x_j, for every row of the batch at once
    return tf.reduce_sum(X * tf.matmul(X, G_upper, transpose_b=True), axis=1)


def pairwise_fast(X, V) -> tf.Tensor:
    r"""Pairwise term by Lemma 3.1 of Rendle (2010), O(k n) dense, O(k · nnz) sparse.

    .. math::

        \sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j
        &= \frac12 \sum_{f=1}^{k} \Big[ \Big(\sum_{i=1}^{n} v_{i,f}\, x_i\Big)^2 \\
        &\qquad - \sum_{i=1}^{n} v_{i,f}^2\, x_i^2 \Big]

    In matrix form, with :math:`\odot` the element-wise product:
    ``0.5 * sum_f((X V)**2 - (X⊙X)(V⊙V))``. For a ``tf.SparseTensor`` or
    ``scipy.sparse`` input both products are sparse–dense products, so only
    the non-zero entries of ``X`` are touched and ``X`` is never densified.

    Args:
        X: ``(batch, n)`` dense array or tensor, ``tf.SparseTensor`` or
            ``scipy.sparse`` matrix (or one dense row ``(n,)``).
        V: ``(n, k)`` factor matrix.

    Returns:
        ``(batch,)`` tensor of the pairwise term, in ``V``'s dtype.

    Example:
        >>> import numpy as np
        >>> V = np.array([[1., 0.], [1., 1.], [0., 2.]])
        >>> float(pairwise_fast(np.array([[1., 1., 1.]]), V)[0])  # <v1,v2>+<v1,v3>+<v2,v3>
        3.0

    See the chapter "Fast pairwise interactions: Lemma 3.1".
    """
    V = _factors(V)
    X = as_batch(X, n_features=V.shape[0], dtype=V.dtype, name="X")
    return _pairwise_fast_unchecked(X, V)


def _pairwise_fast_unchecked(X, V: tf.Tensor) -> tf.Tensor:
    """Lemma 3.1 on an already checked dense or sparse batch (used in compiled steps)."""
    sum_vx, sum_v2x2 = factor_products(X, V, V)
    return lemma31(sum_vx, sum_v2x2)


def factor_products(X, A: tf.Tensor, V: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``X A`` and ``(X⊙X)(V⊙V)`` for a checked batch; sparse input stays sparse.

    ``A`` is ``V`` itself, or ``V`` with more columns appended (the model appends ``w`` to get
    the linear term from the same pass over ``X``).
    """
    if isinstance(X, tf.SparseTensor):
        X_sq = tf.SparseTensor(X.indices, tf.square(X.values), X.dense_shape)
        return tf.sparse.sparse_dense_matmul(X, A), tf.sparse.sparse_dense_matmul(
            X_sq, tf.square(V)
        )
    return tf.matmul(X, A), tf.matmul(tf.square(X), tf.square(V))


def lemma31(sum_vx: tf.Tensor, sum_v2x2: tf.Tensor) -> tf.Tensor:
    """0.5 * sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2], from the two (batch, k) products."""
    return 0.5 * tf.reduce_sum(tf.square(sum_vx) - sum_v2x2, axis=1)
