r"""libFM's four learning methods, step for step, compiled with numba: ``sgd``, ``sgda``,
``als`` and ``mcmc`` as libFM 1.4.4 runs them (Rendle, ACM TIST 2012; WSDM 2012).

The chapter "Using fmlib with scikit-learn and libFM files" uses them through
``python -m fmlib``; the chapters on SGD and on coordinate descent and MCMC derive them.

**Why compiled loops.** libFM's ``-method sgd`` takes one step per training row, in file
order, with the gradient of *that row's* loss plus a penalty on the parameters *that row
touches*. A TensorFlow step costs tens of microseconds of dispatch whatever its size, so
80,000 single-row steps per epoch take seconds; the book's TF loop therefore takes
minibatch steps on the *mean* loss (:func:`fmlib.fit`, ``solver="sgd"``), where
:math:`\eta` and :math:`\lambda` mean something else. These loops, a few hundred
nanoseconds per row, are libFM's algorithms with libFM's meaning of every flag.

**The model** (Rendle, ICDM 2010, eq. 1 and lemma 3.1), with :math:`q_f = \sum_j v_{j,f}
x_j`:

.. math::

    \hat y(\mathbf x) = w_0 + \sum_j w_j x_j
      + \tfrac12 \sum_{f=1}^k \Big(q_f^2 - \sum_j v_{j,f}^2 x_j^2\Big).

**sgd** (libFM ``fm_learn_sgd_element``): for each row, :math:`\hat y` clipped to the
range of the training targets (regression), the loss derivative
:math:`g = \hat y - y` (regression) or :math:`g = -y\,(1 - \sigma(y \hat y))`
(classification, :math:`y = \pm 1`), then, for :math:`w_0` and the row's non-zero
features only,

.. math::

    w_0 \leftarrow w_0 - \eta (g + \lambda_0 w_0),\quad
    w_j \leftarrow w_j - \eta (g\, x_j + \lambda_w w_j),\quad
    v_{j,f} \leftarrow v_{j,f} - \eta \big(g\, x_j (q_f - v_{j,f} x_j)
        + \lambda_v v_{j,f}\big),

with :math:`q_f` from before the step. ``-regular 'r0,r1,r2'`` is
:math:`(\lambda_0, \lambda_w, \lambda_v)`.

**sgda** (``fm_learn_sgd_element_adapt_reg``; Rendle, "Learning recommender systems with
adaptive regularization", WSDM 2012): the same step on :math:`(\hat y - y)^2` (so
:math:`g = 2(\hat y - y)`) with penalty :math:`2\lambda\theta`, one :math:`\lambda_w` per
group and one :math:`\lambda_{v,f}` per group and factor, all starting at 0, and after every
training step (from the second epoch on) one step on :math:`\lambda` against the loss of
the next validation row under the parameters :math:`\theta' = \theta - \eta(\nabla_\theta
+ 2\lambda\theta)` that the step would give:

.. math::

    \lambda_{w,g} \leftarrow \max\!\Big(0,\; \lambda_{w,g} - \eta\, g'
        \cdot\big(-2\eta \sum_{j \in g} x_j w_j\big)\Big),\quad
    \lambda_{v,g,f} \leftarrow \max\!\Big(0,\; \lambda_{v,g,f} - \eta\, g'
        \cdot\big(-2\eta\,(q'_f\, q_{g,f} - \sum_{j\in g} x_j^2 v_{j,f} v'_{j,f})\big)\Big),

where :math:`g'` is the loss derivative at the validation row under :math:`\theta'`,
:math:`q'_f = \sum_j x_j v'_{j,f}` and :math:`q_{g,f} = \sum_{j\in g} x_j v_{j,f}`.

**als / mcmc** (``fm_learn_mcmc_simultaneous``): one parameter at a time from its
conditional (:mod:`fmlib.solvers.coordinate` derives it), :math:`w_0`, then every
:math:`w_j`, then factor by factor every :math:`v_{j,f}`, features in index order. ``als``
sets each to the conditional mean with :math:`\alpha = 1`, prior means 0 and precisions
``-regular`` (:math:`\lambda_0` for :math:`w_0`); ``mcmc`` draws it and draws
:math:`\alpha` and per-group :math:`\mu, \lambda` from their conditionals
(hyper-priors :math:`\alpha_0 = \beta_0 = \gamma_0 = 1, \mu_0 = 0`). A feature with no
non-zero in the training rows has the prior as its conditional: mcmc draws it from
:math:`\mathcal N(\mu_g, 1/\lambda_g)`, als sets it to :math:`\mu = 0`, and where the
precision is 0 (als with :math:`\lambda = 0`) libFM sets it to 0 as well.

**als / mcmc on relations** (libFM's ``-relation``; Rendle, "Scaling factorization
machines to relational data", VLDB 2013): row :math:`i` is a main row joined with row
:math:`\phi_r(i)` of every relation block :math:`\mathbf B^{(r)}`. The sweeps of
:class:`RelationalCoordinateLearner` draw the same parameters in the same order as the
flat ones on the joined matrix, but sum a block feature's :math:`\sum h^2` and
:math:`\sum h e` over block rows from per-block-row caches (libFM's ``relation_cache``;
:func:`_draw_w_relation`, :func:`_draw_v_relation`), so a sweep costs
:math:`O(k(N_z(\mathbf X) + \sum_r N_z(\mathbf B^{(r)}) + N R))` instead of
:math:`O(k\,N_z)` of the joined matrix.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

REGRESSION, CLASSIFICATION = 0, 1


def _jit(function):
    """``numba.njit`` with the on-disk cache (compiled once per machine) where possible."""
    try:
        return numba.njit(cache=True, error_model="numpy")(function)
    except RuntimeError:  # no writable cache directory
        return numba.njit(error_model="numpy")(function)


class Rows(NamedTuple):
    """A sparse matrix as CSR arrays: row ``i``'s non-zeros are
    ``indices[indptr[i]:indptr[i+1]]`` with values ``data[...]``; ``n_cols`` columns."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


def as_rows(X: Any, n_cols: int | None = None) -> Rows:
    """:class:`Rows` from a ``scipy.sparse`` matrix, a dense 2-D array or :class:`Rows`,
    widened to ``n_cols`` columns if given."""
    if isinstance(X, Rows):
        rows = X
    elif hasattr(X, "tocsr"):
        X = X.tocsr()
        X.sort_indices()
        rows = Rows(
            np.asarray(X.indptr, np.int64),
            np.asarray(X.indices, np.int64),
            np.asarray(X.data, np.float64),
            int(X.shape[1]),
        )
    else:
        dense = np.asarray(X, np.float64)
        if dense.ndim != 2:
            raise ValueError(
                f"`X` must be 2-D (rows, features); got shape {dense.shape}."
            )
        r, c = np.nonzero(dense)
        indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(r, minlength=dense.shape[0]))]
        )
        rows = Rows(
            indptr.astype(np.int64), c.astype(np.int64), dense[r, c], dense.shape[1]
        )
    if n_cols is not None and n_cols != rows.n_cols:
        if n_cols < rows.n_cols:
            raise ValueError(
                f"`n_cols` must be >= the matrix's {rows.n_cols} columns; got {n_cols}."
            )
        rows = rows._replace(n_cols=int(n_cols))
    return rows


def transpose(rows: Rows) -> Rows:
    """The CSC view (libFM's ``data_t``): row ``j`` of the result lists feature ``j``'s
    training rows (in increasing order) and values."""
    counts = np.bincount(rows.indices, minlength=rows.n_cols)
    indptr = np.zeros(rows.n_cols + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    row_of = np.repeat(np.arange(rows.n_rows, dtype=np.int64), np.diff(rows.indptr))
    order = np.argsort(rows.indices, kind="stable")
    return Rows(indptr, row_of[order], rows.data[order], rows.n_rows)


def _check_fit_inputs(rows: Rows, y, params: "Params", name: str = "y") -> np.ndarray:
    """``y`` as float64 with one target per row; ``rows`` no wider than the model."""
    if not isinstance(rows, Rows):
        raise TypeError(
            f"`rows` must be fmlib.solvers.libfm.Rows (see as_rows); got "
            f"{type(rows).__name__}."
        )
    y = np.asarray(y, np.float64)
    if y.shape != (rows.n_rows,):
        raise ValueError(
            f"`{name}` must have one target per row, shape ({rows.n_rows},); "
            f"got shape {y.shape}."
        )
    if rows.n_cols > params.w.shape[0]:
        raise ValueError(
            f"the rows have {rows.n_cols} columns but `params` "
            f"{params.w.shape[0]} features."
        )
    return y


def _check_regular(regular, name: str = "regular") -> tuple[float, float, float]:
    values = tuple(float(r) for r in regular)
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(
            f"`{name}` must be three numbers >= 0 (lambda_0, lambda_w, "
            f"lambda_v); got {regular!r}."
        )
    return values


def _check_groups(groups, n: int) -> np.ndarray:
    if groups is None:
        return np.zeros(n, np.int64)
    groups = np.asarray(groups)
    if groups.shape != (n,) or (
        groups.size
        and (not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0)
    ):
        raise ValueError(
            f"`groups` must be ({n},) integers >= 0, one group per feature; got "
            f"shape {groups.shape}, dtype {groups.dtype}."
        )
    return groups.astype(np.int64)


class Params(NamedTuple):
    """libFM's model: ``w0`` (a length-1 array, updated in place), ``w`` (n,), ``V`` (n, k),
    and whether the bias and the linear term are used (``-dim 'k0,k1,k'``)."""

    w0: np.ndarray
    w: np.ndarray
    V: np.ndarray
    k0: bool = True
    k1: bool = True


def init_params(
    n: int,
    k: int,
    init_stdev: float,
    seed: int,
    method: str,
    k0: bool = True,
    k1: bool = True,
) -> Params:
    """libFM's start: :math:`w_0 = 0`, :math:`v_{j,f} \\sim \\mathcal N(0, \\sigma^2)`,
    and :math:`w_j = 0` for sgd/sgda, :math:`w_j \\sim \\mathcal N(0, \\sigma^2)` for
    als/mcmc (libFM draws ``w`` when the method is mcmc, and als is mcmc for it). The draws
    come from numba's generator seeded with ``seed``, not libFM's ``rand()``."""
    seed_numba(seed)
    V = _normal_matrix(n, k, float(init_stdev))
    w = (
        _normal_matrix(n, 1, float(init_stdev))[:, 0]
        if method in ("als", "mcmc")
        else np.zeros(n)
    )
    return Params(np.zeros(1), w, V, bool(k0), bool(k1))


@_jit
def seed_numba(seed):
    """Seed numba's generator (it is separate from numpy's)."""
    np.random.seed(seed)


@_jit
def _normal_matrix(n, k, std):
    out = np.empty((n, k))
    for j in range(n):
        for f in range(k):
            out[j, f] = std * np.random.standard_normal()
    return out


# --- prediction --------------------------------------------------------------------------
@numba.njit(inline="always", error_model="numpy")  # inlined into each loop (no cache)
def _factor_sums(indices, data, V, a, b, q, q2):
    r""":math:`q_f = \sum_j v_{j,f} x_j` and :math:`\sum_j v_{j,f}^2 x_j^2` of the
    non-zeros ``a:b`` into ``q``, ``q2``: features outer, factors inner (``V``'s rows are
    contiguous), each sum still in feature order. Inlined: a call per row costs a quarter
    of an sgd epoch."""
    for f in range(V.shape[1]):
        q[f] = 0.0
        q2[f] = 0.0
    for t in range(a, b):
        j = indices[t]
        x = data[t]
        for f in range(V.shape[1]):
            d = V[j, f] * x
            q[f] += d
            q2[f] += d * d


@_jit
def _predict(indptr, indices, data, w0, w, V, k0, k1, out):
    k = V.shape[1]
    q = np.empty(k)
    q2 = np.empty(k)
    for i in range(len(indptr) - 1):
        p = w0 if k0 else 0.0
        a, b = indptr[i], indptr[i + 1]
        if k1:
            for t in range(a, b):
                p += w[indices[t]] * data[t]
        _factor_sums(indices, data, V, a, b, q, q2)
        for f in range(k):
            p += 0.5 * (q[f] * q[f] - q2[f])
        out[i] = p


def predict(rows: Rows, params: Params) -> np.ndarray:
    """:math:`\\hat y` of every row, unclipped (float64)."""
    out = np.empty(rows.n_rows)
    if rows.n_cols > params.w.shape[0]:
        raise ValueError(
            f"the data has {rows.n_cols} columns but the model "
            f"{params.w.shape[0]} features."
        )
    _predict(
        rows.indptr,
        rows.indices,
        rows.data,
        params.w0[0],
        params.w,
        params.V,
        params.k0,
        params.k1,
        out,
    )
    return out


# --- sgd ---------------------------------------------------------------------------------
@_jit
def _sgd_epoch(
    indptr,
    indices,
    data,
    y,
    w0,
    w,
    V,
    lr,
    reg0,
    regw,
    regv,
    k0,
    k1,
    task,
    min_target,
    max_target,
    q,
):
    k = V.shape[1]
    q2 = np.empty(k)
    for i in range(len(indptr) - 1):
        a, b = indptr[i], indptr[i + 1]
        p = w0[0] if k0 else 0.0
        if k1:
            for t in range(a, b):
                p += w[indices[t]] * data[t]
        _factor_sums(indices, data, V, a, b, q, q2)
        for f in range(k):
            p += 0.5 * (q[f] * q[f] - q2[f])
        if task == 0:
            p = min(max_target, max(min_target, p))
            g = p - y[i]
        else:
            g = -y[i] * (1.0 - 1.0 / (1.0 + math.exp(-y[i] * p)))
        if k0:
            w0[0] -= lr * (g + reg0 * w0[0])
        if k1:
            for t in range(a, b):
                j = indices[t]
                w[j] -= lr * (g * data[t] + regw * w[j])
        for t in range(a, b):
            j = indices[t]
            x = data[t]
            for f in range(k):
                v = V[j, f]
                V[j, f] = v - lr * (g * (q[f] * x - v * x * x) + regv * v)


def sgd_epoch(
    rows: Rows,
    y: np.ndarray,
    params: Params,
    learn_rate: float,
    regular: tuple[float, float, float],
    task: int,
    target_range: tuple,
) -> None:
    r"""One libFM ``sgd`` epoch: a step per row in order (module docstring), in place.

    Args:
        rows, y: the training rows (:class:`Rows`) and targets (±1 for classification).
        params: the model, updated in place.
        learn_rate: :math:`\eta` > 0.
        regular: :math:`(\lambda_0, \lambda_w, \lambda_v)`, each >= 0.
        task: :data:`REGRESSION` or :data:`CLASSIFICATION`.
        target_range: ``(min, max)`` the regression prediction is clipped to.
    """
    y = _check_fit_inputs(rows, y, params)
    regular = _check_regular(regular)
    if not (np.isfinite(learn_rate) and learn_rate > 0):
        raise ValueError(f"`learn_rate` must be a number > 0; got {learn_rate!r}.")
    if task not in (REGRESSION, CLASSIFICATION):
        raise ValueError(
            f"`task` must be {REGRESSION} (regression) or {CLASSIFICATION} "
            f"(classification); got {task!r}."
        )
    q = np.empty(params.V.shape[1])
    _sgd_epoch(
        rows.indptr,
        rows.indices,
        rows.data,
        y,
        params.w0,
        params.w,
        params.V,
        float(learn_rate),
        *regular,
        params.k0,
        params.k1,
        int(task),
        float(target_range[0]),
        float(target_range[1]),
        q,
    )


# --- sgda --------------------------------------------------------------------------------
@_jit
def _variances(w, V, out):
    """libFM's ``update_means``: the variance of ``w`` and of every column of ``V``."""
    n, k = V.shape
    mw = 0.0
    vw = 0.0
    for j in range(n):
        mw += w[j]
        vw += w[j] * w[j]
    mw /= n
    out[0] = vw / n - mw * mw
    for f in range(k):
        m = 0.0
        s = 0.0
        for j in range(n):
            m += V[j, f]
            s += V[j, f] * V[j, f]
        m /= n
        out[1 + f] = s / n - m * m


@_jit
def _sgda_epoch(
    indptr,
    indices,
    data,
    y,
    vptr,
    vind,
    vdat,
    vy,
    groups,
    n_groups,
    w0,
    w,
    V,
    lr,
    reg_w,
    reg_v,
    grad_w,
    grad_v,
    k0,
    k1,
    task,
    min_target,
    max_target,
    lambda_steps,
    q,
    variances,
):
    k = V.shape[1]
    lw_grad = np.zeros(n_groups)
    sum_f = np.zeros((n_groups, k))
    sum_ff = np.zeros((n_groups, k))
    n_val = len(vptr) - 1
    r = 0
    q2 = np.empty(k)
    _variances(w, V, variances)
    for i in range(len(indptr) - 1):
        # theta step on training row i
        a, b = indptr[i], indptr[i + 1]
        p = w0[0] if k0 else 0.0
        if k1:
            for t in range(a, b):
                p += w[indices[t]] * data[t]
        _factor_sums(indices, data, V, a, b, q, q2)
        for f in range(k):
            p += 0.5 * (q[f] * q[f] - q2[f])
        if task == 0:
            p = min(max_target, max(min_target, p))
            g = 2.0 * (p - y[i])
        else:
            g = y[i] * (1.0 / (1.0 + math.exp(-y[i] * p)) - 1.0)
        if k0:
            w0[0] -= lr * g  # reg_0 = 0: no penalty on the bias
        if k1:
            for t in range(a, b):
                j = indices[t]
                grad_w[j] = g * data[t]
                w[j] -= lr * (grad_w[j] + 2.0 * reg_w[groups[j]] * w[j])
        for t in range(a, b):
            j = indices[t]
            x = data[t]
            for f in range(k):
                v = V[j, f]
                grad_v[j, f] = g * (x * (q[f] - v * x))
                V[j, f] = v - lr * (grad_v[j, f] + 2.0 * reg_v[groups[j], f] * v)
        if not lambda_steps:
            continue
        # lambda step on the next validation row, under theta' = theta - lr (grad + 2 l theta)
        if r == n_val:
            _variances(w, V, variances)
            r = 0
        a, b = vptr[r], vptr[r + 1]
        p = w0[0] if k0 else 0.0
        if k1:
            for t in range(a, b):
                j = vind[t]
                p += (w[j] - lr * (grad_w[j] + 2.0 * reg_w[groups[j]] * w[j])) * vdat[t]
        # q_f, sum_j x_j^2 v'_jf^2 and, per group c, q_cf and sum_j x_j^2 v_jf v'_jf
        q[:] = 0.0
        q2[:] = 0.0
        sum_f[:, :] = 0.0
        sum_ff[:, :] = 0.0
        for t in range(a, b):
            j = vind[t]
            x = vdat[t]
            c = groups[j]
            for f in range(k):
                v = V[j, f]
                v_dash = v - lr * (grad_v[j, f] + 2.0 * reg_v[c, f] * v)
                d = v_dash * x
                q[f] += d
                q2[f] += d * d
                sum_f[c, f] += v * x
                sum_ff[c, f] += v_dash * x * v * x
        for f in range(k):
            p += 0.5 * (q[f] * q[f] - q2[f])
        if task == 0:
            p = min(max_target, max(min_target, p))
            gl = 2.0 * (p - vy[r])
        else:
            gl = vy[r] * (1.0 / (1.0 + math.exp(-vy[r] * p)) - 1.0)
        if k1:
            lw_grad[:] = 0.0
            for t in range(a, b):
                j = vind[t]
                lw_grad[groups[j]] += vdat[t] * w[j]
            for c in range(n_groups):
                reg_w[c] = max(0.0, reg_w[c] - lr * gl * (-2.0 * lr * lw_grad[c]))
        for f in range(k):
            for c in range(n_groups):
                grad = -2.0 * lr * (q[f] * sum_f[c, f] - sum_ff[c, f])
                reg_v[c, f] = max(0.0, reg_v[c, f] - lr * gl * grad)
        r += 1


class SGDA:
    """libFM's ``sgda``: SGD whose regularisation is learned on a validation set.

    Args:
        rows, y: the training rows and targets (±1 for classification).
        validation, y_validation: the rows the :math:`\\lambda` steps are taken on.
        params: the model; libFM sets ``w`` to 0 at the start (done here).
        groups: ``(n,)`` group id of every feature (``-meta``), or None: one group.
        learn_rate: :math:`\\eta`.

    Attributes:
        reg_w: ``(G,)`` the learned :math:`\\lambda_{w,g}`; reg_v: ``(G, k)``.
        variances: ``(1 + k,)`` libFM's ``wvar, vvar0, ...`` at the last update.
    """

    def __init__(
        self,
        rows: Rows,
        y,
        validation: Rows,
        y_validation,
        params: Params,
        groups=None,
        learn_rate: float = 0.1,
        task: int = REGRESSION,
        target_range: tuple = (-np.inf, np.inf),
    ):
        n, k = params.V.shape
        if validation.n_rows == 0:
            raise ValueError("`validation` must have at least one row for sgda; got 0.")
        self.rows, self.y = rows, _check_fit_inputs(rows, y, params)
        self.validation = validation
        self.y_validation = _check_fit_inputs(
            validation, y_validation, params, "y_validation"
        )
        if not (np.isfinite(learn_rate) and learn_rate > 0):
            raise ValueError(f"`learn_rate` must be a number > 0; got {learn_rate!r}.")
        self.groups = _check_groups(groups, n)
        self.n_groups = int(self.groups.max()) + 1 if n else 1
        self.params = params
        params.w[:] = 0.0
        self.learn_rate, self.task, self.target_range = (
            float(learn_rate),
            int(task),
            target_range,
        )
        self.reg_w = np.zeros(self.n_groups)
        self.reg_v = np.zeros((self.n_groups, k))
        self.grad_w = np.zeros(n)
        self.grad_v = np.zeros((n, k))
        self.variances = np.full(1 + k, np.nan)
        self.epochs = 0

    def epoch(self) -> None:
        """One epoch: a step per training row and, from the second epoch on, a
        :math:`\\lambda` step per training row on the validation rows in turn."""
        p, r, v = self.params, self.rows, self.validation
        _sgda_epoch(
            r.indptr,
            r.indices,
            r.data,
            self.y,
            v.indptr,
            v.indices,
            v.data,
            self.y_validation,
            self.groups,
            self.n_groups,
            p.w0,
            p.w,
            p.V,
            self.learn_rate,
            self.reg_w,
            self.reg_v,
            self.grad_w,
            self.grad_v,
            p.k0,
            p.k1,
            self.task,
            float(self.target_range[0]),
            float(self.target_range[1]),
            self.epochs > 0,
            np.empty(p.V.shape[1]),
            self.variances,
        )
        self.epochs += 1


# --- als and mcmc ------------------------------------------------------------------------
@_jit
def _gamma(shape, rate, sample):
    """A Gamma(shape, rate) draw, or its mean's libFM stand-in ``shape / rate`` (als)."""
    if sample:
        return np.random.gamma(shape) / rate
    return shape / rate


@_jit
def _normal(mean, var, sample):
    if sample and var > 0.0 and not math.isnan(var):
        return mean + math.sqrt(var) * np.random.standard_normal()
    return mean


@_jit
def _draw_theta(theta, lam, mu, alpha, hsq, he, sample):
    """libFM's ``draw_w``/``draw_v`` from the sums ``hsq = sum h^2`` and ``he = sum h e``
    (``e = y_hat - y``): precision ``lam + alpha hsq``; 0 where it is 0 or not finite."""
    mean_part = he - theta * hsq
    var = 1.0 / (lam + alpha * hsq)
    if math.isnan(var) or math.isinf(var):
        return 0.0
    mean = -var * (alpha * mean_part - mu * lam)
    new = _normal(mean, var, sample)
    if math.isnan(new) or math.isinf(new):
        return theta
    return new


@_jit
def _draw_alpha(e, N, hyper, sample, multilevel):
    """libFM's ``draw_alpha``: :math:`\\alpha \\sim \\mathrm{Gamma}((\\alpha_0 + N)/2,
    (\\gamma_0 + \\sum_i e_i^2)/2)` (mcmc), :math:`\\alpha = \\alpha_0` (als). Returns it
    (also kept in ``hyper[0]``); a non-finite draw keeps the old value."""
    alpha_0, gamma_0 = hyper[1], hyper[3]
    if multilevel:
        gamma_n = gamma_0
        for i in range(N):
            gamma_n += e[i] * e[i]
        a = _gamma((alpha_0 + N) / 2.0, gamma_n / 2.0, sample)
        if not (math.isnan(a) or math.isinf(a)):
            hyper[0] = a
    else:
        hyper[0] = alpha_0
    return hyper[0]


@_jit
def _draw_w0(e, N, w0, reg0, alpha, sample):
    """libFM's ``draw_w0``: :math:`h = 1` on every row, prior :math:`\\mathcal N(0,
    1/\\lambda_0)`; the residuals follow."""
    s = 0.0
    for i in range(N):
        s += e[i] - w0[0]
    var = 1.0 / (reg0 + alpha * N)
    mean = -var * (alpha * s)
    new = _normal(mean, var, sample)
    if not (math.isnan(new) or math.isinf(new)):
        for i in range(N):
            e[i] -= w0[0] - new
        w0[0] = new


@_jit
def _draw_w_hyper(w, groups, n_per_group, hyper, w_mu, w_lambda, sample, multilevel):
    """libFM's ``draw_w_lambda`` then ``draw_w_mu`` (mcmc); als keeps :math:`\\lambda`
    and sets :math:`\\mu = \\mu_0`."""
    if multilevel:
        acc = np.zeros(len(n_per_group))
        _hyper_draw(
            w,
            groups,
            n_per_group,
            w_mu,
            w_lambda,
            hyper[1],
            hyper[2],
            hyper[3],
            hyper[4],
            sample,
            acc,
        )
    else:
        w_mu[:] = hyper[4]


@_jit
def _draw_v_hyper(V, groups, n_per_group, hyper, v_mu, v_lambda, sample, multilevel):
    """:func:`_draw_w_hyper` for every column of ``V`` in turn."""
    n, k = V.shape
    if not multilevel:
        v_mu[:, :] = hyper[4]
        return
    G = len(n_per_group)
    acc = np.zeros(G)
    col = np.empty(n)
    mu_f = np.empty(G)
    lam_f = np.empty(G)
    for f in range(k):
        for j in range(n):
            col[j] = V[j, f]
        mu_f[:] = v_mu[:, f]
        lam_f[:] = v_lambda[:, f]
        _hyper_draw(
            col,
            groups,
            n_per_group,
            mu_f,
            lam_f,
            hyper[1],
            hyper[2],
            hyper[3],
            hyper[4],
            sample,
            acc,
        )
        v_mu[:, f] = mu_f
        v_lambda[:, f] = lam_f


@_jit
def _draw_w_columns(
    cptr, crow, cdat, j_from, j_to, e, w, groups, w_mu, w_lambda, alpha, sample
):
    """libFM's ``draw_w`` for features ``j_from..j_to-1``: :math:`h_i = x_{ij}`, so
    :math:`\\sum h^2 = \\sum_i x_{ij}^2` and :math:`\\sum h e = \\sum_i x_{ij} e_i` over the
    feature's column; then :math:`e_i \\mathrel{-}= x_{ij}(w_j - w'_j)`."""
    for j in range(j_from, j_to):
        c = groups[j]
        hsq = 0.0
        he = 0.0
        for t in range(cptr[j], cptr[j + 1]):
            x = cdat[t]
            he += x * e[crow[t]]
            hsq += x * x
        old = w[j]
        new = _draw_theta(old, w_lambda[c], w_mu[c], alpha, hsq, he, sample)
        if new != old:
            for t in range(cptr[j], cptr[j + 1]):
                e[crow[t]] -= cdat[t] * (old - new)
            w[j] = new


@_jit
def _column_q(cptr, crow, cdat, j_from, j_to, V, f, q):
    """``q[i] += sum_j v_{j,f} x_{ij}`` over features ``j_from..j_to-1`` (libFM's
    ``add_main_q``), through the columns."""
    for j in range(j_from, j_to):
        v = V[j, f]
        for t in range(cptr[j], cptr[j + 1]):
            q[crow[t]] += v * cdat[t]


@_jit
def _draw_v_columns(
    cptr, crow, cdat, j_from, j_to, f, e, q, V, groups, v_mu, v_lambda, alpha, sample
):
    """libFM's ``draw_v`` for features ``j_from..j_to-1`` and factor ``f``:
    :math:`h_i = x_{ij}(q_{i,f} - x_{ij} v_{j,f})`; then :math:`q_{i,f} \\mathrel{-}=
    x_{ij}(v - v')` and :math:`e_i \\mathrel{-}= h_i (v - v')`."""
    for j in range(j_from, j_to):
        c = groups[j]
        old = V[j, f]
        hsq = 0.0
        he = 0.0
        for t in range(cptr[j], cptr[j + 1]):
            x = cdat[t]
            i = crow[t]
            h = x * (q[i] - x * old)
            he += h * e[i]
            hsq += h * h
        new = _draw_theta(old, v_lambda[c, f], v_mu[c, f], alpha, hsq, he, sample)
        if new != old:
            for t in range(cptr[j], cptr[j + 1]):
                x = cdat[t]
                i = crow[t]
                h = x * (q[i] - x * old)
                q[i] -= x * (old - new)
                e[i] -= h * (old - new)
            V[j, f] = new


@_jit
def _sweep(
    cptr,
    crow,
    cdat,
    N,
    e,
    q,
    w0,
    w,
    V,
    k0,
    k1,
    groups,
    n_per_group,
    hyper,
    w_mu,
    w_lambda,
    v_mu,
    v_lambda,
    sample,
    multilevel,
    reg0,
):
    """libFM's ``draw_all`` on flat data (the columns ``cptr, crow, cdat`` of all ``n``
    features): alpha, w0, (lambda_w, mu_w), w, (lambda_v, mu_v), then factor by factor V."""
    n, k = V.shape
    alpha = _draw_alpha(e, N, hyper, sample, multilevel)
    if k0:
        _draw_w0(e, N, w0, reg0, alpha, sample)
    if k1:
        _draw_w_hyper(w, groups, n_per_group, hyper, w_mu, w_lambda, sample, multilevel)
        _draw_w_columns(
            cptr, crow, cdat, 0, n, e, w, groups, w_mu, w_lambda, alpha, sample
        )
    if k > 0:
        _draw_v_hyper(V, groups, n_per_group, hyper, v_mu, v_lambda, sample, multilevel)
    for f in range(k):
        q[:] = 0.0
        _column_q(cptr, crow, cdat, 0, n, V, f, q)
        _draw_v_columns(
            cptr, crow, cdat, 0, n, f, e, q, V, groups, v_mu, v_lambda, alpha, sample
        )


@_jit
def _hyper_draw(
    theta, groups, n_per_group, mu, lam, alpha_0, beta_0, gamma_0, mu_0, sample, acc
):
    """libFM's ``draw_w_lambda`` then ``draw_w_mu`` (and the same for each column of V):
    lambda_g ~ Gamma((alpha_0 + n_g + 1)/2, (beta_0 (mu_g - mu_0)^2 + gamma_0
    + sum_{j in g} (theta_j - mu_g)^2)/2), then mu_g ~ N((sum theta + beta_0 mu_0) /
    (n_g + beta_0), 1/((n_g + beta_0) lambda_g)). A non-finite draw keeps the old value
    and ends the loop over groups, as libFM does."""
    G = len(n_per_group)
    for c in range(G):
        acc[c] = beta_0 * (mu[c] - mu_0) * (mu[c] - mu_0) + gamma_0
    for j in range(len(theta)):
        c = groups[j]
        acc[c] += (theta[j] - mu[c]) * (theta[j] - mu[c])
    for c in range(G):
        new = _gamma((alpha_0 + n_per_group[c] + 1.0) / 2.0, acc[c] / 2.0, sample)
        if math.isnan(new) or math.isinf(new):
            break
        lam[c] = new
    acc[:] = 0.0
    for j in range(len(theta)):
        acc[groups[j]] += theta[j]
    for c in range(G):
        m = (acc[c] + beta_0 * mu_0) / (n_per_group[c] + beta_0)
        new = _normal(m, 1.0 / ((n_per_group[c] + beta_0) * lam[c]), sample)
        if math.isnan(new) or math.isinf(new):
            break
        mu[c] = new


@_jit
def _probit_targets(y_hat, y, sample, out):
    """libFM's latent targets for classification: a draw of N(y_hat, 1) truncated to
    > 0 (y >= 0) or < 0 (y < 0); als takes the truncated mean instead."""
    for i in range(len(y)):
        mu = y_hat[i]
        if y[i] >= 0.0:
            if sample:
                out[i] = mu + _left_truncated(-mu)
            else:
                phi = math.exp(-mu * mu / 2.0) / math.sqrt(3.141 * 2)
                out[i] = mu + phi / (1.0 - 0.5 * (1.0 + math.erf(-mu / math.sqrt(2.0))))
        else:
            if sample:
                out[i] = mu - _left_truncated(mu)
            else:
                phi = math.exp(-mu * mu / 2.0) / math.sqrt(3.141 * 2)
                out[i] = mu - phi / (0.5 * (1.0 + math.erf(-mu / math.sqrt(2.0))))


@_jit
def _left_truncated(left):
    """A standard normal draw conditioned on > ``left`` (Robert 1995 for left > 0)."""
    if left <= 0.0:
        while True:
            z = np.random.standard_normal()
            if z >= left:
                return z
    a = 0.5 * (left + math.sqrt(left * left + 4.0))
    while True:
        z = np.random.exponential() / a + left
        d = z - a
        if np.random.random() <= math.exp(-d * d / 2.0):
            return z


class CoordinateLearner:
    """libFM's ``als`` (``sample=False``) and ``mcmc`` (``sample=True``) on flat data.

    Args:
        rows, y: training rows and targets (±1 for classification).
        test: rows whose predictions are accumulated as libFM does, or None.
        params: the model (updated in place).
        groups: ``(n,)`` group of every feature (``-meta``), or None: one group.
        regular: ``(lambda_0, lambda_w, lambda_v)``: the prior precisions of als, and
            of :math:`w_0` in mcmc (libFM draws the other precisions in mcmc).
        sample: draw (mcmc) or take the conditional mean (als).

    After each :meth:`sweep`: ``test_this`` (this model's test predictions, clipped),
    ``test_sum`` (the sum over sweeps of those, libFM's ``pred_sum_all``) and
    ``train_metric`` (RMSE, or accuracy for classification).
    """

    def __init__(
        self,
        rows: Rows,
        y,
        test: Rows | None,
        params: Params,
        groups=None,
        regular=(0.0, 0.0, 0.0),
        sample: bool = True,
        task: int = REGRESSION,
        target_range: tuple = (-np.inf, np.inf),
    ):
        n, k = params.V.shape
        self.y = _check_fit_inputs(rows, y, params)
        regular = _check_regular(regular)
        if test is not None and test.n_cols > n:
            raise ValueError(
                f"`test` has {test.n_cols} columns but `params` {n} features."
            )
        self.rows, self.cols = rows, transpose(as_rows(rows, n))
        self.test, self.params = test, params
        self.groups = _check_groups(groups, n)
        self.n_per_group = np.bincount(self.groups).astype(np.float64)
        G = len(self.n_per_group)
        self.sample, self.multilevel = bool(sample), bool(sample)
        self.task, self.target_range = int(task), target_range
        self.reg0 = float(regular[0])
        # alpha, alpha_0, beta_0, gamma_0, mu_0
        self.hyper = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
        self.w_mu, self.w_lambda = np.zeros(G), np.full(G, float(regular[1]))
        self.v_mu, self.v_lambda = np.zeros((G, k)), np.full((G, k), float(regular[2]))
        self.q = np.zeros(rows.n_rows)
        self.latent = self.y.copy()
        self.e = self._predict_train() - self.latent
        self.sweeps = 0
        n_test = test.n_rows if test is not None else 0
        self.test_this, self.test_sum = np.zeros(n_test), np.zeros(n_test)
        self.test_sum_but5 = np.zeros(n_test)

    @property
    def alpha(self) -> float:
        return float(self.hyper[0])

    def _predict_train(self) -> np.ndarray:
        return predict(self.rows, self.params)

    def _predict_test(self) -> np.ndarray:
        return predict(self.test, self.params)

    def _state(self) -> tuple:
        """The sweep's arguments after the data: N, the caches ``e`` and ``q``, the
        model and the (hyper-)priors, as :func:`_sweep` takes them."""
        p = self.params
        return (
            self.rows.n_rows,
            self.e,
            self.q,
            p.w0,
            p.w,
            p.V,
            p.k0,
            p.k1,
            self.groups,
            self.n_per_group,
            self.hyper,
            self.w_mu,
            self.w_lambda,
            self.v_mu,
            self.v_lambda,
            self.sample,
            self.multilevel,
            self.reg0,
        )

    def _draw_all(self) -> None:
        """libFM's ``draw_all`` on the flat columns (:func:`_sweep`)."""
        c = self.cols
        _sweep(c.indptr, c.indices, c.data, *self._state())

    def sweep(self) -> None:
        """One ``draw_all``, then fresh predictions of train (new residuals) and test."""
        self._draw_all()
        lo, hi = self.target_range
        y_hat = self._predict_train()
        if self.task == REGRESSION:
            self.train_metric = float(
                np.sqrt(np.mean((np.clip(y_hat, lo, hi) - self.y) ** 2))
            )
        else:
            prob = 0.5 * (1.0 + _erf(y_hat / math.sqrt(2.0)))
            self.train_metric = float(np.mean((prob >= 0.5) == (self.y > 0)))
            _probit_targets(y_hat, self.y, self.sample, self.latent)
        self.e = y_hat - self.latent
        if self.test is not None:
            t = self._predict_test()
            if self.task == REGRESSION:
                self.test_this = t
                clipped = np.clip(t, lo, hi)
            else:
                clipped = self.test_this = 0.5 * (1.0 + _erf(t / math.sqrt(2.0)))
            self.test_sum += clipped
            if self.sweeps >= 5:
                self.test_sum_but5 += clipped
        self.sweeps += 1


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf (math.erf per element; numpy has none)."""
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


# --- als and mcmc on relations (libFM's -relation, block structure) ----------------------
# Rendle, "Scaling factorization machines to relational data" (VLDB 2013); libFM's
# fm_learn_mcmc.h: draw_w_rel, draw_v_rel and the relation_cache they keep per block row.
class Relations(NamedTuple):
    r"""The relation blocks :math:`\mathbf B^{(1)}, \dots, \mathbf B^{(R)}` of a
    block-structured design, stacked for the kernels.

    Block :math:`r`'s rows are the stacked rows ``row_start[r] .. row_start[r+1]-1`` and its
    features the model's columns ``col_start[r] .. col_start[r+1]-1``; the blocks follow
    the main columns (``col_start[0]``) in order. ``rows`` is the stack as :class:`Rows`
    whose column indices are the model's feature indices, ``cols`` its transpose (row
    ``j``: the block rows feature ``j`` occurs in; empty for the main features).
    """

    rows: Rows
    cols: Rows
    row_start: np.ndarray
    col_start: np.ndarray


def stack_relations(blocks, n_main: int) -> Relations:
    """:class:`Relations` from the blocks' matrices (:class:`Rows`, ``scipy.sparse`` or
    dense), their columns placed after the ``n_main`` main columns in order."""
    blocks = [as_rows(B) for B in blocks]
    if not blocks:
        raise ValueError("`blocks` must hold at least one relation matrix; got none.")
    row_start = np.cumsum([0] + [B.n_rows for B in blocks]).astype(np.int64)
    col_start = np.cumsum([int(n_main)] + [B.n_cols for B in blocks]).astype(np.int64)
    offsets = np.cumsum([0] + [B.indptr[-1] for B in blocks[:-1]])
    indptr = np.concatenate(
        [[0]] + [B.indptr[1:] + off for B, off in zip(blocks, offsets)]
    ).astype(np.int64)
    indices = np.concatenate(
        [B.indices + c for B, c in zip(blocks, col_start[:-1])]
    ).astype(np.int64)
    data = np.concatenate([B.data for B in blocks]).astype(np.float64)
    rows = Rows(indptr, indices, data, int(col_start[-1]))
    return Relations(rows, transpose(rows), row_start, col_start)


def block_rows(relations: Relations, index, n_rows: int, name: str = "index"):
    r"""The ``(R, n_rows)`` stacked block row of every data row in every relation: the
    row maps :math:`\phi_r` (one array of block-``r`` row numbers per relation, libFM's
    ``.train``/``.test`` files) shifted by ``row_start[r]``."""
    R = len(relations.row_start) - 1
    if len(index) != R:
        raise ValueError(
            f"`{name}` must hold one row map per relation, {R}; got {len(index)}."
        )
    out = np.empty((R, n_rows), np.int64)
    for r, phi in enumerate(index):
        phi = np.asarray(phi)
        if phi.size and not np.issubdtype(phi.dtype, np.integer):
            raise TypeError(
                f"`{name}[{r}]` must hold integer row numbers; got dtype {phi.dtype}."
            )
        size = relations.row_start[r + 1] - relations.row_start[r]
        if phi.shape != (n_rows,) or (n_rows and (phi.min() < 0 or phi.max() >= size)):
            raise ValueError(
                f"`{name}[{r}]` must give each of the {n_rows} rows a row of relation "
                f"{r} (0..{size - 1}); got shape {phi.shape}"
                + (f", values {phi.min()}..{phi.max()}." if phi.size else ".")
            )
        out[r] = phi + relations.row_start[r]
    return out


@_jit
def _block_terms(indptr, indices, data, w, V, lin, s, s2):
    """Per stacked block row ``b``: ``lin[b] = sum_j w_j x_bj``, ``s[b, f] = sum_j
    v_jf x_bj`` and ``s2[b] = sum_f sum_j (v_jf x_bj)^2``."""
    k = V.shape[1]
    for b in range(len(indptr) - 1):
        linear = 0.0
        squares = 0.0
        for f in range(k):
            s[b, f] = 0.0
        for t in range(indptr[b], indptr[b + 1]):
            j, x = indices[t], data[t]
            linear += w[j] * x
            for f in range(k):
                d = V[j, f] * x
                s[b, f] += d
                squares += d * d
        lin[b] = linear
        s2[b] = squares


@_jit
def _predict_joined(indptr, indices, data, phi, lin, s, s2, w0, w, V, k0, k1, out):
    r""":math:`\hat y_i` from the main row's terms plus those of its block rows
    ``phi[:, i]`` (:func:`_block_terms`): the FM of the joined row,
    :math:`w_0 + \text{linear} + \tfrac12 \sum_f (q_f^2 - \text{squares}_f)`."""
    k = V.shape[1]
    R = phi.shape[0]
    q = np.empty(k)
    for i in range(len(indptr) - 1):
        p = w0 if k0 else 0.0
        squares = 0.0
        q[:] = 0.0
        for r in range(R):
            b = phi[r, i]
            if k1:
                p += lin[b]
            squares += s2[b]
            for f in range(k):
                q[f] += s[b, f]
        for t in range(indptr[i], indptr[i + 1]):
            j, x = indices[t], data[t]
            if k1:
                p += w[j] * x
            for f in range(k):
                d = V[j, f] * x
                q[f] += d
                squares += d * d
        for f in range(k):
            p += 0.5 * q[f] * q[f]
        out[i] = p - 0.5 * squares


def block_terms(relations: Relations, params: Params) -> tuple:
    """``(lin, s, s2)`` of every stacked block row (:func:`_block_terms`)."""
    M, k = relations.rows.n_rows, params.V.shape[1]
    lin, s, s2 = np.empty(M), np.empty((M, k)), np.empty(M)
    B = relations.rows
    _block_terms(B.indptr, B.indices, B.data, params.w, params.V, lin, s, s2)
    return lin, s, s2


def predict_relational(
    rows: Rows,
    relations: Relations,
    phi: np.ndarray,
    params: Params,
    terms: tuple | None = None,
) -> np.ndarray:
    r""":math:`\hat y` of every row of a block-structured design, unclipped: row
    :math:`i` is the main row joined with block row ``phi[r, i]`` of every relation
    (:func:`block_rows`). Costs :math:`O(k(N_z(\mathbf X) + \sum_r N_z(\mathbf B^{(r)})
    + N R))`, not the joined matrix's :math:`O(k\,N_z)`. ``terms``: the block rows'
    :func:`block_terms` under ``params`` if already computed."""
    lin, s, s2 = block_terms(relations, params) if terms is None else terms
    out = np.empty(rows.n_rows)
    _predict_joined(
        rows.indptr,
        rows.indices,
        rows.data,
        phi,
        lin,
        s,
        s2,
        params.w0[0],
        params.w,
        params.V,
        params.k0,
        params.k1,
        out,
    )
    return out


@_jit
def _draw_w_relation(
    bptr, brow, bdat, j_from, j_to, b_from, b_to, phi_r, e, w, groups, w_mu, w_lambda,
    alpha, sample, wnum, dy, we,
):  # fmt: skip
    r"""libFM's ``draw_w_rel`` for block :math:`r`'s features ``j_from..j_to-1``.

    A block feature :math:`j` has :math:`h_i = x_{\phi(i) j}` on every data row, so over
    block rows :math:`b` with :math:`\#_b` data rows (``wnum``) and residual sum
    :math:`e^B_b = \sum_{\phi(i) = b} e_i` (``we``)

    .. math::

        \sum_i h_i^2 = \sum_b x_{bj}^2\, \#_b,\qquad \sum_i h_i e_i = \sum_b x_{bj}\, e^B_b,

    and a change :math:`\delta = w'_j - w_j` moves :math:`e^B_b` by :math:`x_{bj}\#_b
    \delta` and the block row's prediction ``dy[b]`` by :math:`x_{bj}\delta`: a cost per
    block row, not per data row. The data rows' residuals catch up once at the end (libFM
    subtracts the block's prediction :math:`y^B` before and adds it back after; only its
    change ``dy`` matters)."""
    for b in range(b_from, b_to):
        we[b] = 0.0
        dy[b] = 0.0
    for i in range(len(phi_r)):
        we[phi_r[i]] += e[i]
    for j in range(j_from, j_to):
        c = groups[j]
        hsq = 0.0
        he = 0.0
        for t in range(bptr[j], bptr[j + 1]):
            b, x = brow[t], bdat[t]
            he += x * we[b]
            hsq += x * x * wnum[b]
        old = w[j]
        new = _draw_theta(old, w_lambda[c], w_mu[c], alpha, hsq, he, sample)
        if new != old:
            for t in range(bptr[j], bptr[j + 1]):
                b, x = brow[t], bdat[t]
                we[b] -= x * (old - new) * wnum[b]
                dy[b] += (new - old) * x
            w[j] = new
    for i in range(len(phi_r)):
        e[i] += dy[phi_r[i]]


@_jit
def _draw_v_relation(
    bptr, brow, bdat, j_from, j_to, b_from, b_to, f, phi_r, e, q, V, groups, v_mu,
    v_lambda, alpha, sample, wnum, bq, wc, wc_sqr, dy, we, weq,
):  # fmt: skip
    r"""libFM's ``draw_v_rel`` for block :math:`r`'s features ``j_from..j_to-1`` and
    factor :math:`f`.

    Split data row :math:`i`'s :math:`q_{i,f}` into block :math:`r`'s part
    :math:`q^B_{b,f}` (``bq``, :math:`b = \phi(i)`) and the rest :math:`c_i = q_{i,f} -
    q^B_{b,f}`. A block feature has :math:`h_i = x_{bj}(q^B_{b,f} - x_{bj} v_{j,f}) +
    x_{bj} c_i = h^B_b + x_{bj} c_i`, so with the per-block-row sums :math:`\#_b`,
    :math:`c_b = \sum c_i` (``wc``), :math:`c^S_b = \sum c_i^2` (``wc_sqr``),
    :math:`e^B_b = \sum e_i` (``we``) and :math:`e^{Bq}_b = \sum e_i c_i` (``weq``) over
    the data rows of :math:`b`:

    .. math::

        \sum_i h_i^2 = \sum_b \big((h^B_b)^2 \#_b + 2 c_b x_{bj} h^B_b
            + x_{bj}^2 c^S_b\big),\qquad
        \sum_i h_i e_i = \sum_b \big(h^B_b e^B_b + x_{bj} e^{Bq}_b\big).

    A change :math:`\delta = v' - v` moves :math:`e^B_b` by :math:`\delta(h^B_b \#_b +
    x_{bj} c_b)`, :math:`e^{Bq}_b` by :math:`\delta(h^B_b c_b + x_{bj} c^S_b)`,
    :math:`q^B_{b,f}` by :math:`\delta x_{bj}` and the block row's prediction by
    :math:`\delta h^B_b`; the data rows catch up at the end: :math:`e_i \mathrel{+}=
    \Delta y^B_b + c_i \Delta q^B_{b,f}`, :math:`q_{i,f} = c_i + q^B_{b,f}`."""
    for b in range(b_from, b_to):
        we[b] = 0.0
        weq[b] = 0.0
        wc[b] = 0.0
        wc_sqr[b] = 0.0
        dy[b] = 0.0
    for i in range(len(phi_r)):
        b = phi_r[i]
        q[i] -= bq[b]  # c_i
        we[b] += e[i]
        weq[b] += e[i] * q[i]
        wc[b] += q[i]
        wc_sqr[b] += q[i] * q[i]
        e[i] -= q[i] * bq[b]
    for j in range(j_from, j_to):
        c = groups[j]
        old = V[j, f]
        hsq = 0.0
        he = 0.0
        for t in range(bptr[j], bptr[j + 1]):
            b, x = brow[t], bdat[t]
            h = x * (bq[b] - x * old)
            he += h * we[b] + x * weq[b]
            hsq += h * h * wnum[b] + 2.0 * wc[b] * x * h + x * x * wc_sqr[b]
        new = _draw_theta(old, v_lambda[c, f], v_mu[c, f], alpha, hsq, he, sample)
        if new != old:
            d = old - new
            for t in range(bptr[j], bptr[j + 1]):
                b, x = brow[t], bdat[t]
                h = x * (bq[b] - x * old)
                we[b] -= d * (h * wnum[b] + x * wc[b])
                weq[b] -= d * (h * wc[b] + x * wc_sqr[b])
                bq[b] -= d * x
                dy[b] -= d * h
            V[j, f] = new
    for i in range(len(phi_r)):
        b = phi_r[i]
        e[i] += dy[b] + q[i] * bq[b]
        q[i] += bq[b]


@_jit
def _sweep_relational(
    cptr, crow, cdat, n_main, bptr, brow, bdat, row_start, col_start, phi, N, e, q, w0,
    w, V, k0, k1, groups, n_per_group, hyper, w_mu, w_lambda, v_mu, v_lambda, sample,
    multilevel, reg0, wnum, bq, wc, wc_sqr, dy, we, weq,
):  # fmt: skip
    """libFM's ``draw_all`` on a block-structured design: as :func:`_sweep`, the main
    features through the main file's columns and each relation's through its block rows
    (:func:`_draw_w_relation`, :func:`_draw_v_relation`), in libFM's order: main features,
    then relation 1, 2, ... (the model's column order, so the draws are those of the flat
    sweep on the joined matrix)."""
    R = len(col_start) - 1
    k = V.shape[1]
    alpha = _draw_alpha(e, N, hyper, sample, multilevel)
    if k0:
        _draw_w0(e, N, w0, reg0, alpha, sample)
    if k1:
        _draw_w_hyper(w, groups, n_per_group, hyper, w_mu, w_lambda, sample, multilevel)
        _draw_w_columns(
            cptr, crow, cdat, 0, n_main, e, w, groups, w_mu, w_lambda, alpha, sample
        )
        for r in range(R):
            _draw_w_relation(
                bptr, brow, bdat, col_start[r], col_start[r + 1], row_start[r],
                row_start[r + 1], phi[r], e, w, groups, w_mu, w_lambda, alpha, sample,
                wnum, dy, we,
            )  # fmt: skip
    if k > 0:
        _draw_v_hyper(V, groups, n_per_group, hyper, v_mu, v_lambda, sample, multilevel)
    for f in range(k):
        q[:] = 0.0
        _column_q(cptr, crow, cdat, 0, n_main, V, f, q)
        bq[:] = 0.0
        _column_q(bptr, brow, bdat, col_start[0], col_start[R], V, f, bq)
        for r in range(R):
            for i in range(N):
                q[i] += bq[phi[r, i]]
        _draw_v_columns(
            cptr,
            crow,
            cdat,
            0,
            n_main,
            f,
            e,
            q,
            V,
            groups,
            v_mu,
            v_lambda,
            alpha,
            sample,
        )
        for r in range(R):
            _draw_v_relation(
                bptr, brow, bdat, col_start[r], col_start[r + 1], row_start[r],
                row_start[r + 1], f, phi[r], e, q, V, groups, v_mu, v_lambda, alpha,
                sample, wnum, bq, wc, wc_sqr, dy, we, weq,
            )  # fmt: skip


class RelationalCoordinateLearner(CoordinateLearner):
    """libFM's ``als`` and ``mcmc`` on a block-structured design (``-relation``): the
    same draws as :class:`CoordinateLearner` on the joined matrix, at a cost per block
    row instead of per joined non-zero (libFM's ``relation_cache``).

    Args:
        rows: the main rows (the main file's columns, at most ``n_main`` of them).
        y, test, params, groups, regular, sample, task, target_range: as
            :class:`CoordinateLearner`; ``params`` has ``n_main`` plus all blocks'
            columns.
        blocks: the relations' matrices :math:`\\mathbf B^{(r)}` (libFM's ``rel.x``).
        index: per relation, the block row of every training row (``rel.train``).
        test_index: per relation, the block row of every test row (``rel.test``).
    """

    def __init__(
        self,
        rows: Rows,
        y,
        test: Rows | None,
        params: Params,
        blocks,
        index,
        test_index=None,
        **kwargs,
    ):
        blocks = [as_rows(B) for B in blocks]
        n_main = params.w.shape[0] - sum(B.n_cols for B in blocks)
        if n_main < 0:
            raise ValueError(
                f"`params` has {params.w.shape[0]} features, fewer than the blocks' "
                f"{params.w.shape[0] - n_main} columns."
            )
        for name, part in (("rows", rows), ("test", test)):
            if part is not None and part.n_cols > n_main:
                raise ValueError(
                    f"`{name}` has {part.n_cols} columns but `params` leaves "
                    f"{n_main} main features beside the blocks' columns."
                )
        self.relations = stack_relations(blocks, n_main)
        self.phi = block_rows(self.relations, index, rows.n_rows, "index")
        if test is not None:
            if test_index is None:
                raise ValueError("`test_index` is needed with `test`; got None.")
            self.test_phi = block_rows(
                self.relations, test_index, test.n_rows, "test_index"
            )
        self.n_main = n_main
        M = self.relations.rows.n_rows
        self.wnum = np.bincount(self.phi.ravel(), minlength=M).astype(np.float64)
        self.block_cache = np.zeros((6, M))  # bq, wc, wc_sqr, dy, we, weq
        super().__init__(rows, y, test, params, **kwargs)

    def _predict_train(self) -> np.ndarray:
        """Train predictions; keeps the block rows' terms for :meth:`_predict_test`,
        which :meth:`sweep` calls next under the same parameters."""
        self._terms = block_terms(self.relations, self.params)
        return predict_relational(
            self.rows, self.relations, self.phi, self.params, self._terms
        )

    def _predict_test(self) -> np.ndarray:
        return predict_relational(
            self.test, self.relations, self.test_phi, self.params, self._terms
        )

    def _draw_all(self) -> None:
        """libFM's ``draw_all`` with its relation caches (:func:`_sweep_relational`)."""
        c, rel = self.cols, self.relations
        _sweep_relational(
            c.indptr,
            c.indices,
            c.data,
            self.n_main,
            rel.cols.indptr,
            rel.cols.indices,
            rel.cols.data,
            rel.row_start,
            rel.col_start,
            self.phi,
            *self._state(),
            self.wnum,
            *self.block_cache,
        )
