"""fmlib.VariationalFM: the ELBO against a Monte Carlo estimate from scipy's densities,
every coordinate step as the ELBO's maximum along its factor (numerical optimisation),
the ELBO non-decreasing, and planted data recovered."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from reference import planted_fm
from scipy import optimize, stats

import fmlib
from fmlib.solvers import variational as vi


def _fitted(task="regression", num_iter=8, n_rows=25, seed=0):
    X, y, _ = planted_fm(n_rows=n_rows, n=5, k=2, noise=0.3, seed=seed)
    if task == "classification":
        y = (y > np.median(y)).astype(float)
    model = fmlib.VariationalFM(k=2, num_iter=num_iter, task=task, seed=seed).fit(X, y)
    return X, y, model


def test_elbo_against_monte_carlo():
    X, y, model = _fitted()
    st = model.state_
    rng = np.random.default_rng(1)
    S = 200_000
    Xd = X.toarray()
    w0 = rng.normal(st.m0, np.sqrt(st.s0), S)
    w = rng.normal(st.mw, np.sqrt(st.sw), (S, 5))
    V = rng.normal(st.MV, np.sqrt(st.SV), (S, 5, 2))
    alpha = rng.gamma(st.alpha.a, 1 / st.alpha.b, S)
    lam_w = rng.gamma(st.lam_w.a[0], 1 / st.lam_w.b[0], S)
    mu_w = rng.normal(st.mu_w[0], np.sqrt(st.mu_w_var[0]), S)
    lam_v = rng.gamma(st.lam_v.a[0], 1 / st.lam_v.b[0], (S, 2))
    mu_v = rng.normal(st.mu_v[0], np.sqrt(st.mu_v_var[0]), (S, 2))
    # eq. (1) per sample: w0 + x w + sum_{l<l'} <v_l, v_l'> x_l x_l'
    lin = w0[:, None] + w @ Xd.T
    pair = np.zeros_like(lin)
    for a in range(5):
        for b in range(a + 1, 5):
            pair += np.einsum("sf,sf->s", V[:, a], V[:, b])[:, None] * (
                Xd[:, a] * Xd[:, b]
            )
    y_hat = lin + pair
    N = stats.norm
    log_p = N.logpdf(y, y_hat, 1 / np.sqrt(alpha[:, None])).sum(1)
    log_p += stats.gamma.logpdf(alpha, 0.5, scale=2.0)  # Gamma(1/2, 1/2)
    log_p += N.logpdf(w, mu_w[:, None], 1 / np.sqrt(lam_w[:, None])).sum(1)
    log_p += N.logpdf(V, mu_v[:, None, :], 1 / np.sqrt(lam_v[:, None, :])).sum((1, 2))
    log_p += N.logpdf(mu_w, 0, 1 / np.sqrt(lam_w)) + N.logpdf(
        mu_v, 0, 1 / np.sqrt(lam_v)
    ).sum(1)
    log_p += stats.gamma.logpdf(lam_w, 0.5, scale=2.0) + stats.gamma.logpdf(
        lam_v, 0.5, scale=2.0
    ).sum(1)
    log_q = (
        N.logpdf(w0, st.m0, np.sqrt(st.s0))
        + N.logpdf(w, st.mw, np.sqrt(st.sw)).sum(1)
        + N.logpdf(V, st.MV, np.sqrt(st.SV)).sum((1, 2))
        + stats.gamma.logpdf(alpha, st.alpha.a, scale=1 / st.alpha.b)
        + stats.gamma.logpdf(lam_w, st.lam_w.a[0], scale=1 / st.lam_w.b[0])
        + stats.gamma.logpdf(lam_v, st.lam_v.a[0], scale=1 / st.lam_v.b[0]).sum(1)
        + N.logpdf(mu_w, st.mu_w[0], np.sqrt(st.mu_w_var[0]))
        + N.logpdf(mu_v, st.mu_v[0], np.sqrt(st.mu_v_var[0])).sum(1)
    )
    estimate = log_p - log_q
    se = estimate.std() / np.sqrt(S)
    group = np.zeros(5, np.int64)
    assert vi.elbo(X, y, st, group, "regression") == pytest.approx(
        estimate.mean(), abs=4 * se
    )
    # and the moments of the score
    mean, var = vi.prediction_moments(X, st)
    np.testing.assert_allclose(mean, y_hat.mean(0), atol=5 * np.sqrt(var.max() / S))
    np.testing.assert_allclose(var, y_hat.var(0), rtol=0.03)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_elbo_never_decreases(task):
    _, _, model = _fitted(task, num_iter=25, n_rows=200)
    elbo = model.trace_["elbo"].to_numpy()
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))
    assert elbo[-1] > elbo[0]


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_each_coordinate_step_maximises_the_elbo_along_its_factor(task):
    """Right after a step, the factor it set last (w0; the last w_l; the last v_lf) is
    where a numerical optimiser of the ELBO over that factor's mean and log variance
    lands: the closed-form updates are the coordinate-ascent steps of this ELBO."""
    X, y, model = _fitted(task, num_iter=3, n_rows=60)
    st = copy.deepcopy(model.state_)
    group = np.zeros(5, np.int64)
    mean, _ = vi.prediction_moments(X, st)
    target = vi.latent_means(mean, y) if task == "classification" else y
    r = target - mean
    alpha = 1.0 if task == "classification" else float(st.alpha.mean)
    Xc = X.tocsc()

    def check(get, put):
        def neg(p):
            s = copy.deepcopy(st)
            put(s, p[0], np.exp(p[1]))
            return -_elbo_given_z(X, y, s, group, task, target)

        m0, v0 = get(st)
        res = optimize.minimize(
            neg,
            [m0, np.log(v0)],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000},
        )
        assert res.x[0] == pytest.approx(m0, abs=1e-5 * max(1.0, abs(m0)))
        assert np.exp(res.x[1]) == pytest.approx(v0, rel=1e-4)
        # and a step away lowers it
        assert neg([m0 + 0.05, np.log(v0)]) > neg([m0, np.log(v0)])

    def w0(s, m=None, v=None):
        if m is None:
            return s.m0, s.s0
        s.m0, s.s0 = m, v

    def w_last(s, m=None, v=None):
        if m is None:
            return s.mw[-1], s.sw[-1]
        s.mw[-1], s.sw[-1] = m, v

    def v_last(s, m=None, v=None):
        if m is None:
            return s.MV[-1, -1], s.SV[-1, -1]
        s.MV[-1, -1], s.SV[-1, -1] = m, v

    vi.update_w0(st, r, alpha)
    check(w0, w0)
    vi.update_w(Xc, st, r, alpha, group, 1)
    check(w_last, w_last)
    vi.update_V(Xc, st, r, alpha, group, 1)
    check(v_last, v_last)
    np.testing.assert_allclose(r, target - vi.prediction_moments(X, st)[0], atol=1e-10)


def _elbo_given_z(X, y, st, group, task, target):
    """The ELBO with q(z) held fixed (classification): the regression form with targets
    E[z], alpha = 1, plus terms that do not depend on the parameters' factors."""
    if task == "regression":
        return vi.elbo(X, y, st, group, task)
    s = copy.deepcopy(st)
    s.alpha = vi._Gamma(1e12, 1e12)  # E[alpha] = 1, Var[alpha] ~ 0
    return vi.elbo(X, target, s, group, "regression")


def test_planted_regression_and_classification_recovered():
    X, y, _ = planted_fm(n_rows=1500, noise=0.3, seed=1)
    reg = fmlib.VariationalFM(k=3, num_iter=30, seed=0).fit(X[:1000], y[:1000])
    rmse = np.sqrt(np.mean((reg.predict(X[1000:]) - y[1000:]) ** 2))
    assert rmse < 0.3 * np.std(y[1000:])
    labels = (y > np.median(y)).astype(float)
    clf = fmlib.VariationalFM(k=3, num_iter=30, task="classification", seed=0)
    clf.fit(X[:1000], labels[:1000])
    assert np.mean(clf.predict(X[1000:]) == labels[1000:]) > 0.8
    p = clf.predict_proba(X[1000:1010])
    assert p.shape == (10,) and np.all((p > 0) & (p < 1)) and len(set(p.tolist())) == 10


def test_bad_inputs():
    X, y, _ = planted_fm(n_rows=20, n=5, seed=0)
    with pytest.raises(ValueError, match=r"`task` must be one of .*got 'ordinal'"):
        fmlib.VariationalFM(task="ordinal").fit(X, y)
    with pytest.raises(ValueError, match="`num_iter` must be >= 1; got 0"):
        fmlib.VariationalFM(num_iter=0).fit(X, y)
    with pytest.raises(ValueError, match="`X` must be finite"):
        fmlib.VariationalFM(num_iter=1).fit(
            sp.csr_matrix(np.full((3, 2), np.nan)), np.ones(3)
        )
    model = fmlib.VariationalFM(num_iter=1).fit(X, y)
    with pytest.raises(
        ValueError,
        match="`X` has 4 feature columns, but the model expects n_features=5",
    ):
        model.predict(X[:, :4])
    with pytest.raises(
        AttributeError, match="predict_proba is for task='classification'"
    ):
        model.predict_proba(X)
