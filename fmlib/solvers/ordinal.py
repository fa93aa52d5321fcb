r"""The ordered probit model: ordinal ratings from a latent Gaussian and cut-points.

Chapter "Beyond SGD: coordinate descent and MCMC", section "Ordinal ratings", derives
the model and its conditionals; myFM's ``MyFMOrderedProbit`` (Ohtsuki) samples the same
model. With :math:`K` ordered classes :math:`0 < 1 < \dots < K-1` (the sorted distinct
ratings) and cut-points :math:`c_1 < \dots < c_{K-1}` (:math:`c_0 = -\infty`,
:math:`c_K = +\infty`),

.. math::

    z_i \mid \Theta \sim \mathcal N(\hat y(\mathbf x_i), 1), \qquad
    y_i = j \iff c_j < z_i \le c_{j+1},

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

       \min\Big(1, \frac{p(\boldsymbol\theta^\star \mid \cdot)\, q(\boldsymbol\theta)}
                       {p(\boldsymbol\theta \mid \cdot)\, q(\boldsymbol\theta^\star)}\Big),
       \qquad q(\boldsymbol\theta) \propto \Big(1 + \tfrac{1}{\nu}
       (\boldsymbol\theta - \hat{\boldsymbol\theta})^\top \mathbf H
       (\boldsymbol\theta - \hat{\boldsymbol\theta})\Big)^{-(\nu + K - 1)/2}.

2. :math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to :math:`(c_{y_i}, c_{y_i+1}]`,
   independently (by the inverse CDF in log space, stable in both tails).

The rest of the sweep is the regression sweep with targets :math:`\mathbf z` and noise
precision :math:`\alpha = 1`. The predictive class probabilities are the formula above
averaged over the kept samples of :math:`(\hat y, \mathbf c)`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtri_exp

#: Prior precision :math:`r` of every :math:`\theta_m` (myFM's ``reg_0``).
CUTPOINT_PRECISION = 1.0
#: Degrees of freedom of the Student-t proposal (myFM's ``nu_oprobit``).
PROPOSAL_DOF = 5.0

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


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
        return np.where(x > -np.log(2.0), np.log(-np.expm1(np.minimum(x, -1e-300))),
                        np.log1p(-np.exp(x)))


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
        diff = log_ndtr(lo) - l_hi                  # -inf when lo = -inf
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
    y)` for every score and class: shape ``(N, K)``, rows summing to 1."""
    y_hat = np.asarray(y_hat, np.float64)
    edges = np.concatenate([[-np.inf], np.asarray(cutpoints, np.float64), [np.inf]])
    return np.exp(log_interval(edges[None, :-1] - y_hat[:, None],
                               edges[None, 1:] - y_hat[:, None]))


def log_likelihood(y_hat: np.ndarray, labels: np.ndarray, cutpoints: np.ndarray) -> float:
    r""":math:`\sum_i \log P(y_i \mid \hat y_i, \mathbf c)`; ``labels`` are class indices
    in ``0..K-1``."""
    return float(np.sum(log_interval(*_bounds(y_hat, labels, cutpoints))))


def log_posterior(theta: np.ndarray, y_hat: np.ndarray, labels: np.ndarray,
                  precision: float = CUTPOINT_PRECISION, derivatives: bool = True):
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

        \nabla f = J^\top \mathbf g - r \boldsymbol\theta, \qquad
        \nabla^2 f = J^\top \mathbf H_c J + \operatorname{diag}\Big(e^{\theta_m}
        \sum_{j \ge m} g_j\Big)_{m > 1} - r \mathbf I.

    Returns:
        ``f`` or ``(f, gradient (K-1,), Hessian (K-1, K-1))``.
    """
    theta = np.asarray(theta, np.float64)
    p = theta.size
    c = cutpoints_from_theta(theta)
    a, b = _bounds(y_hat, labels, c)
    log_p, r_a, r_b, ar_a, br_b = _interval_terms(a, b)
    f = float(np.sum(log_p) - 0.5 * precision * theta @ theta)
    if not derivatives:
        return f
    K = p + 1
    # class j's upper cut-point is c_{j+1} (index j), its lower one c_j (index j - 1)
    upper = lambda v: np.bincount(labels, v, minlength=K)[:-1]   # classes 0..K-2
    lower = lambda v: np.bincount(labels, v, minlength=K)[1:]    # classes 1..K-1
    g = upper(r_b) - lower(r_a)
    H_c = np.diag(upper(-br_b - r_b * r_b) + lower(ar_a - r_a * r_a))
    off = np.bincount(labels, r_a * r_b, minlength=K)[1:-1]      # interior classes
    H_c += np.diag(off, 1) + np.diag(off, -1)
    e = np.exp(theta)
    J = np.tril(np.broadcast_to(e, (p, p))).copy()
    J[:, 0] = 1.0
    grad = J.T @ g - precision * theta
    curv = e * np.cumsum(g[::-1])[::-1]
    curv[0] = 0.0
    hess = J.T @ H_c @ J + np.diag(curv) - precision * np.eye(p)
    return f, grad, hess


def cutpoint_mode(theta: np.ndarray, y_hat: np.ndarray, labels: np.ndarray,
                  precision: float = CUTPOINT_PRECISION, tol: float = 1e-9,
                  max_iter: int = 100):
    r"""The mode of :func:`log_posterior` by Newton's method with backtracking, started at
    ``theta``; returns ``(mode, H)``, ``H`` the negative Hessian at the mode (positive
    definite: where the full Hessian is not negative definite, the Gauss-Newton part
    :math:`J^\top (-\mathbf H_c) J + r\mathbf I`, positive definite because the ordered
    probit log likelihood is concave in the cut-points, Pratt 1981)."""
    theta = np.array(theta, np.float64)
    f, grad, hess = log_posterior(theta, y_hat, labels, precision)
    for _ in range(max_iter):
        H = _positive(-hess, theta, y_hat, labels, precision)
        step = np.linalg.solve(H, grad)
        if np.max(np.abs(step)) < tol:
            break
        t = 1.0
        while True:
            new = theta + t * step
            f_new = log_posterior(new, y_hat, labels, precision, derivatives=False)
            if f_new >= f or t < 1e-10:
                break
            t /= 2
        if f_new < f:        # no ascent along the Newton direction: at the mode
            break
        theta = new
        f, grad, hess = log_posterior(theta, y_hat, labels, precision)
    return theta, _positive(-hess, theta, y_hat, labels, precision)


def _positive(H, theta, y_hat, labels, precision):
    """``H`` if it is positive definite, else the Gauss-Newton matrix (see cutpoint_mode)."""
    try:
        np.linalg.cholesky(H)
        return H
    except np.linalg.LinAlgError:
        p = theta.size
        c = cutpoints_from_theta(theta)
        a, b = _bounds(y_hat, labels, c)
        _, r_a, r_b, ar_a, br_b = _interval_terms(a, b)
        K = p + 1
        H_c = np.diag(np.bincount(labels, -br_b - r_b * r_b, minlength=K)[:-1]
                      + np.bincount(labels, ar_a - r_a * r_a, minlength=K)[1:])
        off = np.bincount(labels, r_a * r_b, minlength=K)[1:-1]
        H_c += np.diag(off, 1) + np.diag(off, -1)
        J = np.tril(np.broadcast_to(np.exp(theta), (p, p))).copy()
        J[:, 0] = 1.0
        return J.T @ (-H_c) @ J + precision * np.eye(p)


def _log_t(theta: np.ndarray, mode: np.ndarray, H: np.ndarray, nu: float) -> float:
    """log density of the multivariate t proposal, up to a constant."""
    d = theta - mode
    return -0.5 * (nu + d.size) * np.log1p(d @ H @ d / nu)


def draw_cutpoints(rng: np.random.Generator, theta: np.ndarray, y_hat: np.ndarray,
                   labels: np.ndarray, precision: float = CUTPOINT_PRECISION,
                   nu: float = PROPOSAL_DOF) -> tuple[np.ndarray, bool]:
    r"""One Metropolis-Hastings step for :math:`\boldsymbol\theta` with :math:`\mathbf z`
    integrated out (module docstring): independence proposal, Student-t around the mode.

    Returns:
        ``(theta, accepted)``: the new :math:`\boldsymbol\theta` and whether the proposal
        was accepted.
    """
    theta = np.asarray(theta, np.float64)
    mode, H = cutpoint_mode(theta, y_hat, labels, precision)
    L = np.linalg.cholesky(H)                                  # H = L L^T
    eps = np.linalg.solve(L.T, rng.standard_normal(theta.size))   # covariance H^-1
    proposal = mode + eps / np.sqrt(rng.chisquare(nu) / nu)
    log_ratio = (log_posterior(proposal, y_hat, labels, precision, derivatives=False)
                 - log_posterior(theta, y_hat, labels, precision, derivatives=False)
                 - _log_t(proposal, mode, H, nu) + _log_t(theta, mode, H, nu))
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
def draw_latents(rng: np.random.Generator, y_hat: np.ndarray, labels: np.ndarray,
                 cutpoints: np.ndarray) -> np.ndarray:
    r""":math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to :math:`(c_{y_i},
    c_{y_i+1}]`, by the inverse CDF in log space: with :math:`a < b` the standardised
    interval (mirrored to :math:`(-b, -a)` when :math:`a > 0`, so that it is never in the
    upper tail), :math:`t = \Phi^{-1}\big(\Phi(b)\,[\rho + U(1 - \rho)]\big)`,
    :math:`\rho = \Phi(a)/\Phi(b)`, :math:`U \sim \mathcal U(0, 1]`, evaluated as
    ``ndtri_exp(log_ndtr(b) + log(rho + U (1 - rho)))``."""
    a, b = _bounds(np.asarray(y_hat, np.float64), labels, cutpoints)
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    l_hi = log_ndtr(hi)
    with np.errstate(invalid="ignore"):
        rho = np.exp(log_ndtr(lo) - l_hi)
    rho = np.nan_to_num(rho, nan=0.0)
    u = 1.0 - rng.random(a.size)                               # in (0, 1]
    t = ndtri_exp(l_hi + np.log(rho + u * (1.0 - rho)))
    t = np.clip(t, lo, hi)
    return y_hat + np.where(flip, -t, t)


def expected_value(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The expected rating :math:`\\sum_j P(y = j)\\, \\text{class}_j` of every row."""
    return np.asarray(proba) @ np.asarray(classes, np.float64)


__all__ = ["CUTPOINT_PRECISION", "PROPOSAL_DOF", "cutpoints_from_theta",
           "theta_from_cutpoints", "log_interval", "class_probabilities", "log_likelihood",
           "log_posterior", "cutpoint_mode", "draw_cutpoints", "initial_theta",
           "draw_latents", "expected_value"]
