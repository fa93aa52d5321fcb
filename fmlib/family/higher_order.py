r"""Higher-order Factorization Machines and the ANOVA kernel (chapter "The FM family").

Rendle (2010), eq. (5), extends the FM from pairs to all interactions of up to ``d``
features, with one factor matrix :math:`\mathbf P^{(t)}` per order :math:`t`
(:math:`\mathbf P^{(2)} = \mathbf V`):

.. math::

    \hat y(\mathbf x) = w_0 + \sum_i w_i x_i + \sum_{t=2}^{d}
        \sum_{i_1 < \dots < i_t} \Big(\prod_{a=1}^{t} x_{i_a}\Big)
        \sum_{f=1}^{k} \prod_{a=1}^{t} p^{(t)}_{i_a, f}

Blondel et al. (2016), "Higher-Order Factorization Machines", write the inner sums with
the ANOVA kernel of order :math:`t` of a factor column :math:`\mathbf p` and a row
:math:`\mathbf x`,

.. math::

    A^t(\mathbf p, \mathbf x) = \sum_{j_1 < \dots < j_t} \prod_{a=1}^{t} p_{j_a} x_{j_a},
    \qquad
    \hat y(\mathbf x) = w_0 + \mathbf w^\top \mathbf x
        + \sum_{t=2}^{d} \sum_{f=1}^{k} A^t(\mathbf p^{(t)}_f, \mathbf x).

Three evaluations of :math:`\sum_f A^t(\mathbf p_f, \mathbf x)` live here:

* :func:`anova_naive`: the definition, all :math:`\binom{n}{t}` subsets, O(k t n^t);
  for teaching and tests with small ``n``.
* :func:`anova_dp`: Blondel et al.'s dynamic programme (their Algorithm 1),
  :math:`A^t_j = A^t_{j-1} + p_j x_j A^{t-1}_{j-1}` over the features :math:`j`,
  O(t k n) per row (O(t k m) skipping zeros, for a row with m non-zeros).
* :func:`anova_fast`: the power-sum (Newton–Girard) recursion,
  :math:`A^t = \frac1t \sum_{a=1}^{t} (-1)^{a+1} A^{t-a} D^a` with
  :math:`D^a = \sum_j (p_j x_j)^a`; every :math:`D^a` is one (sparse) matrix product,
  so the whole is O(t k nnz(X)) for a batch X, and vectorised. :class:`HigherOrderFMLayer` uses it.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf

from fmlib.family._build import check_output, layer_options, output_head
from fmlib.learning.keras_fm import (
    GRAPH_CHECK,
    FMLayer,
    FMModel,
    graph_finite,
    in_graph,
)
from fmlib.validation import (
    as_batch,
    check_bool,
    check_finite_array,
    check_int,
    check_numeric_array,
)


def check_order(order, name: str = "order", minimum: int = 1) -> int:
    """``order`` as an int >= ``minimum`` (TypeError / ValueError naming ``name``)."""
    return check_int(order, name, minimum)


def check_order_bound(order: int, n_features: int, name: str = "order") -> None:
    """A model's order cannot exceed its number of features (no interaction of more distinct
    features exists; the build would cost O(order) weights and ops for terms that are 0)."""
    if order > n_features:
        raise ValueError(
            f"`{name}` must be at most n_features={n_features} (an interaction of "
            f"{name} distinct features); got {order}."
        )


def _host_pair(X, P, order: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (batch, n) and ``P`` (n, k) as float64 numpy arrays, checked against each other."""
    P = np.asarray(P)
    check_numeric_array(P.dtype, "P")
    if P.ndim != 2:
        raise ValueError(f"`P` must be 2-D (n, k); got shape {P.shape}.")
    check_finite_array(P, "P")
    X = as_batch(X, n_features=P.shape[0], dtype=tf.float64, name="X")
    X = tf.sparse.to_dense(X) if isinstance(X, tf.SparseTensor) else X
    return X.numpy(), P.astype(np.float64)


def anova_naive(X, P, order: int) -> np.ndarray:
    r""":math:`\sum_f A^t(\mathbf p_f, \mathbf x)` for every row, by its definition.

    .. math::

        \sum_{f=1}^{k} \sum_{j_1 < \dots < j_t} \prod_{a=1}^{t} p_{j_a, f}\, x_{j_a}

    One term per subset of ``order`` features (``itertools.combinations``): the teaching
    reference, usable for ``n`` up to a few dozen.

    Args:
        X: ``(batch, n)`` design matrix (dense, scipy.sparse or ``tf.SparseTensor``).
        P: ``(n, k)`` factor matrix of this order; column ``f`` is :math:`\mathbf p_f`.
        order: the order :math:`t \ge 1` (``t = 1`` gives :math:`\sum_f \mathbf x^\top
            \mathbf p_f`; ``t > n`` gives 0, an empty sum).

    Returns:
        ``(batch,)`` float64 array.
    """
    order = check_order(order)
    X, P = _host_pair(X, P, order)
    out = np.zeros(X.shape[0])
    for subset in itertools.combinations(range(X.shape[1]), order):
        terms = X[:, subset, None] * P[None, subset, :]  # (batch, t, k)
        out += np.prod(terms, axis=1).sum(axis=1)
    return out


def anova_dp(X, P, order: int) -> np.ndarray:
    r""":math:`\sum_f A^t(\mathbf p_f, \mathbf x)` by Blondel et al.'s dynamic programme.

    With :math:`a_0 = 1` and :math:`a_1 = \dots = a_t = 0`, visit the features
    :math:`j = 1..n` once and update, for :math:`s = t` down to 1,

    .. math::

        a_s \leftarrow a_s + p_j x_j\, a_{s-1}

    (every subset either leaves out feature :math:`j` or ends with it). After the last
    feature :math:`a_t = A^t(\mathbf p, \mathbf x)`. Cost O(t k n) per row; zero
    features change nothing and are skipped. Vectorised over rows and factors, looped
    over features: a readable reference, not the layer's path.

    Args and returns as :func:`fmlib.anova_naive`.
    """
    order = check_order(order)
    X, P = _host_pair(X, P, order)
    a = [np.ones((X.shape[0], P.shape[1]))]
    a += [np.zeros((X.shape[0], P.shape[1])) for _ in range(order)]
    for j in np.flatnonzero(np.any(X != 0, axis=0)):
        z = X[:, j, None] * P[j]  # p_j x_j: (batch, k)
        for s in range(order, 0, -1):
            a[s] = a[s] + z * a[s - 1]
    return a[order].sum(axis=1)


def _power_sum(X, P: tf.Tensor, s: int) -> tf.Tensor:
    r""":math:`D^a = \sum_j (p_j x_j)^a = (\mathbf X^{\odot a}) (\mathbf P^{\odot a})`
    (the power :math:`a` is the argument ``s``)."""
    if isinstance(X, tf.SparseTensor):
        X_s = tf.SparseTensor(X.indices, X.values**s, X.dense_shape)
        return tf.sparse.sparse_dense_matmul(X_s, P**s)
    return tf.matmul(X**s, P**s)


def _anova_unchecked(X, P: tf.Tensor, order: int) -> tf.Tensor:
    """The Newton–Girard recursion on a checked batch: ``(batch, k)`` values of A^order."""
    D = [None] + [_power_sum(X, P, s) for s in range(1, order + 1)]
    A = [tf.ones_like(D[1])]
    for t in range(1, order + 1):
        signed = [(-1.0) ** (s + 1) * A[t - s] * D[s] for s in range(1, t + 1)]
        A.append(tf.add_n(signed) / t)
    # A row with fewer non-zeros than the order has no such subset: its kernel is exactly 0,
    # but the power sums cancel only up to rounding (float32: errors of order 1)
    enough = tf.cast(_row_nonzeros(X) >= order, A[order].dtype)
    return A[order] * enough[:, None]


def _row_nonzeros(X) -> tf.Tensor:
    """``(batch,)`` number of non-zero entries per row of a dense or sparse batch."""
    if isinstance(X, tf.SparseTensor):
        present = tf.cast(tf.not_equal(X.values, 0), tf.int64)
        return tf.math.unsorted_segment_sum(
            present, X.indices[:, 0], tf.shape(X, out_type=tf.int64)[0]
        )
    return tf.math.count_nonzero(X, axis=1, dtype=tf.int64)


def anova_fast(X, P, order: int) -> tf.Tensor:
    r""":math:`\sum_f A^t(\mathbf p_f, \mathbf x)` by power sums, O(t k nnz).

    The ANOVA kernel satisfies the Newton–Girard identity between elementary symmetric
    polynomials and power sums (recalled by Blondel et al. 2016)

    .. math::

        A^0 &= 1, \qquad D^a = \sum_{j=1}^{n} (p_j x_j)^a, \\
        A^t &= \frac1t \sum_{a=1}^{t} (-1)^{a+1} A^{t-a} D^a .

    For ``t = 2`` this is Rendle's Lemma 3.1,
    :math:`A^2 = \frac12[(D^1)^2 - D^2]`. Each :math:`D^a` for all factors at once is the
    matrix product :math:`\mathbf X^{\odot a} \mathbf P^{\odot a}` (elementwise powers),
    sparse when ``X`` is.

    Args:
        X: ``(batch, n)`` design matrix (dense, scipy.sparse or ``tf.SparseTensor``).
        P: ``(n, k)`` float factor matrix.
        order: the order :math:`t \ge 1`.

    Returns:
        ``(batch,)`` tensor in ``P``'s dtype.
    """
    order = check_order(order)
    P = tf.convert_to_tensor(P)
    if P.shape.rank != 2 or not P.dtype.is_floating:
        raise ValueError(
            f"`P` must be a 2-D float (n, k) matrix; got shape "
            f"{tuple(P.shape)} and dtype {P.dtype.name}."
        )
    X = as_batch(X, n_features=P.shape[0], dtype=P.dtype, name="X")
    if (
        order > P.shape[0]
    ):  # no subset of `order` distinct features: exactly 0, and no work
        return tf.zeros([tf.shape(X)[0]], P.dtype)
    return tf.reduce_sum(_anova_unchecked(X, P, order), axis=1)


@keras.saving.register_keras_serializable(package="fmlib")
class HigherOrderFMLayer(FMLayer):
    r"""A higher-order FM (Rendle 2010 eq. 5; Blondel et al. 2016): ``(batch, n)`` → ``(batch, 1)``.

    .. math::

        \hat y(\mathbf x) = w_0 + \mathbf w^\top \mathbf x
            + \sum_{t=2}^{d} \sum_{f=1}^{k} A^t(\mathbf p^{(t)}_f, \mathbf x)

    with a separate ``(n, k)`` factor matrix :math:`\mathbf P^{(t)}` per order, as in the
    papers. :math:`\mathbf P^{(2)}` is the FM's ``V`` (weight ``"V"``); the others are
    weights ``"P3"``, ..., ``"Pd"``. Each order costs O(t k nnz) through
    :func:`anova_fast`, so ``order=2`` is exactly :class:`fmlib.FMLayer`.

    Args:
        order: the highest order ``d >= 2`` of the interactions.
        k: factors per feature and order.
        v_initializer: initializer of every :math:`\mathbf P^{(t)}` (default
            ``RandomNormal(stddev=0.01)``); v_regularizer applies to all of them.
        kwargs: the other arguments of :class:`fmlib.FMLayer`.

    Input shape: ``(batch, n)``, dense or ``tf.SparseTensor``.
    Output shape: ``(batch, 1)``.

    Example:
        >>> inputs = keras.Input(shape=(16,), sparse=True)
        >>> model = keras.Model(inputs, HigherOrderFMLayer(order=3, k=4)(inputs))
    """

    def __init__(self, order: int = 3, k: int = 8, **kwargs):
        super().__init__(k=k, **kwargs)
        self.order = check_order(order, minimum=2)

    def build(self, input_shape):
        super().build(input_shape)
        check_order_bound(self.order, self.n_features)
        self.P = [self.V] + [
            self.add_weight(
                shape=(self.n_features, self.k),
                initializer=self.v_initializer,
                regularizer=self.v_regularizer,
                name=f"P{t}",
            )
            for t in range(3, self.order + 1)
        ]

    def call(self, inputs):
        X = self._checked(inputs)
        linear = tf.reshape(self.w0, (1,)) + _matvec(X, self.w)
        higher = [
            tf.reduce_sum(_anova_unchecked(X, P, t), axis=1)
            for t, P in enumerate(self.P, start=2)
        ]
        return (linear + tf.add_n(higher))[:, None]

    def _checked(self, inputs):
        """The checks of :class:`fmlib.FMLayer`: eager through as_batch, else in the graph."""
        if tf.executing_eagerly():
            return as_batch(inputs, self.n_features, self.V.dtype, name="x")
        if isinstance(inputs, tf.SparseTensor):
            cols = inputs.indices[:, 1]
            indices = in_graph(
                inputs.indices,
                [
                    tf.debugging.assert_non_negative(
                        inputs.indices, f"{GRAPH_CHECK}`x` has negative indices"
                    ),
                    tf.debugging.assert_less(
                        cols,
                        tf.constant(self.n_features, cols.dtype),
                        f"{GRAPH_CHECK}`x` has column indices >= n={self.n_features}",
                    ),
                ],
            )
            values = graph_finite(tf.cast(inputs.values, self.V.dtype), "x")
            return tf.SparseTensor(indices, values, inputs.dense_shape)
        return graph_finite(tf.cast(inputs, self.V.dtype), "x")

    def get_config(self):
        return {**super().get_config(), "order": self.order}


def _matvec(X, w: tf.Tensor) -> tf.Tensor:
    if isinstance(X, tf.SparseTensor):
        return tf.sparse.sparse_dense_matmul(X, w[:, None])[:, 0]
    return tf.linalg.matvec(X, w)


def build_higher_order_fm_model(
    n_features: int,
    *,
    order: int = 3,
    k: int = 8,
    sparse: bool = True,
    task: str = "regression",
    from_logits: bool = True,
    w0_init: float = 0.0,
    l2_w: float = 0.0,
    l2_v: float = 0.0,
    v_init_std: float = 0.01,
    seed: int | None = None,
    name: str = "hofm",
) -> FMModel:
    r"""Build an uncompiled Keras higher-order FM of order ``order`` over ``n_features`` columns.

    The model is an :class:`fmlib.FMModel` around one :class:`HigherOrderFMLayer` named
    ``"hofm_layer"``: the same input checks, task, compile defaults and ``.keras`` saving
    as :func:`fmlib.build_fm_model`, whose arguments these are; ``l2_v`` applies to every
    :math:`\mathbf P^{(t)}`. ``order=2`` builds the FM itself.

    Example:
        >>> model = build_higher_order_fm_model(2625, order=3, k=4)
        >>> model.compile(optimizer="adam")
    """
    task, from_logits = check_output(task, from_logits)
    n_features = check_int(n_features, "n_features")
    order = check_order(order, minimum=2)
    check_order_bound(order, n_features)
    options = layer_options(k, w0_init, l2_w, l2_v, v_init_std, seed)
    inputs = keras.Input(
        shape=(n_features,), sparse=check_bool(sparse, "sparse"), name="x"
    )
    output = HigherOrderFMLayer(order=order, name="hofm_layer", **options)(inputs)
    return FMModel(
        inputs,
        output_head(output, from_logits),
        name=name,
        task=task,
        from_logits=from_logits,
    )
