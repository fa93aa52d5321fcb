"""fmlib.solvers.libfm: libFM's sgd, sgda, als and mcmc against numpy references written here.

Every reference is a plain per-example / per-parameter loop over a dense X, transcribed
from the equations in the module docstring (libFM's fm_sgd.h, fm_learn_sgd_element_adapt_reg.h
and fm_learn_mcmc.h), not from the compiled code.
"""

import numpy as np
import pytest

from fmlib.solvers import libfm as L


def _data(seed=0, N=9, n=7, k=3, density=0.5, binary=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n)) * (rng.random((N, n)) < density)
    if binary:
        X = (X != 0).astype(float)
    X[:, -1] = 0.0  # a feature that never occurs
    y = rng.integers(1, 6, N).astype(float)
    return X, y


def _params(n, k, seed=1):
    rng = np.random.default_rng(seed)
    return L.Params(np.array([0.3]), rng.normal(0, 0.1, n), rng.normal(0, 0.1, (n, k)))


def _copy(p):
    return L.Params(p.w0.copy(), p.w.copy(), p.V.copy(), p.k0, p.k1)


def _yhat(x, w0, w, V):
    """The FM by its definition: w0 + <w, x> + sum_{j<l} <v_j, v_l> x_j x_l."""
    n = len(x)
    pair = sum(V[j] @ V[l] * x[j] * x[l] for j in range(n) for l in range(j + 1, n))
    return w0 + w @ x + pair


def test_predict_matches_definition():
    X, _ = _data()
    p = _params(X.shape[1], 3)
    expected = [_yhat(x, p.w0[0], p.w, p.V) for x in X]
    np.testing.assert_allclose(L.predict(L.as_rows(X), p), expected, rtol=1e-12)


def _sgd_reference(X, y, p, lr, reg, task, lo, hi, epochs):
    w0, w, V = p.w0[0], p.w.copy(), p.V.copy()
    for _ in range(epochs):
        for x, t in zip(X, y):
            nz = np.flatnonzero(x)
            q = V.T @ x
            y_hat = _yhat(x, w0, w, V)
            if task == 0:
                g = min(hi, max(lo, y_hat)) - t
            else:
                g = -t * (1 - 1 / (1 + np.exp(-t * y_hat)))
            w0 -= lr * (g + reg[0] * w0)
            for j in nz:
                w[j] -= lr * (g * x[j] + reg[1] * w[j])
            for f in range(V.shape[1]):
                for j in nz:
                    V[j, f] -= lr * (
                        g * (x[j] * q[f] - V[j, f] * x[j] ** 2) + reg[2] * V[j, f]
                    )
    return w0, w, V


@pytest.mark.parametrize("task", [0, 1])
def test_sgd_epochs_match_per_example_reference(task):
    X, y = _data()
    if task == 1:
        y = np.where(y > 3, 1.0, -1.0)
    lo, hi = (2.0, 4.5) if task == 0 else (-np.inf, np.inf)  # clipping is exercised
    p = _params(X.shape[1], 3)
    start = _copy(p)
    w0, w, V = _sgd_reference(X, y, _copy(p), 0.05, (0.1, 0.2, 0.3), task, lo, hi, 3)
    for _ in range(3):
        L.sgd_epoch(L.as_rows(X), y, p, 0.05, (0.1, 0.2, 0.3), task, (lo, hi))
    np.testing.assert_allclose(p.w0[0], w0, rtol=1e-12)
    np.testing.assert_allclose(p.w, w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.V, V, rtol=1e-12, atol=1e-15)
    # an absent feature is never touched by sgd (its penalty is per example)
    assert p.w[-1] == start.w[-1] and np.array_equal(p.V[-1], start.V[-1])


def _sgda_reference(X, y, Xv, yv, groups, p, lr, lo, hi, epochs):
    n, k = p.V.shape
    G = groups.max() + 1
    w0, w, V = p.w0[0], np.zeros(n), p.V.copy()
    reg_w, reg_v = np.zeros(G), np.zeros((G, k))
    gw, gv = np.zeros(n), np.zeros((n, k))
    for epoch in range(epochs):
        r = 0
        for x, t in zip(X, y):
            nz = np.flatnonzero(x)
            q = V.T @ x
            g = 2 * (min(hi, max(lo, _yhat(x, w0, w, V))) - t)
            w0 -= lr * g
            for j in nz:
                gw[j] = g * x[j]
                w[j] -= lr * (gw[j] + 2 * reg_w[groups[j]] * w[j])
            for f in range(k):
                for j in nz:
                    gv[j, f] = g * x[j] * (q[f] - V[j, f] * x[j])
                    V[j, f] -= lr * (gv[j, f] + 2 * reg_v[groups[j], f] * V[j, f])
            if epoch == 0:
                continue
            if r == len(Xv):
                r = 0
            xv, tv = Xv[r], yv[r]
            # theta' = theta - lr (grad + 2 lambda theta), on every feature of the row
            w_d = w - lr * (gw + 2 * reg_w[groups] * w)
            V_d = V - lr * (gv + 2 * reg_v[groups] * V)
            gl = 2 * (min(hi, max(lo, _yhat(xv, w0, w_d, V_d))) - tv)
            for c in range(G):
                in_g = groups == c
                reg_w[c] = max(
                    0.0, reg_w[c] - lr * gl * (-2 * lr * np.sum(xv[in_g] * w[in_g]))
                )
            for f in range(k):
                q_dash = xv @ V_d[:, f]
                for c in range(G):
                    in_g = groups == c
                    q_g = xv[in_g] @ V[in_g, f]
                    cross = np.sum(xv[in_g] ** 2 * V[in_g, f] * V_d[in_g, f])
                    reg_v[c, f] = max(
                        0.0, reg_v[c, f] - lr * gl * (-2 * lr * (q_dash * q_g - cross))
                    )
            r += 1
    return w0, w, V, reg_w, reg_v


def test_sgda_theta_and_lambda_steps_match_reference():
    X, y = _data(N=11)
    Xv, yv = _data(seed=5, N=4)
    groups = np.array([0, 0, 1, 1, 1, 2, 2])
    p = _params(X.shape[1], 3)
    w0, w, V, reg_w, reg_v = _sgda_reference(
        X, y, Xv, yv, groups, _copy(p), 0.05, 1.0, 5.0, 3
    )
    s = L.SGDA(
        L.as_rows(X),
        y,
        L.as_rows(Xv),
        yv,
        p,
        groups=groups,
        learn_rate=0.05,
        target_range=(1.0, 5.0),
    )
    for _ in range(3):
        s.epoch()
    assert np.all(reg_w >= 0) and np.any(reg_v > 0)  # the lambda steps did something
    np.testing.assert_allclose(s.reg_w, reg_w, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(s.reg_v, reg_v, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(p.w0[0], w0, rtol=1e-12)
    np.testing.assert_allclose(p.w, w, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(p.V, V, rtol=1e-10, atol=1e-15)


def _als_reference(X, y, p, reg):
    """One libFM als sweep: each parameter set to argmin of sum (y - y_hat)^2 + lambda theta^2
    (w0 with lambda_0), in libFM's order; theta = 0 where sum h^2 + lambda = 0."""
    w0, w, V = p.w0[0], p.w.copy(), p.V.copy()
    n, k = V.shape

    def solve(theta, h, lam):
        y_minus_g = y - np.array([_yhat(x, w0, w, V) for x in X]) + theta * h
        den = h @ h + lam
        return 0.0 if den == 0 else (h @ y_minus_g) / den

    w0 = solve(w0, np.ones(len(y)), reg[0])
    for j in range(n):
        w[j] = solve(w[j], X[:, j], reg[1])
    for f in range(k):
        for j in range(n):
            q = X @ V[:, f]
            V[j, f] = solve(V[j, f], X[:, j] * (q - X[:, j] * V[j, f]), reg[2])
    return w0, w, V


@pytest.mark.parametrize("reg", [(0.0, 0.0, 0.0), (0.5, 1.0, 2.0)])
def test_als_sweep_matches_coordinate_reference(reg):
    X, y = _data()
    p = _params(X.shape[1], 3)
    assert p.w[-1] != 0 and np.all(p.V[-1] != 0)
    w0, w, V = _als_reference(X, y, _copy(p), reg)
    c = L.CoordinateLearner(L.as_rows(X), y, None, p, regular=reg, sample=False)
    c.sweep()
    np.testing.assert_allclose(p.w0[0], w0, rtol=1e-9)
    np.testing.assert_allclose(p.w, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.V, V, rtol=1e-9, atol=1e-12)
    # the feature absent from training: libFM's conditional is the prior, mean 0
    # (and with lambda = 0 a zero precision, which libFM also resolves to 0)
    assert p.w[-1] == 0.0 and np.all(p.V[-1] == 0.0)


def test_als_residuals_stay_in_sync():
    X, y = _data(binary=True)
    p = _params(X.shape[1], 3)
    c = L.CoordinateLearner(
        L.as_rows(X), y, None, p, regular=(0, 0.1, 0.1), sample=False
    )
    for _ in range(3):
        c.sweep()
    np.testing.assert_allclose(c.e, L.predict(L.as_rows(X), p) - y, atol=1e-12)


def test_gibbs_draw_of_absent_feature_is_its_prior():
    """With no training non-zeros (sum h^2 = sum h e = 0) the conditional is N(mu, 1/lambda):
    draws have that mean and variance (closed form), and the mean is the als value."""
    L.seed_numba(3)
    mu, lam = 0.7, 4.0
    draws = np.array(
        [L._draw_theta(-2.0, lam, mu, 1.3, 0.0, 0.0, True) for _ in range(40000)]
    )
    assert abs(draws.mean() - mu) < 4 * np.sqrt(1 / lam / draws.size)
    assert abs(draws.var() - 1 / lam) < 0.02 * (1 / lam) * 3
    assert L._draw_theta(-2.0, lam, mu, 1.3, 0.0, 0.0, False) == mu
    assert L._draw_theta(-2.0, 0.0, mu, 1.3, 0.0, 0.0, True) == 0.0  # zero precision


def test_gibbs_draw_with_data_matches_conditional():
    """P = lambda + alpha sum h^2, m = (alpha sum h (y - g) + lambda mu) / P, with
    e = y_hat - y so sum h (y - g) = theta sum h^2 - sum h e."""
    theta, lam, mu, alpha, hsq, he = 0.4, 2.0, 0.1, 3.0, 5.0, -1.5
    P = lam + alpha * hsq
    m = (alpha * (theta * hsq - he) + lam * mu) / P
    assert np.isclose(L._draw_theta(theta, lam, mu, alpha, hsq, he, False), m)
    L.seed_numba(4)
    draws = np.array(
        [L._draw_theta(theta, lam, mu, alpha, hsq, he, True) for _ in range(40000)]
    )
    assert abs(draws.mean() - m) < 4 * np.sqrt(1 / P / draws.size)
    assert abs(draws.var() * P - 1) < 0.05


def test_mcmc_runs_and_averages_test_predictions():
    X, y = _data(N=30, n=8)
    p = _params(X.shape[1], 2)
    rows = L.as_rows(X)
    c = L.CoordinateLearner(rows, y, rows, p, sample=True, target_range=(1.0, 5.0))
    sums = np.zeros(len(y))
    for _ in range(4):
        c.sweep()
        sums += np.clip(L.predict(rows, p), 1.0, 5.0)
    np.testing.assert_allclose(c.test_sum, sums, rtol=1e-12)
    assert c.alpha > 0 and np.all(c.w_lambda > 0) and np.all(c.v_lambda > 0)


def test_transpose_is_csc():
    X, _ = _data()
    cols = L.transpose(L.as_rows(X))
    for j in range(X.shape[1]):
        rows = cols.indices[cols.indptr[j] : cols.indptr[j + 1]]
        np.testing.assert_array_equal(rows, np.flatnonzero(X[:, j]))
        np.testing.assert_array_equal(
            cols.data[cols.indptr[j] : cols.indptr[j + 1]], X[rows, j]
        )


def test_sgda_needs_validation_rows():
    X, y = _data()
    empty = L.Rows(
        np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), X.shape[1]
    )
    with pytest.raises(ValueError, match="`validation`.*got 0"):
        L.SGDA(L.as_rows(X), y, empty, np.zeros(0), _params(X.shape[1], 2))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda X, y, p: L.sgd_epoch(
                L.as_rows(X), y[:-1], p, 0.1, (0, 0, 0), 0, (1, 5)
            ),
            ValueError,
            r"`y` must have one target per row, shape \(9,\); got shape \(8,\)",
        ),
        (
            lambda X, y, p: L.sgd_epoch(L.as_rows(X), y, p, 0.0, (0, 0, 0), 0, (1, 5)),
            ValueError,
            "`learn_rate` must be a number > 0; got 0.0",
        ),
        (
            lambda X, y, p: L.sgd_epoch(L.as_rows(X), y, p, 0.1, (0, 1), 0, (1, 5)),
            ValueError,
            r"`regular` must be three numbers >= 0 .*got \(0, 1\)",
        ),
        (
            lambda X, y, p: L.sgd_epoch(X, y, p, 0.1, (0, 0, 0), 0, (1, 5)),
            TypeError,
            "`rows` must be fmlib.solvers.libfm.Rows .*got ndarray",
        ),
        (
            lambda X, y, p: L.CoordinateLearner(
                L.as_rows(X), y, None, p, groups=[0, 1]
            ),
            ValueError,
            r"`groups` must be \(7,\) integers >= 0",
        ),
        (
            lambda X, y, p: L.CoordinateLearner(
                L.as_rows(np.hstack([X, X])), y, None, p
            ),
            ValueError,
            "the rows have 14 columns but `params` 7 features",
        ),
    ],
)
def test_bad_inputs_name_the_argument(call, error, match):
    X, y = _data()
    with pytest.raises(error, match=match):
        call(X, y, _params(X.shape[1], 2))


def test_classification_latent_targets():
    """als: the mean of N(y_hat, 1) truncated to the label's side (libFM writes pi as
    3.141, so agreement to a few 1e-4); mcmc: draws on that side with that mean."""
    from scipy.stats import truncnorm

    y_hat = np.array([-1.5, -0.2, 0.0, 0.7, 2.0])
    for label in (1.0, -1.0):
        y = np.full(5, label)
        out = np.empty(5)
        L._probit_targets(y_hat, y, False, out)
        a, b = (-y_hat, np.inf) if label > 0 else (-np.inf, -y_hat)
        np.testing.assert_allclose(out, truncnorm.mean(a, b, loc=y_hat), atol=5e-4)
        L.seed_numba(0)
        draws = np.empty((20000, 5))
        for r in range(20000):
            L._probit_targets(y_hat, y, True, draws[r])
        assert np.all(draws * label > 0)
        np.testing.assert_allclose(
            draws.mean(0), truncnorm.mean(a, b, loc=y_hat), atol=0.03
        )
