"""The ordered probit pieces (fmlib.solvers.ordinal) against independent numpy/scipy
references: quadrature of the normal density, finite differences, a grid posterior of
the cut-points, and scipy's truncated normal."""

import numpy as np
import pytest
from scipy import integrate, stats

from fmlib.solvers import ordinal


def _planted(rng, N, cutpoints):
    y_hat = rng.normal(0.0, 1.0, N)
    labels = np.searchsorted(cutpoints, y_hat + rng.standard_normal(N))
    return y_hat, labels


def test_log_interval_against_quadrature_in_both_tails():
    a = np.array([-np.inf, -3.0, -0.5, 0.2, 6.0, 30.0, -31.0, 2.0])
    b = np.array([-1.0, -2.5, 0.7, 1.0, 6.5, 30.5, -30.0, np.inf])
    got = ordinal.log_interval(a, b)
    for ai, bi, gi in zip(a, b, got):
        # shift the density by its largest value on [a, b] so that quad sees O(1) numbers
        m = (
            0.0
            if ai < 0 < bi
            else min(ai**2, bi**2)
            if np.isfinite(min(abs(ai), abs(bi)))
            else (bi**2 if np.isfinite(bi) else ai**2)
        )
        val, _ = integrate.quad(
            lambda x: np.exp(-(x * x - m) / 2) / np.sqrt(2 * np.pi), ai, bi
        )
        assert gi == pytest.approx(np.log(val) - m / 2, rel=1e-7, abs=1e-9)


def test_class_probabilities_and_likelihood_against_numpy():
    rng = np.random.default_rng(0)
    c = np.array([-1.0, 0.0, 0.4, 2.0])
    y_hat = rng.normal(0, 2, 7)
    P = ordinal.class_probabilities(y_hat, c)
    cdf = stats.norm.cdf(
        np.concatenate([[-np.inf], c, [np.inf]])[None, :] - y_hat[:, None]
    )
    np.testing.assert_allclose(P, np.diff(cdf, axis=1), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    labels = rng.integers(0, 5, 7)
    expected = sum(
        np.log(
            stats.norm.cdf(np.append(c, np.inf)[j] - yh)
            - stats.norm.cdf(np.insert(c, 0, -np.inf)[j] - yh)
        )
        for j, yh in zip(labels, y_hat)
    )
    assert ordinal.log_likelihood(y_hat, labels, c) == pytest.approx(
        expected, rel=1e-10
    )


def test_cutpoint_parameterisation_round_trip_and_bad_input():
    c = np.array([-0.3, 0.1, 2.0])
    np.testing.assert_allclose(
        ordinal.cutpoints_from_theta(ordinal.theta_from_cutpoints(c)), c
    )
    with pytest.raises(ValueError, match="`cutpoints` must increase strictly"):
        ordinal.theta_from_cutpoints([0.0, 0.0, 1.0])


def test_log_posterior_derivatives_against_finite_differences():
    rng = np.random.default_rng(1)
    y_hat, labels = _planted(rng, 500, np.array([-1.2, -0.2, 0.5, 1.5]))
    theta = np.array([-1.0, 0.1, -0.4, 0.3])
    f, g, H = ordinal.log_posterior(theta, y_hat, labels)
    prior = -0.5 * theta @ theta
    assert f == pytest.approx(
        ordinal.log_likelihood(y_hat, labels, ordinal.cutpoints_from_theta(theta))
        + prior
    )
    h = 1e-5
    fd = lambda fun: np.array(
        [(fun(theta + h * e) - fun(theta - h * e)) / (2 * h) for e in np.eye(4)]
    )
    np.testing.assert_allclose(
        g,
        fd(lambda t: ordinal.log_posterior(t, y_hat, labels, derivatives=False)),
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        H,
        fd(lambda t: ordinal.log_posterior(t, y_hat, labels)[1]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_cutpoint_mode_is_a_stationary_point():
    rng = np.random.default_rng(2)
    y_hat, labels = _planted(rng, 3000, np.array([-1.5, -0.5, 0.3, 1.2]))
    mode, H = ordinal.cutpoint_mode(np.zeros(4), y_hat, labels)
    _, g, hess = ordinal.log_posterior(mode, y_hat, labels)
    # the distance to the stationary point (a Newton step) is tiny against the
    # posterior's spread (about 1/sqrt(3000 / 5))
    assert np.max(np.abs(np.linalg.solve(-hess, g))) < 1e-6
    np.testing.assert_allclose(H, -hess)
    # 3000 ratings: the planted cut-points within a few standard errors
    np.testing.assert_allclose(
        ordinal.cutpoints_from_theta(mode), [-1.5, -0.5, 0.3, 1.2], atol=0.12
    )


def test_cutpoint_sampler_against_a_grid_posterior():
    """Three classes, fixed scores: p(c1, c2 | y, ŷ) on a grid (numpy, the prior on
    theta with its Jacobian to the cut-points) against 4000 MH steps."""
    rng = np.random.default_rng(3)
    y_hat, labels = _planted(rng, 40, np.array([-0.4, 0.6]))
    c1 = np.linspace(-2.5, 1.5, 321)
    gap = np.linspace(1e-3, 3.5, 320)
    C1, G = np.meshgrid(c1, gap, indexing="ij")
    C2 = C1 + G
    loglik = np.zeros_like(C1)
    for yh, j in zip(y_hat, labels):
        lo = -np.inf if j == 0 else (C1 if j == 1 else C2)
        hi = C1 if j == 0 else (C2 if j == 1 else np.inf)
        loglik += np.log(stats.norm.cdf(hi - yh) - stats.norm.cdf(lo - yh))
    # prior: theta1 = c1 ~ N(0, 1), theta2 = log(gap) ~ N(0, 1); density in (c1, gap)
    # carries the Jacobian 1/gap of theta2 = log(gap)
    logpost = loglik - 0.5 * C1**2 - 0.5 * np.log(G) ** 2 - np.log(G)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()
    mean = np.array([np.sum(w * C1), np.sum(w * C2)])
    sd = np.sqrt(np.array([np.sum(w * C1**2), np.sum(w * C2**2)]) - mean**2)

    theta, draws, accepted = np.zeros(2), [], 0
    for _ in range(4000):
        theta, ok = ordinal.draw_cutpoints(rng, theta, y_hat, labels)
        accepted += ok
        draws.append(ordinal.cutpoints_from_theta(theta))
    draws = np.array(draws)
    assert accepted / 4000 > 0.5  # the Laplace/t proposal fits this posterior
    # 4000 nearly independent draws: the means within 5 standard errors (with the
    # acceptance rate the effective size is above 2000), the sds within 10 %
    np.testing.assert_allclose(
        draws.mean(axis=0), mean, atol=5 * sd.max() / np.sqrt(2000)
    )
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.1)


def test_cutpoint_sampler_fails_when_the_proposal_ratio_is_dropped(monkeypatch):
    """The grid test can fail: without the proposal densities in the acceptance ratio
    the chain's spread differs from the posterior's."""
    rng = np.random.default_rng(4)
    y_hat, labels = _planted(rng, 40, np.array([-0.4, 0.6]))
    monkeypatch.setattr(ordinal, "_log_t", lambda *args: 0.0)
    theta, draws = np.zeros(2), []
    for _ in range(1500):
        theta, _ = ordinal.draw_cutpoints(rng, theta, y_hat, labels)
        draws.append(ordinal.cutpoints_from_theta(theta))
    # without the correction an independence sampler's chain follows posterior x
    # proposal (the ratio of the targets alone): narrower than the posterior
    monkeypatch.undo()
    theta, right = np.zeros(2), []
    for _ in range(1500):
        theta, _ = ordinal.draw_cutpoints(rng, theta, y_hat, labels)
        right.append(ordinal.cutpoints_from_theta(theta))
    assert np.std(draws, axis=0)[0] < 0.85 * np.std(right, axis=0)[0]


def test_latents_follow_the_truncated_normal():
    rng = np.random.default_rng(5)
    c = np.array([-1.0, 0.5, 2.0])
    for yh, j in [(0.3, 0), (0.3, 1), (-2.0, 2), (1.0, 3), (12.0, 0), (-15.0, 3)]:
        z = ordinal.draw_latents(rng, np.full(20000, yh), np.full(20000, j), c)
        lo = -np.inf if j == 0 else c[j - 1]
        hi = np.inf if j == 3 else c[j]
        assert np.all((z > lo) & (z <= hi))
        ref = stats.truncnorm(lo - yh, hi - yh, loc=yh)
        assert z.mean() == pytest.approx(ref.mean(), abs=5 * ref.std() / np.sqrt(20000))
        assert z.std() == pytest.approx(ref.std(), rel=0.05)


def test_compiled_pass_matches_the_numpy_likelihood_in_the_tails():
    rng = np.random.default_rng(7)
    c = np.array([-1.0, 0.5, 2.0])
    y_hat = np.concatenate([rng.normal(0, 3, 200), [60.0, -60.0, 35.0, -33.0, 0.5]])
    labels = np.concatenate([rng.integers(0, 4, 200), [0, 3, 1, 2, 1]])
    theta = ordinal.theta_from_cutpoints(c)
    f = ordinal.log_posterior(theta, y_hat, labels, derivatives=False)
    expected = ordinal.log_likelihood(y_hat, labels, c) - 0.5 * theta @ theta
    assert f == pytest.approx(expected, rel=1e-10)


def test_latents_vary_per_row():
    rng = np.random.default_rng(6)
    y_hat = np.array([-3.0, 0.0, 3.0, 0.0])
    labels = np.array([0, 1, 2, 2])
    z = ordinal.draw_latents(rng, y_hat, labels, np.array([-0.5, 0.5]))
    assert z[0] <= -0.5 and -0.5 < z[1] <= 0.5 and z[2] > 0.5 and z[3] > 0.5
    assert len(set(z.tolist())) == 4
