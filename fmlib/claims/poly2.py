r"""The degree-2 polynomial model: one free weight per pair of features (Rendle 2010, eq. 9).

.. math::

    \hat y(\mathbf x) = w_0 + \sum_{i} w_i x_i + \sum_{i<j} w_{i,j}\, x_i x_j

is what a support vector machine with the polynomial kernel of degree 2 learns (the
kernel's feature map spans the same terms), written in the primal: expand every row into
its pair products (:func:`fmlib.poly2_expand`) and fit a linear model with an L2 penalty. The
FM replaces the free :math:`w_{i,j}` by :math:`\langle \mathbf v_i, \mathbf v_j\rangle`.

The point of the chapter "The paper's claims, reproduced": the penalised least-squares
objective

.. math::

    J &= \sum_{n} \big(y_n - \bar y - \mathbf z_n^\top \boldsymbol\theta\big)^2
    + \lambda \lVert \boldsymbol\theta \rVert^2, \\
    \frac{\partial J}{\partial w_{i,j}} &= -2 \sum_n e_n x_{n,i} x_{n,j} + 2 \lambda w_{i,j},

touches :math:`w_{i,j}` only through rows where both :math:`x_i` and :math:`x_j` are
non-zero. For a pair never observed together the minimiser is :math:`w_{i,j} = 0` exactly,
and so its prediction for such a pair is the linear model's. (The SVM's dual says the same:
:math:`w_{i,j} \propto \sum_n \alpha_n x_{n,i} x_{n,j} = 0`.)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from scipy.sparse.linalg import lsqr

from fmlib.validation import as_host_matrix, as_targets, check_float, check_int


def pair_index(i, j, n_features: int):
    r"""Position of the pair ``(i, j)``, ``i < j``, among the :math:`n(n-1)/2` pair columns
    (row-major upper triangle): :math:`i n - i(i+1)/2 + j - i - 1`."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    if np.any(i >= j) or np.any(i < 0) or np.any(j >= n_features):
        raise ValueError(f"pairs must satisfy 0 <= i < j < n_features={n_features}.")
    return i * n_features - i * (i + 1) // 2 + j - i - 1


def poly2_expand(X, n_features: int | None = None) -> sp.csr_matrix:
    r"""``[x, (x_i x_j)_{i<j}]``: the rows of ``X`` with all pair products appended.

    Only pairs of non-zero entries are stored, so a row with ``d`` non-zeros gets
    :math:`d(d-1)/2` new entries; the result has :math:`n + n(n-1)/2` columns, ordered by
    :func:`fmlib.claims.poly2.pair_index`. ``X`` is dense or sparse, ``(N, n)``.
    """
    X = sp.csr_matrix(as_host_matrix(X, n_features, tf.float64, name="X"))
    n = X.shape[1]
    # every stored entry p pairs with the entries q > p of its row: no loop over rows
    row_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    after = X.indptr[row_of + 1] - np.arange(X.nnz) - 1  # entries after p in its row
    p = np.repeat(np.arange(X.nnz), after)
    q = p + 1 + np.arange(p.size) - np.repeat(np.cumsum(after) - after, after)
    pairs = sp.csr_matrix(
        (X.data[p] * X.data[q], (row_of[p], pair_index(X.indices[p], X.indices[q], n))),
        shape=(X.shape[0], n * (n - 1) // 2),
    )
    return sp.hstack([X, pairs], format="csr")


class Poly2Regression:
    r"""Ridge regression on :func:`fmlib.poly2_expand` features: the polynomial-kernel model in the primal.

    :math:`w_0 = \bar y` (the mean target, not penalised); :math:`\boldsymbol\theta =
    [\mathbf w, (w_{i,j})_{i<j}]` minimises the module's :math:`J`, solved by LSQR
    (``scipy.sparse.linalg.lsqr`` with damping :math:`\sqrt\lambda`), which starts at 0 and
    only ever moves a coordinate along :math:`\mathbf Z^\top \mathbf u`: a column with no
    non-zero stays exactly 0. So the solve runs on the non-empty columns only (same result,
    and the cost no longer grows with the :math:`n(n-1)/2` possible pairs); the test suite
    checks this against LSQR and the closed form on all columns.

    Args:
        lam: the L2 strength :math:`\lambda` (> 0).
        pairs: ``False`` drops the pair columns: the linear model
            :math:`w_0 + \mathbf w^\top \mathbf x` with the same penalty.
        tol: LSQR's relative stopping tolerance (its ``atol`` and ``btol``).
        max_iter: LSQR iterations at most.

    After :meth:`fit`: ``w0_``, ``w_`` ``(n,)``, ``W_`` (pair weights, ``(n(n-1)/2,)``, or
    None without pairs), ``n_features_in_``.
    """

    def __init__(
        self,
        lam: float = 1.0,
        pairs: bool = True,
        tol: float = 1e-6,
        max_iter: int = 2000,
    ):
        self.lam = lam
        self.pairs = pairs
        self.tol = tol
        self.max_iter = max_iter

    def _design(self, X) -> sp.csr_matrix:
        X = sp.csr_matrix(
            as_host_matrix(
                X, getattr(self, "n_features_in_", None), tf.float64, name="X"
            )
        )
        return poly2_expand(X) if self.pairs else X

    def fit(self, X, y) -> "Poly2Regression":
        """Fit on ``(X, y)``; returns ``self``."""
        lam = check_float(self.lam, "lam")
        if lam == 0:
            raise ValueError("`lam` must be > 0; got 0.")
        max_iter = check_int(self.max_iter, "max_iter")
        tol = check_float(self.tol, "tol")
        self.__dict__.pop("n_features_in_", None)
        X = sp.csr_matrix(as_host_matrix(X, None, tf.float64, name="X", min_rows=1))
        Z = poly2_expand(X) if self.pairs else X
        y = np.asarray(as_targets(y, Z.shape[0], name="y", dtype=tf.float64))
        n = self.n_features_in_ = X.shape[1]
        self.w0_ = float(y.mean())
        # LSQR would keep every empty column at its start, 0 (see the class docstring); solving
        # on the others gives the same theta without carrying n(n-1)/2 zeros through each step.
        active = np.flatnonzero(Z.getnnz(axis=0))
        theta = np.zeros(Z.shape[1])
        theta[active] = lsqr(
            Z[:, active],
            y - self.w0_,
            damp=np.sqrt(lam),
            atol=tol,
            btol=tol,
            iter_lim=max_iter,
        )[0]
        self.w_ = theta[:n]
        self.W_ = theta[n:] if self.pairs else None
        return self

    def predict(self, X) -> np.ndarray:
        """:math:`\\hat y` for every row of ``X``, shape ``(N,)``."""
        if not hasattr(self, "w_"):
            raise AttributeError(
                "this Poly2Regression is not fitted yet: call fit first."
            )
        theta = self.w_ if self.W_ is None else np.concatenate([self.w_, self.W_])
        return self.w0_ + self._design(X) @ theta

    def pair_weight(self, i: int, j: int) -> float:
        """The learned :math:`w_{i,j}` of features ``i < j``."""
        if getattr(self, "W_", None) is None:
            raise AttributeError(
                "no pair weights: fit a Poly2Regression with pairs=True first."
            )
        return float(self.W_[pair_index(i, j, self.n_features_in_)])
