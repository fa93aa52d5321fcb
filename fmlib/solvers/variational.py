r"""Mean-field variational inference for the Bayesian FM (regression and probit
classification): the deterministic counterpart of :class:`fmlib.BayesianFM`, derived in the
chapter "Star ratings and variational inference" (section "Variational inference").

Same model and priors as :mod:`fmlib.solvers.mcmc` (flat prior on :math:`w_0`). The
posterior is approximated by a product of independent factors,

.. math::

    q = q(w_0) \prod_l q(w_l) \prod_{l,f} q(v_{l,f})\; q(\alpha)
        \prod_g q(\mu_g) q(\lambda_g) \prod_{g,f} q(\mu_{g,f}) q(\lambda_{g,f}),

Gaussian for the parameters and the prior means, Gamma for the precisions, and each
factor is set in turn to its optimum given the others (coordinate ascent, CAVI):
:math:`\log q^\star(\theta) = \mathbb E_{-\theta}[\log p] + \text{const}`. Every step
can only raise the evidence lower bound (ELBO), which :func:`elbo` evaluates exactly and
``trace_["elbo"]`` records per iteration.

**Why the steps need more than Gibbs' caches.** :math:`\hat y_i` is linear in each
parameter, :math:`\hat y_i = g_i + \theta h_i`, so :math:`q^\star(\theta)` is Gaussian with

.. math::

    \text{precision } P = \mathbb E[\alpha] \sum_i \mathbb E[h_i^2] + \mathbb E[\lambda],
    \qquad \text{mean } = \frac{\mathbb E[\alpha] \sum_i \mathbb E[h_i (y_i - g_i)]
    + \mathbb E[\lambda]\mathbb E[\mu]}{P};

for :math:`w_l`, :math:`h_i = x_{i,l}` is fixed, but for :math:`v_{l,f}`, :math:`h_i =
x_{i,l}\, q_{i,-l}` with :math:`q_{i,-l} = \sum_{l' \ne l} x_{i,l'} v_{l',f}` random,
and :math:`g_i` holds the pairs :math:`v_{l',f} v_{l'',f}` that share a factor with
:math:`q_{i,-l}`. With :math:`a_{i,l} = x_{i,l} \mathbb E[v_{l,f}]`,
:math:`\sigma^2_{i,l} = x_{i,l}^2 \operatorname{Var}[v_{l,f}]`, :math:`Q = \sum_{l' \ne l}
a_{i,l'}`, :math:`S = \sum_{l' \ne l} \sigma^2_{i,l'}`, :math:`T = \sum_{l' \ne l}
\sigma^2_{i,l'} a_{i,l'}` and :math:`r_i = y_i - \mathbb E[\hat y_i]`:

.. math::

    \mathbb E[h_i^2] = x_{i,l}^2 (Q^2 + S), \qquad
    \mathbb E[h_i (y_i - g_i)] = x_{i,l}\big(Q\,(r_i + x_{i,l}\mathbb E[v_{l,f}]\, Q)
        - S Q + T\big),

the last two terms being :math:`-\operatorname{Cov}(q_{i,-l}, g_i)`. Per rating and
factor three sums, :math:`\sum_l a`, :math:`\sum_l \sigma^2` and :math:`\sum_l \sigma^2
a`, are kept up to date (myFM keeps the same ones). The predictive variance under
:math:`q`, needed by :math:`q(\alpha)` and the ELBO, is

.. math::

    \operatorname{Var}[\hat y_i] = \operatorname{Var}[w_0] + \sum_l x_{i,l}^2
    \operatorname{Var}[w_l] + \sum_f \Big(\sum_l \sigma^2_{i,l} (q_{i,f} - a_{i,l})^2
    + \sum_{l < l'} \sigma^2_{i,l} \sigma^2_{i,l'}\Big)

(the pairwise sum of independent terms: its linear and quadratic fluctuations are
uncorrelated).

**Classification** (probit): :math:`q(z_i)` is :math:`\mathcal N(\mathbb E[\hat y_i],
1)` truncated to the label's side, the parameters are fitted to :math:`\mathbb E[z_i]`
with :math:`\alpha = 1`, and the data term of the ELBO is :math:`\sum_i \log \Phi(\pm
\mathbb E[\hat y_i]) - \tfrac12 \operatorname{Var}[\hat y_i]`.

One iteration: :math:`w_0`; :math:`q(\lambda), q(\mu)` of :math:`\mathbf w`; every
:math:`w_l`; those of :math:`\mathbf V`; every :math:`v_{l,f}` (factor by factor); then
:math:`q(\alpha)` (regression) or :math:`q(\mathbf z)` (classification); then the ELBO.
One code path for both inputs: a flat (sparse) matrix is read as a design with only a
main block, and a :class:`fmlib.RelationalDesign`'s relation blocks are not flattened:
:mod:`fmlib.solvers.variational_blocks` sums the same steps per block row,
:math:`O(k(\mathrm{nnz}(\text{main}) + \mathrm{nnz}(\text{blocks}) + RN))` per
iteration instead of :math:`O(k\, \mathrm{nnz})` of the flat matrix, with the same result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import digamma, gammaln, log_ndtr, ndtr

from fmlib.solvers.kernels import _jit
from fmlib.solvers.mcmc import A0, A_LAMBDA, B0, B_LAMBDA, GAMMA0, MU0
from fmlib.solvers.variational_blocks import (
    BlockPowers,
    BlockSums,
    block_moments,
    sweep_v_block,
    sweep_w_block,
)
from fmlib.validation import (
    as_labels,
    as_targets,
    check_float,
    check_int,
    check_seed,
    column_groups,
    is_relational,
)

_LOG_2PI = np.log(2 * np.pi)


class _Gamma:
    """q(lambda) = Gamma(shape a, rate b), elementwise."""

    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, float), np.asarray(b, float)

    @property
    def mean(self):
        return self.a / self.b

    @property
    def log_mean(self):  # E[log lambda]
        return digamma(self.a) - np.log(self.b)

    def entropy(self):
        return (
            self.a - np.log(self.b) + gammaln(self.a) + (1 - self.a) * digamma(self.a)
        )


def _gamma_prior(q: _Gamma, a0: float, b0: float):
    """E_q[log Gamma(lambda | a0/2, b0/2)] (shape-rate), elementwise."""
    a, b = a0 / 2, b0 / 2
    return a * np.log(b) - gammaln(a) + (a - 1) * q.log_mean - b * q.mean


class VariationalState:
    """The factors of q: means and variances of ``w0, w, V``, ``q(alpha)`` and per group
    (and factor) ``q(mu)`` (mean, variance) and ``q(lambda)`` (Gamma)."""

    def __init__(self, n, k, G, init_std, rng, w0=0.0):
        self.m0, self.s0 = float(w0), 1.0
        self.mw, self.sw = np.zeros(n), np.full(n, init_std**2)
        self.MV = rng.normal(0.0, init_std, (n, k))
        self.SV = np.full((n, k), init_std**2)
        self.alpha = _Gamma(1.0, 1.0)
        self.mu_w, self.mu_w_var, self.lam_w = (
            np.zeros(G),
            np.ones(G),
            _Gamma(np.ones(G), np.ones(G)),
        )
        self.mu_v, self.mu_v_var = np.zeros((G, k)), np.ones((G, k))
        self.lam_v = _Gamma(np.ones((G, k)), np.ones((G, k)))


def _powers(X, P: BlockPowers | None = None) -> BlockPowers:
    """``P`` if given, else the :class:`BlockPowers` of ``X`` (a sparse matrix, read as
    a design with only a main block, or a :class:`fmlib.RelationalDesign`)."""
    return BlockPowers(X) if P is None else P


def prediction_moments(
    X, st: VariationalState, P: BlockPowers = None, sums=False, out: BlockSums = None
):
    r""":math:`\mathbb E_q[\hat y_i]` and :math:`\operatorname{Var}_q[\hat y_i]` of every row
    (module docstring), by :func:`fmlib.solvers.variational_blocks.block_moments`;
    ``X`` a sparse matrix or a :class:`fmlib.RelationalDesign`, ``P`` its
    :class:`BlockPowers` if already made.
    With ``sums``, also the per-rating sums :math:`(\sum_l a, \sum_l \sigma^2, \sum_l
    \sigma^2 a)` of every factor (and the relation block rows' own parts), a
    :class:`~fmlib.solvers.variational_blocks.BlockSums`, that :func:`update_V` starts
    from; written into ``out`` (earlier sums) if given."""
    mean, var, block_sums = block_moments(
        _powers(X, P), st.m0, st.s0, st.mw, st.sw, st.MV, st.SV, out
    )
    return (mean, var, block_sums) if sums else (mean, var)


def _group_hyper(theta_m, theta_s, group, G, mu_m, mu_s, lam: _Gamma):
    """CAVI steps for q(lambda_g) then q(mu_g) of parameters ``theta`` ((n,) or (n, k))."""
    member = sp.csr_matrix(
        (np.ones(group.size), (group, np.arange(group.size))), shape=(G, group.size)
    )
    m = np.asarray(member.sum(axis=1)).reshape((-1,) + (1,) * (theta_m.ndim - 1))
    dev = (
        member @ ((theta_m**2) + theta_s)
        - 2 * mu_m * (member @ theta_m)
        + m * (mu_m**2 + mu_s)
    )
    lam = _Gamma(
        (A_LAMBDA + m + 1) / 2 + np.zeros_like(mu_m),
        (B_LAMBDA + dev + GAMMA0 * ((mu_m - MU0) ** 2 + mu_s)) / 2,
    )
    prec = lam.mean * (m + GAMMA0)
    mu_m = (member @ theta_m + GAMMA0 * MU0) / (m + GAMMA0)
    return mu_m, 1.0 / prec, lam


def _hyper_elbo(theta_m, theta_s, group, mu_m, mu_s, lam: _Gamma) -> float:
    """E log p(theta | mu, lambda) + E log p(mu | lambda) + E log p(lambda) + entropies of
    q(theta), q(mu), q(lambda)."""
    El, Ell = lam.mean[group], lam.log_mean[group]
    dev = (theta_m - mu_m[group]) ** 2 + theta_s + mu_s[group]
    out = np.sum(0.5 * Ell - 0.5 * _LOG_2PI - 0.5 * El * dev)
    out += np.sum(0.5 * np.log(2 * np.pi * np.e * theta_s))
    out += np.sum(
        0.5 * np.log(GAMMA0)
        + 0.5 * lam.log_mean
        - 0.5 * _LOG_2PI
        - 0.5 * GAMMA0 * lam.mean * ((mu_m - MU0) ** 2 + mu_s)
    )
    out += np.sum(_gamma_prior(lam, A_LAMBDA, B_LAMBDA)) + np.sum(lam.entropy())
    out += np.sum(0.5 * np.log(2 * np.pi * np.e * mu_s))
    return float(out)


def elbo(
    X: sp.csr_matrix,
    y: np.ndarray,
    st: VariationalState,
    group: np.ndarray,
    task: str,
    moments: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    r"""The evidence lower bound :math:`\mathbb E_q[\log p(\mathbf y, \Theta)] +
    H[q]` of the current factors (for classification with :math:`q(\mathbf z)` at its
    optimum for the current :math:`\mathbb E[\hat y]`), the flat prior of :math:`w_0`
    contributing its entropy only. ``moments``: :func:`prediction_moments` of the
    current factors, if already computed."""
    mean, var = prediction_moments(X, st) if moments is None else moments
    N = y.size
    if task == "classification":
        data = np.sum(log_ndtr(np.where(y > 0, mean, -mean))) - 0.5 * np.sum(var)
    else:
        a = st.alpha
        data = (
            0.5 * N * (a.log_mean - _LOG_2PI)
            - 0.5 * a.mean * np.sum((y - mean) ** 2 + var)
            + _gamma_prior(a, A0, B0)
            + a.entropy()
        )
    out = float(data) + 0.5 * np.log(2 * np.pi * np.e * st.s0)
    out += _hyper_elbo(st.mw, st.sw, group, st.mu_w, st.mu_w_var, st.lam_w)
    out += _hyper_elbo(st.MV, st.SV, group, st.mu_v, st.mu_v_var, st.lam_v)
    return out


def latent_means(mean: np.ndarray, y: np.ndarray) -> np.ndarray:
    r""":math:`\mathbb E[z_i]` of :math:`\mathcal N(m_i, 1)` truncated to the label's
    side: :math:`m \pm \varphi(m)/\Phi(\pm m)`."""
    s = np.where(y > 0, 1.0, -1.0)
    return mean + s * np.exp(-0.5 * mean**2 - 0.5 * _LOG_2PI - log_ndtr(s * mean))


def update_w0(st: VariationalState, r: np.ndarray, alpha: float) -> None:
    """q(w0) at its optimum (flat prior, h = 1); ``r`` follows in place."""
    P = alpha * r.size
    m = (alpha * np.sum(r + st.m0)) / P
    r -= m - st.m0
    st.m0, st.s0 = float(m), 1.0 / P


def update_w(
    X,
    st: VariationalState,
    r: np.ndarray,
    alpha: float,
    group: np.ndarray,
    G: int,
    P: BlockPowers | None = None,
) -> None:
    """q(lambda), q(mu) of w, then every q(w_l) in column order (h = x_l): the main
    block's columns by :func:`_sweep_w`, then every relation block's by
    :func:`fmlib.solvers.variational_blocks.sweep_w_block`. ``X`` a sparse matrix (a
    main block only) or a :class:`fmlib.RelationalDesign`; ``P``: its
    :class:`BlockPowers` if already made."""
    st.mu_w, st.mu_w_var, st.lam_w = _group_hyper(
        st.mw, st.sw, group, G, st.mu_w, st.mu_w_var, st.lam_w
    )
    P = _powers(X, P)
    El = np.ascontiguousarray(st.lam_w.mean[group])
    Emu = np.ascontiguousarray(st.mu_w[group])
    n0, alpha = P.n0, float(alpha)
    main = (P.main_ptr, P.main_idx, P.main_x)
    _sweep_w(*main, st.mw[:n0], st.sw[:n0], r, El[:n0], Emu[:n0], alpha)
    for rel in P.relations:
        sweep_w_block(st.mw, st.sw, r, *rel.loops, El, Emu, alpha)


@_jit
def _sweep_w(ptr, idx, val, mw, sw, r, El, Emu, alpha):
    """The column loop of :func:`update_w`, compiled: precision alpha sum x^2 + E[lambda],
    mean (alpha sum x (r + x m_old) + E[lambda] E[mu]) / precision."""
    for l in range(ptr.size - 1):
        P = El[l]
        b = El[l] * Emu[l]
        m_old = mw[l]
        for p in range(ptr[l], ptr[l + 1]):
            x = val[p]
            P += alpha * x * x
            b += alpha * x * (r[idx[p]] + x * m_old)
        m = b / P
        for p in range(ptr[l], ptr[l + 1]):
            r[idx[p]] -= (m - m_old) * val[p]
        mw[l] = m
        sw[l] = 1.0 / P


def update_V(
    X,
    st: VariationalState,
    r: np.ndarray,
    alpha: float,
    group: np.ndarray,
    G: int,
    P: BlockPowers | None = None,
    sums: BlockSums | None = None,
) -> None:
    """q(lambda), q(mu) of V, then every q(v_lf), factor by factor, column by column,
    with the three per-rating sums of the module docstring (for all factors at once:
    a factor's sums change only while that factor is updated): for every factor, the
    main block's columns by :func:`_sweep_v`, then every relation block's by
    :func:`fmlib.solvers.variational_blocks.sweep_v_block` (its rows' parts ``Q, S, T``
    are the stacked rows ``row0..`` of ``sums``). ``X``, ``P`` as for
    :func:`update_w`; ``sums``: those of the current ``V`` if already computed
    (:func:`prediction_moments` with ``sums``)."""
    st.mu_v, st.mu_v_var, st.lam_v = _group_hyper(
        st.MV, st.SV, group, G, st.mu_v, st.mu_v_var, st.lam_v
    )
    P = _powers(X, P)
    if sums is None:
        sums = block_moments(P, st.m0, st.s0, st.mw, st.sw, st.MV, st.SV)[2]
    MV, SV = np.ascontiguousarray(st.MV.T), np.ascontiguousarray(st.SV.T)
    El = np.ascontiguousarray(st.lam_v.mean[group].T)
    Emu = np.ascontiguousarray(st.mu_v[group].T)
    n0, alpha = P.n0, float(alpha)
    main = (P.main_ptr, P.main_idx, P.main_x)
    for f in range(MV.shape[0]):
        q, s2, t = sums.q[f], sums.s2[f], sums.t[f]
        _sweep_v(
            *main, MV[f, :n0], SV[f, :n0], q, s2, t, r, El[f, :n0], Emu[f, :n0], alpha
        )
        for rel in P.relations:
            rows = slice(rel.row0, rel.row0 + rel.n_b.size)
            own = (sums.Q[f, rows], sums.S[f, rows], sums.T[f, rows])
            sweep_v_block(
                MV[f], SV[f], q, s2, t, r, *own, *rel.loops, El[f], Emu[f], alpha
            )
    st.MV[:], st.SV[:] = MV.T, SV.T


# a rating's numbers side by side in one (N, 4) array, so that the column loop's random
# reads of a rating touch one cache line: q, s2, t of the factor and the residual r
_Q, _S, _T, _R = range(4)


@_jit
def _sweep_v(ptr, idx, val, mv, sv, q, s2, t, r, El, Emu, alpha):
    """The column loop of :func:`update_V` for one factor, compiled: with Q, S, T the
    sums without column l (module docstring), precision alpha sum x^2 (Q^2 + S) +
    E[lambda], mean (alpha sum x (Q (r + x m_old Q) - S Q + T) + E[lambda] E[mu]) / P;
    then r, q, s2, t of the column's rows follow the change (in a copy ``C`` with a
    rating's four numbers side by side, written back at the end)."""
    C = np.empty((r.size if ptr[-1] > 0 else 0, 4))
    for i in range(C.shape[0]):
        C[i, _Q], C[i, _S], C[i, _T], C[i, _R] = q[i], s2[i], t[i], r[i]
    for l in range(ptr.size - 1):
        if ptr[l] == ptr[l + 1]:  # no data: the prior
            mv[l] = Emu[l]
            sv[l] = 1.0 / El[l]
            continue
        m_old, s_old = mv[l], sv[l]
        P = El[l]
        b = El[l] * Emu[l]
        for p in range(ptr[l], ptr[l + 1]):
            i, x = idx[p], val[p]
            Q = C[i, _Q] - x * m_old
            S = C[i, _S] - x * x * s_old
            T = C[i, _T] - x * x * x * s_old * m_old
            P += alpha * x * x * (Q * Q + S)
            b += alpha * x * (Q * (C[i, _R] + x * m_old * Q) - S * Q + T)
        m = b / P
        s = 1.0 / P
        for p in range(ptr[l], ptr[l + 1]):
            i, x = idx[p], val[p]
            Q = C[i, _Q] - x * m_old
            C[i, _R] -= (m - m_old) * x * Q
            C[i, _Q] += x * (m - m_old)
            C[i, _S] += x * x * (s - s_old)
            C[i, _T] += x * x * x * (s * m - s_old * m_old)
        mv[l] = m
        sv[l] = s
    for i in range(C.shape[0]):
        q[i], s2[i], t[i], r[i] = C[i, _Q], C[i, _S], C[i, _T], C[i, _R]


def cavi_iteration(
    X,
    st: VariationalState,
    group: np.ndarray,
    G: int,
    alpha: float,
    r: np.ndarray,
    P: BlockPowers | None = None,
    sums: BlockSums | None = None,
) -> None:
    """One pass: :func:`update_w0`, :func:`update_w`, :func:`update_V`; ``r`` (= target
    - E[ŷ]) is kept up to date in place; ``P``, ``sums`` as for :func:`update_V`."""
    update_w0(st, r, alpha)
    update_w(X, st, r, alpha, group, G, P)
    update_V(X, st, r, alpha, group, G, P, sums)


class VariationalFM:
    r"""The Bayesian FM fitted by mean-field variational inference (coordinate ascent).

    Deterministic given the seed (it sets only the starting factor means), no samples:
    one set of means and variances. See the module docstring for the factors, the
    updates and the ELBO; myFM's ``VariationalFMRegressor`` fits the same model.
    ``X`` is a matrix (``scipy.sparse`` or dense) or a :class:`fmlib.RelationalDesign`,
    fitted and predicted on its relation blocks without flattening them
    (:mod:`fmlib.solvers.variational_blocks`; the same fit as on ``X.to_csr()``).

    Args:
        k: number of latent factors.
        num_iter: coordinate-ascent passes.
        task: ``"regression"`` or ``"classification"`` (probit, labels in {0, 1} or
            {-1, +1}).
        groups: the prior group of every column, as for :class:`fmlib.BayesianFM`.
        init_std: standard deviation of the starting means of ``V`` (and the starting
            standard deviation of every factor).
        seed: seed of the starting ``V``.

    After :meth:`fit`: ``w0_, w_, V_`` (posterior means), ``w0_var_, w_var_, V_var_``
    (variances), ``alpha_`` (:math:`\mathbb E[\alpha]`), ``trace_`` (``elbo`` and the
    training metric per iteration), ``n_features_in_``, ``groups_``.

    Example:
        >>> X, y, _ = fmlib.rendle_figure1()
        >>> vfm = VariationalFM(k=2, num_iter=20, seed=0).fit(X, y)
        >>> bool(vfm.trace_["elbo"].is_monotonic_increasing)
        True
    """

    def __init__(
        self,
        k: int = 8,
        num_iter: int = 50,
        task: str = "regression",
        groups: Any = None,
        init_std: float = 0.1,
        seed: int | None = None,
    ):
        self.k = k
        self.num_iter = num_iter
        self.task = task
        self.groups = groups
        self.init_std = init_std
        self.seed = seed

    def _matrix(self, X, name: str):
        """``X`` checked: a float64 CSR matrix, or a relational design (kept as
        blocks, float64)."""
        if is_relational(X):
            return self._design(X, name)
        if not sp.issparse(X):
            try:
                X = np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"`{name}` must be a matrix of numbers (scipy.sparse, numpy "
                    f"or a RelationalDesign); got {type(X).__name__}."
                ) from None
            if X.ndim != 2:
                raise ValueError(f"`{name}` must be 2-D; got shape {X.shape}.")
        X = sp.csr_matrix(X, dtype=np.float64)
        if not np.all(np.isfinite(X.data)):
            raise ValueError(f"`{name}` must be finite; it has NaN or infinite values.")
        self._check_width(X.shape[1], name)
        return X

    def _design(self, X, name: str):
        """A relational design checked as :meth:`_matrix` checks a matrix."""
        if X.X.dtype != np.float64:
            X = X.astype(np.float64)
        for label, M in [("main block", X.X)] + [
            (f"block {b.name!r}", b.data) for b in X.blocks
        ]:
            if not np.all(np.isfinite(M.data)):
                raise ValueError(
                    f"`{name}` must be finite; its {label} has NaN or infinite values."
                )
        self._check_width(X.shape[1], name)
        return X

    def _check_width(self, width: int, name: str) -> None:
        n = getattr(self, "n_features_in_", None)
        if n is not None and width != n:
            raise ValueError(
                f"`{name}` has {width} feature columns, but the model "
                f"expects n_features={n}."
            )

    def fit(self, X, y) -> "VariationalFM":
        check_int(self.k, "k")
        check_int(self.num_iter, "num_iter")
        check_float(self.init_std, "init_std")
        check_seed(self.seed)
        if self.task not in ("regression", "classification"):
            raise ValueError(
                f"`task` must be one of ('regression', 'classification'); "
                f"got {self.task!r}."
            )
        self.__dict__.pop("n_features_in_", None)
        X = self._matrix(X, "X")
        if X.shape[0] == 0:
            raise ValueError("`X` has no rows; there is nothing to train on.")
        y = as_labels(as_targets(y, X.shape[0], name="y"), self.task, "y")
        self.n_features_in_ = X.shape[1]
        group = column_groups(self.groups, X.shape[1])
        self.groups_ = (
            list(self.groups)
            if isinstance(self.groups, Mapping)
            else ["all"]
            if self.groups is None
            else [str(g) for g in np.unique(np.asarray(self.groups))]
        )
        G = len(self.groups_)
        rng = np.random.default_rng(self.seed)
        classify = self.task == "classification"
        st = VariationalState(
            X.shape[1],
            self.k,
            G,
            self.init_std,
            rng,
            w0=0.0 if classify else float(np.mean(y)),
        )
        P = BlockPowers(X)  # relation blocks stay blocks; a matrix is a main block
        mean, _, sums = prediction_moments(X, st, P, sums=True)
        target = latent_means(mean, y) if classify else y
        r = target - mean
        rows = []
        for it in range(1, self.num_iter + 1):
            alpha = 1.0 if classify else float(st.alpha.mean)
            cavi_iteration(X, st, group, G, alpha, r, P, sums)
            mean, var, sums = prediction_moments(X, st, P, sums=True, out=sums)
            if classify:
                target = latent_means(mean, y)
            else:
                st.alpha = _Gamma(
                    (A0 + y.size) / 2, (B0 + np.sum((y - mean) ** 2 + var)) / 2
                )
            r = target - mean
            row = {
                "iteration": it,
                "elbo": elbo(X, y, st, group, self.task, (mean, var)),
                "alpha": float(st.alpha.mean) if not classify else 1.0,
            }
            if classify:
                row["train_accuracy"] = float(np.mean((mean > 0) == (y > 0)))
            else:
                row["train_rmse"] = float(np.sqrt(np.mean((y - mean) ** 2)))
            rows.append(row)
        self.state_ = st
        self.w0_, self.w_, self.V_ = st.m0, st.mw.copy(), st.MV.copy()
        self.w0_var_, self.w_var_, self.V_var_ = st.s0, st.sw.copy(), st.SV.copy()
        self.alpha_ = 1.0 if classify else float(st.alpha.mean)
        self.trace_ = pd.DataFrame(rows).set_index("iteration")
        return self

    def predict_moments(self, X) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\mathbb E_q[\hat y]` and :math:`\operatorname{Var}_q[\hat y]` of every
        row (the posterior spread of the score; add :math:`1/\alpha` for a new rating's)."""
        if not hasattr(self, "state_"):
            raise RuntimeError("call fit before predicting.")
        return prediction_moments(self._matrix(X, "X"), self.state_)

    def predict(self, X) -> np.ndarray:
        """Regression: :math:`\\mathbb E_q[\\hat y]`. Classification: 1 where
        :meth:`predict_proba` > 0.5, else 0."""
        if self.task == "classification":
            return (self.predict_proba(X) > 0.5).astype(np.int64)
        return self.predict_moments(X)[0]

    def predict_proba(self, X) -> np.ndarray:
        r"""Classification: :math:`P(y = 1) = \Phi\big(\mathbb E[\hat y] / \sqrt{1 +
        \operatorname{Var}[\hat y]}\big)`, the probit integrated over the Gaussian with
        the score's mean and variance under :math:`q`."""
        if self.task != "classification":
            raise AttributeError(
                "predict_proba is for task='classification'; this model "
                "was made for regression."
            )
        mean, var = self.predict_moments(X)
        return ndtr(mean / np.sqrt(1.0 + var))

    def __repr__(self) -> str:
        return (
            f"VariationalFM(k={self.k}, num_iter={self.num_iter}, task={self.task!r})"
        )
