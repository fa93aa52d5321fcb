r"""The ordered probit model: ordinal ratings from a latent Gaussian and cut-points.

The chapter "Star ratings and variational inference" derives it (section "Star ratings:
the ordered probit model", whose :math:`\boldsymbol\kappa` is ``theta`` here and whose
:math:`\tau_m` are the :math:`c_m`); myFM's ``MyFMOrderedProbit`` (Ohtsuki) samples the
same model. With :math:`K` ordered classes :math:`0 < 1 < \dots < K-1` (the sorted distinct
ratings) and cut-points :math:`c_1 < \dots < c_{K-1}` (:math:`c_0 = -\infty`,
:math:`c_K = +\infty`),

.. math::

    & z_i \mid \Theta \sim \mathcal N(\hat y(\mathbf x_i), 1), \\
    & y_i = j \iff c_j < z_i \le c_{j+1},

so that, :math:`z_i` integrated out,

.. math::

    P(y_i = j \mid \hat y_i, \mathbf c) = \Phi(c_{j+1} - \hat y_i) - \Phi(c_j - \hat y_i).

**Parameterisation and prior.** The cut-points are written through an unconstrained
:math:`\boldsymbol\theta \in \mathbb R^{K-1}`: :math:`c_1 = \theta_1`, :math:`c_m =
c_{m-1} + e^{\theta_m}` (:func:`cutpoints_from_theta`), so every
:math:`\boldsymbol\theta` gives ordered cut-points; the prior is
:math:`\boldsymbol\theta \sim \mathcal N(\mathbf 0, \mathbf I / r)` with
:math:`r = 1` (:data:`CUTPOINT_PRECISION`, myFM's ``reg_0``): the first cut-point near 0,
the gaps near 1 on the scale of the unit latent noise.

**One Gibbs step** (:func:`draw_cutpoints`, then :func:`draw_latents`), given the
current scores :math:`\hat{\mathbf y}`:

1. :math:`\boldsymbol\theta \sim p(\boldsymbol\theta \mid \mathbf y, \hat{\mathbf y})
   \propto p(\boldsymbol\theta) \prod_i P(y_i \mid \hat y_i, \mathbf c(\boldsymbol\theta))`,
   with :math:`\mathbf z` *integrated out* (drawing :math:`\mathbf c` given
   :math:`\mathbf z` would confine every cut-point between the largest latent of the
   class below and the smallest of the class above: an interval that shrinks like
   :math:`1/N`, so the chain would barely move; Cowles 1996). This conditional has no
   closed form; one Metropolis-Hastings step draws it: the mode
   :math:`\hat{\boldsymbol\theta}` by Newton's method (:func:`cutpoint_mode`, on the
   log posterior :func:`log_posterior`, with its gradient and Hessian), then an
   *independence* proposal :math:`\boldsymbol\theta^\star = \hat{\boldsymbol\theta} +
   \boldsymbol\varepsilon`, :math:`\boldsymbol\varepsilon` multivariate Student-t with
   :math:`\nu = 5` degrees of freedom (:data:`PROPOSAL_DOF`) and scale matrix
   :math:`\mathbf H^{-1}`, :math:`\mathbf H` the negative Hessian at the mode (Laplace's
   approximation with heavier tails), accepted with probability

   .. math::

       & \min\Big(1, \frac{p(\boldsymbol\theta^\star \mid \cdot)\, q(\boldsymbol\theta)}
       {p(\boldsymbol\theta \mid \cdot)\, q(\boldsymbol\theta^\star)}\Big), \\
       & q(\boldsymbol\theta) \propto \Big(1 + \tfrac{1}{\nu}
       (\boldsymbol\theta - \hat{\boldsymbol\theta})^\top \mathbf H
       (\boldsymbol\theta - \hat{\boldsymbol\theta})\Big)^{-(\nu + K - 1)/2}.

2. :math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to :math:`(c_{y_i}, c_{y_i+1}]`,
   independently (by the inverse CDF in log space, stable in both tails).

The rest of the sweep is the regression sweep with targets :math:`\mathbf z` and noise
precision :math:`\alpha = 1`. The predictive class probabilities are the formula above
averaged over the kept samples of :math:`(\hat y, \mathbf c)`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import log_ndtr, ndtri, ndtri_exp

#: Prior precision :math:`r` of every :math:`\theta_m` (myFM's ``reg_0``).
CUTPOINT_PRECISION = 1.0
#: Degrees of freedom of the Student-t proposal (myFM's ``nu_oprobit``).
PROPOSAL_DOF = 5.0

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


# --- compiled passes over the ratings ----------------------------------------------------------
def _jit(function):
    """``numba.njit`` with the on-disk cache when a writable cache directory exists."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError:
        return numba.njit(function)


_SQRT1_2 = 1.0 / math.sqrt(2.0)
_TAIL = -30.0  # below: log Phi by its asymptotic series (erfc underflows near -37)


@_jit
def _log_ndtr_tail(x):
    """log Phi(x) for x <= -30: -x^2/2 - log(-x) - log sqrt(2 pi) + log(1 - 1/x^2 + 3/x^4
    - 15/x^6) (relative error below 1e-10); -inf for x = -inf."""
    if x == -np.inf:
        return -np.inf
    x2 = 1.0 / (x * x)
    return (
        -0.5 * x * x
        - math.log(-x)
        - 0.9189385332046727
        + math.log1p(x2 * (-1.0 + x2 * (3.0 - 15.0 * x2)))
    )


@_jit
def _log_interval1(a, b):
    """log(Phi(b) - Phi(a)), a < b, as :func:`log_interval` (mirrored when a > 0)."""
    if a > 0.0:
        lo, hi = -b, -a
    else:
        lo, hi = a, b
    if hi > 0.0:  # lo <= 0 < hi: 1 - Phi(-hi) - Phi(lo)
        return math.log1p(
            -0.5 * math.erfc(hi * _SQRT1_2) - 0.5 * math.erfc(-lo * _SQRT1_2)
        )
    if hi > _TAIL:
        return math.log(0.5 * (math.erfc(-hi * _SQRT1_2) - math.erfc(-lo * _SQRT1_2)))
    l_hi = _log_ndtr_tail(hi)
    return l_hi + math.log1p(-math.exp(_log_ndtr_tail(lo) - l_hi))


@_jit
def _sums(y_hat, labels, c, derivatives, g, diag, off):
    """One pass over the ratings: returns the log likelihood; with ``derivatives`` adds
    every rating's gradient and tridiagonal Hessian terms (see :func:`log_posterior`) to
    ``g``, ``diag`` and ``off`` (index j: cut-point j + 1; ``off[j]`` between j and j + 1)."""
    top = c.size
    f = 0.0
    for i in range(y_hat.size):
        j = labels[i]
        a = c[j - 1] - y_hat[i] if j > 0 else -np.inf
        b = c[j] - y_hat[i] if j < top else np.inf
        log_p = _log_interval1(a, b)
        f += log_p
        if derivatives:
            r_a = 0.0
            r_b = 0.0
            if j < top:
                r_b = math.exp(-0.5 * b * b - 0.9189385332046727 - log_p)
                g[j] += r_b
                diag[j] += -b * r_b - r_b * r_b
            if j > 0:
                r_a = math.exp(-0.5 * a * a - 0.9189385332046727 - log_p)
                g[j - 1] -= r_a
                diag[j - 1] += a * r_a - r_a * r_a
            if 0 < j < top:
                off[j - 1] += r_a * r_b
    return f


@_jit
def _class_probabilities(y_hat, c, out):
    """out[i, j] = Phi(c_{j+1} - y_hat_i) - Phi(c_j - y_hat_i) by :func:`_log_interval1`."""
    top = c.size
    for i in range(y_hat.size):
        for j in range(top + 1):
            a = c[j - 1] - y_hat[i] if j > 0 else -np.inf
            b = c[j] - y_hat[i] if j < top else np.inf
            out[i, j] = math.exp(_log_interval1(a, b))


@_jit
def _latent_quantiles(y_hat, labels, c, u, p, lo_out, hi_out, flip):
    """For every rating the standardised interval (mirrored to ``lo <= 0``) and the
    probability ``p = Phi(lo) + u (Phi(hi) - Phi(lo))`` whose quantile is the draw; ``p``
    is -1 where ``hi`` is below the tail threshold (those go through log space)."""
    top = c.size
    for i in range(y_hat.size):
        j = labels[i]
        a = c[j - 1] - y_hat[i] if j > 0 else -np.inf
        b = c[j] - y_hat[i] if j < top else np.inf
        if a > 0.0:
            lo, hi, flip[i] = -b, -a, True
        else:
            lo, hi, flip[i] = a, b, False
        lo_out[i] = lo
        hi_out[i] = hi
        if hi > _TAIL:
            p_lo = 0.5 * math.erfc(-lo * _SQRT1_2)
            p[i] = p_lo + u[i] * (0.5 * math.erfc(-hi * _SQRT1_2) - p_lo)
        else:
            p[i] = -1.0


# --- parameterisation ----------------------------------------------------------------------
def cutpoints_from_theta(theta: np.ndarray) -> np.ndarray:
    r"""Ordered cut-points :math:`c_1 = \theta_1,\ c_m = c_{m-1} + e^{\theta_m}`."""
    theta = np.asarray(theta, np.float64)
    return np.cumsum(np.concatenate([theta[:1], np.exp(theta[1:])]))


def theta_from_cutpoints(cutpoints: np.ndarray) -> np.ndarray:
    r"""The inverse of :func:`cutpoints_from_theta`: :math:`\theta_1 = c_1,\ \theta_m =
    \log(c_m - c_{m-1})`; the cut-points must increase strictly."""
    c = np.asarray(cutpoints, np.float64)
    gaps = np.diff(c)
    if np.any(gaps <= 0):
        raise ValueError(f"`cutpoints` must increase strictly; got {c.tolist()}.")
    return np.concatenate([c[:1], np.log(gaps)])


# --- one interval of the standard normal -----------------------------------------------------
def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, accurate near 0 and for x -> -inf (Maechler 2012)."""
    with np.errstate(divide="ignore"):
        return np.where(
            x > -np.log(2.0),
            np.log(-np.expm1(np.minimum(x, -1e-300))),
            np.log1p(-np.exp(x)),
        )


def log_interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\log(\Phi(b) - \Phi(a))` for :math:`a < b` (either may be infinite), in the
    lower tail when :math:`a \le 0` and, mirrored, :math:`\log(\Phi(-a) - \Phi(-b))` when
    :math:`a > 0`: no cancellation in either tail."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    l_hi = log_ndtr(hi)
    with np.errstate(invalid="ignore"):
        diff = log_ndtr(lo) - l_hi  # -inf when lo = -inf
    return l_hi + _log1mexp(np.minimum(diff, 0.0))


def _interval_terms(a: np.ndarray, b: np.ndarray):
    r""":math:`\log P`, :math:`r_a = \varphi(a)/P`, :math:`r_b = \varphi(b)/P` and
    :math:`a r_a`, :math:`b r_b` (0 at an infinite end) for :math:`P = \Phi(b) - \Phi(a)`."""
    log_p = log_interval(a, b)
    with np.errstate(over="ignore", invalid="ignore"):
        r_a = np.exp(-0.5 * a * a - _LOG_SQRT_2PI - log_p)
        r_b = np.exp(-0.5 * b * b - _LOG_SQRT_2PI - log_p)
        ar_a = np.where(np.isfinite(a), a * r_a, 0.0)
        br_b = np.where(np.isfinite(b), b * r_b, 0.0)
    return log_p, r_a, r_b, ar_a, br_b


def _bounds(y_hat: np.ndarray, labels: np.ndarray, cutpoints: np.ndarray):
    """The standardised interval (a, b) = (c_y - ŷ, c_{y+1} - ŷ) of every rating."""
    edges = np.concatenate([[-np.inf], cutpoints, [np.inf]])
    return edges[labels] - y_hat, edges[labels + 1] - y_hat


# --- likelihood and predictive distribution --------------------------------------------------
def class_probabilities(y_hat: np.ndarray, cutpoints: np.ndarray) -> np.ndarray:
    r""":math:`P(y = j \mid \hat y, \mathbf c) = \Phi(c_{j+1} - \hat y) - \Phi(c_j - \hat
    y)` for every score and class: shape ``(N, K)``, rows summing to 1 (one compiled
    pass, the interval probabilities of :func:`log_interval`)."""
    y_hat = np.ascontiguousarray(y_hat, np.float64).reshape(-1)
    c = np.ascontiguousarray(cutpoints, np.float64)
    out = np.empty((y_hat.size, c.size + 1))
    _class_probabilities(y_hat, c, out)
    return out


def log_likelihood(
    y_hat: np.ndarray, labels: np.ndarray, cutpoints: np.ndarray
) -> float:
    r""":math:`\sum_i \log P(y_i \mid \hat y_i, \mathbf c)`; ``labels`` are class indices
    in ``0..K-1``."""
    return float(np.sum(log_interval(*_bounds(y_hat, labels, cutpoints))))


def log_posterior(
    theta: np.ndarray,
    y_hat: np.ndarray,
    labels: np.ndarray,
    precision: float = CUTPOINT_PRECISION,
    derivatives: bool = True,
):
    r"""The log posterior of :math:`\boldsymbol\theta` given the scores, up to a constant,
    :math:`f(\boldsymbol\theta) = \ell(\mathbf c(\boldsymbol\theta)) - \tfrac r2
    \lVert\boldsymbol\theta\rVert^2`, and (``derivatives``) its gradient and Hessian.

    In the cut-points, a rating of class :math:`j` with :math:`a = c_j - \hat y`,
    :math:`b = c_{j+1} - \hat y`, :math:`r_a = \varphi(a)/P`, :math:`r_b = \varphi(b)/P`
    contributes :math:`\partial \ell / \partial c_{j+1} = r_b`, :math:`\partial \ell /
    \partial c_j = -r_a` and the (tridiagonal) second derivatives :math:`-b r_b - r_b^2`,
    :math:`a r_a - r_a^2` and :math:`r_a r_b` between the two. Through the Jacobian
    :math:`J_{jm} = \partial c_j / \partial \theta_m` (1 for :math:`m = 1`,
    :math:`e^{\theta_m}` for :math:`1 < m \le j`, else 0):

    .. math::

        \nabla f &= J^\top \mathbf g - r \boldsymbol\theta, \\
        \nabla^2 f &= J^\top \mathbf H_c J - r \mathbf I \\
        &\quad + \operatorname{diag}\Big(e^{\theta_m} \sum_{j \ge m} g_j\Big)_{m > 1}.

    The sums over the ratings run in one compiled pass (``_sums``).

    Returns:
        ``f`` or ``(f, gradient (K-1,), Hessian (K-1, K-1))``.
    """
    theta = np.asarray(theta, np.float64)
    f, g, H_c = _cut_sums(theta, y_hat, labels, derivatives)
    f -= 0.5 * precision * theta @ theta
    if not derivatives:
        return f
    J = _jacobian(theta)
    grad = J.T @ g - precision * theta
    curv = np.exp(theta) * np.cumsum(g[::-1])[::-1]
    curv[0] = 0.0
    hess = J.T @ H_c @ J + np.diag(curv) - precision * np.eye(theta.size)
    return f, grad, hess


def _jacobian(theta: np.ndarray) -> np.ndarray:
    p = theta.size
    J = np.tril(np.broadcast_to(np.exp(theta), (p, p))).copy()
    J[:, 0] = 1.0
    return J


def _cut_sums(theta, y_hat, labels, derivatives):
    """(log likelihood, its gradient g and tridiagonal Hessian H_c in the cut-points)."""
    c = cutpoints_from_theta(theta)
    p = c.size
    g, diag, off = np.zeros(p), np.zeros(p), np.zeros(max(p - 1, 0))
    f = _sums(
        np.ascontiguousarray(y_hat, np.float64),
        np.ascontiguousarray(labels, np.int64),
        c,
        bool(derivatives),
        g,
        diag,
        off,
    )
    H_c = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
    return f, g, H_c


def cutpoint_mode(
    theta: np.ndarray,
    y_hat: np.ndarray,
    labels: np.ndarray,
    precision: float = CUTPOINT_PRECISION,
    tol: float = 1e-10,
    max_iter: int = 100,
    start_value: bool = False,
):
    r"""The mode of :func:`log_posterior` by Newton's method with backtracking, started at
    ``theta``, until the Newton decrement :math:`\nabla f^\top \mathbf H^{-1} \nabla f`
    is below ``tol`` (relative to :math:`\max(1, |f|)`); returns ``(mode, H)`` (and
    with ``start_value`` also :math:`f` at ``theta``, which the first Newton step computes
    anyway), ``H`` the
    negative Hessian at the mode (positive definite: where the full Hessian is not negative
    definite, the Gauss-Newton part :math:`J^\top (-\mathbf H_c) J + r\mathbf I`, positive
    definite because the ordered probit log likelihood is concave in the cut-points, Pratt
    1981)."""
    theta = np.array(theta, np.float64)
    f, grad, hess = log_posterior(theta, y_hat, labels, precision)
    f_start = f
    H = _positive(-hess, theta, y_hat, labels, precision)
    for _ in range(max_iter):
        step = np.linalg.solve(H, grad)
        if grad @ step < tol * max(1.0, abs(f)):
            break
        t, moved = 1.0, False
        for _ in range(40):
            new = theta + t * step
            f_new, grad_new, hess_new = log_posterior(new, y_hat, labels, precision)
            if f_new >= f:
                moved = True
                break
            t /= 2
        if not moved:  # no ascent along the Newton direction: at the mode
            break
        theta, f, grad, hess = new, f_new, grad_new, hess_new
        H = _positive(-hess, theta, y_hat, labels, precision)
    return (theta, H, f_start) if start_value else (theta, H)


def _positive(H, theta, y_hat, labels, precision):
    """``H`` if it is positive definite, else the Gauss-Newton matrix (see cutpoint_mode)."""
    try:
        np.linalg.cholesky(H)
        return H
    except np.linalg.LinAlgError:
        _, _, H_c = _cut_sums(theta, y_hat, labels, True)
        J = _jacobian(theta)
        return J.T @ (-H_c) @ J + precision * np.eye(theta.size)


def _log_t(theta: np.ndarray, mode: np.ndarray, H: np.ndarray, nu: float) -> float:
    """log density of the multivariate t proposal, up to a constant."""
    d = theta - mode
    return -0.5 * (nu + d.size) * np.log1p(d @ H @ d / nu)


def draw_cutpoints(
    rng: np.random.Generator,
    theta: np.ndarray,
    y_hat: np.ndarray,
    labels: np.ndarray,
    precision: float = CUTPOINT_PRECISION,
    nu: float = PROPOSAL_DOF,
) -> tuple[np.ndarray, bool]:
    r"""One Metropolis-Hastings step for :math:`\boldsymbol\theta` with :math:`\mathbf z`
    integrated out (module docstring): independence proposal, Student-t around the mode.

    Returns:
        ``(theta, accepted)``: the new :math:`\boldsymbol\theta` and whether the proposal
        was accepted.
    """
    theta = np.asarray(theta, np.float64)
    mode, H, f_theta = cutpoint_mode(theta, y_hat, labels, precision, start_value=True)
    L = np.linalg.cholesky(H)  # H = L L^T
    eps = np.linalg.solve(L.T, rng.standard_normal(theta.size))  # covariance H^-1
    proposal = mode + eps / np.sqrt(rng.chisquare(nu) / nu)
    log_ratio = (
        log_posterior(proposal, y_hat, labels, precision, derivatives=False)
        - f_theta
        - _log_t(proposal, mode, H, nu)
        + _log_t(theta, mode, H, nu)
    )
    if np.log(rng.random()) < log_ratio:
        return proposal, True
    return theta, False


def initial_theta(labels: np.ndarray, n_classes: int) -> np.ndarray:
    r"""Starting :math:`\boldsymbol\theta`: the cut-points of the empirical class
    frequencies, :math:`c_j = \Phi^{-1}(P(y < j))` (centred by the mean score the
    sampler starts from, 0), with gaps at least 0.1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64) + 0.5
    c = ndtri_exp(np.log(np.cumsum(counts)[:-1] / counts.sum()))
    return theta_from_cutpoints(np.maximum.accumulate(c + 0.1 * np.arange(c.size)))


# --- the latent targets ----------------------------------------------------------------------
def draw_latents(
    rng: np.random.Generator,
    y_hat: np.ndarray,
    labels: np.ndarray,
    cutpoints: np.ndarray,
) -> np.ndarray:
    r""":math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to :math:`(c_{y_i},
    c_{y_i+1}]`, by the inverse CDF: with :math:`a < b` the standardised interval
    (mirrored to :math:`(-b, -a)` when :math:`a > 0`, so that its lower end is never in the
    upper tail), :math:`t = \Phi^{-1}\big(\Phi(a) + U(\Phi(b) - \Phi(a))\big)`,
    :math:`U \sim \mathcal U(0, 1]`; where :math:`b < -30` (far in the lower tail)
    in log space, ``ndtri_exp(log_ndtr(b) + log(rho + U (1 - rho)))`` with
    :math:`\rho = \Phi(a)/\Phi(b)`."""
    y_hat = np.ascontiguousarray(y_hat, np.float64)
    N = y_hat.size
    u = 1.0 - rng.random(N)  # in (0, 1]
    p, lo, hi = np.empty(N), np.empty(N), np.empty(N)
    flip = np.empty(N, np.bool_)
    _latent_quantiles(
        y_hat,
        np.ascontiguousarray(labels, np.int64),
        np.asarray(cutpoints, np.float64),
        u,
        p,
        lo,
        hi,
        flip,
    )
    tail = p < 0
    p[tail] = 0.5
    t = ndtri(p)
    if tail.any():
        l_hi = log_ndtr(hi[tail])
        with np.errstate(invalid="ignore"):
            rho = np.nan_to_num(np.exp(log_ndtr(lo[tail]) - l_hi), nan=0.0)
        t[tail] = ndtri_exp(l_hi + np.log(rho + u[tail] * (1.0 - rho)))
    np.clip(t, lo, hi, out=t)
    return y_hat + np.where(flip, -t, t)


def expected_value(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The expected rating :math:`\\sum_j P(y = j)\\, \\text{class}_j` of every row."""
    return np.asarray(proba) @ np.asarray(classes, np.float64)


__all__ = [
    "CUTPOINT_PRECISION",
    "PROPOSAL_DOF",
    "cutpoints_from_theta",
    "theta_from_cutpoints",
    "log_interval",
    "class_probabilities",
    "log_likelihood",
    "log_posterior",
    "cutpoint_mode",
    "draw_cutpoints",
    "initial_theta",
    "draw_latents",
    "expected_value",
]
