"""fmlib.BayesianFM and its Gibbs conditionals, against known posteriors and planted data."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import planted_fm
from scipy.special import ndtr
from scipy.stats import norm

import fmlib
from fmlib.solvers.coordinate import CoordinateSweeper, block_schedule
from fmlib.solvers.mcmc import (
    A0,
    A_LAMBDA,
    B0,
    B_LAMBDA,
    GAMMA0,
    MU0,
    draw_alpha,
    draw_latent_targets,
    draw_normal_gamma,
)


def test_gibbs_on_w_samples_the_conjugate_posterior_of_a_bayesian_linear_model():
    """With V = 0 the FM is linear; Gibbs sweeps over w (block updates, correlated columns)
    must reproduce the analytical posterior N(m, S), S = (alpha X'X + Lambda)^-1."""
    rng = np.random.default_rng(0)
    X = np.c_[
        np.eye(3)[rng.integers(0, 3, 12)], rng.normal(size=(12, 2)), np.zeros((12, 1))
    ]
    X[:, 3] += 0.8 * X[:, 0]  # correlated columns
    y = X @ np.array([1.0, -0.5, 0.2, 0.7, -1.2, 0.0]) + rng.normal(0, 0.5, 12)
    alpha, mu, lam = (
        2.0,
        np.array([0.3, 0, 0, -0.2, 0, 0.5]),
        np.array([1, 2, 1, 0.5, 1, 4.0]),
    )
    S = np.linalg.inv(alpha * X.T @ X + np.diag(lam))
    m = S @ (alpha * X.T @ y + lam * mu)

    Xs = sp.csr_matrix(X)
    schedule = block_schedule(Xs, [0, 0, 0, 1, 2, 3])
    assert any(len(block) == 3 for block in schedule)  # the one-hot block moves at once
    sweeper = CoordinateSweeper(Xs, y, 0.0, np.zeros(6), np.zeros((6, 1)), schedule)
    samples = []
    for _ in range(30000):
        sweeper.update_w(alpha, mu, lam, rng.standard_normal(6), sample=True)
        samples.append(sweeper.w.copy())
    samples = np.array(samples[1000:])
    sd = np.sqrt(np.diag(S))
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - m), 0.05 * sd)
    np.testing.assert_allclose(np.cov(samples.T), S, atol=0.06 * sd.max() ** 2)


def test_hyperparameter_gibbs_steps_sample_the_normal_gamma_posterior():
    rng = np.random.default_rng(1)
    theta = np.r_[rng.normal(0.4, 0.7, 9), rng.normal(-1.0, 0.3, 5)]
    group = np.r_[np.zeros(9, int), np.ones(5, int)]
    mu, draws = np.zeros(2), []
    for _ in range(40000):
        mu, lam = draw_normal_gamma(rng, theta, group, 2, mu)
        draws.append((mu.copy(), lam.copy()))
    mus, lams = (np.array([d[i] for d in draws[500:]]) for i in (0, 1))
    for g, members in enumerate((theta[:9], theta[9:])):
        m, mean = members.size, members.mean()
        # marginal posterior: lambda ~ Gamma((a + m)/2, (b + S)/2), mu | lambda ~ N(mu_hat, .)
        S = np.sum((members - mean) ** 2) + m * GAMMA0 * (mean - MU0) ** 2 / (
            m + GAMMA0
        )
        lam_mean = (A_LAMBDA + m) / (B_LAMBDA + S)
        mu_hat = (members.sum() + GAMMA0 * MU0) / (m + GAMMA0)
        mu_var = (B_LAMBDA + S) / ((m + GAMMA0) * (A_LAMBDA + m - 2))
        assert lams[:, g].mean() == pytest.approx(lam_mean, rel=0.03)
        assert mus[:, g].mean() == pytest.approx(mu_hat, abs=0.03 * np.sqrt(mu_var))
        assert mus[:, g].var() == pytest.approx(mu_var, rel=0.05)


def test_hyperparameters_per_factor_have_the_shape_of_mu():
    rng = np.random.default_rng(2)
    mu, lam = draw_normal_gamma(
        rng, rng.normal(size=(6, 3)), np.array([0, 0, 1, 1, 1, 2]), 3, np.zeros((3, 3))
    )
    assert mu.shape == lam.shape == (3, 3) and np.all(lam > 0)


def test_noise_precision_is_drawn_from_its_gamma_conditional():
    rng = np.random.default_rng(3)
    e = rng.normal(0, 0.5, 200)
    draws = np.array([draw_alpha(rng, e) for _ in range(20000)])
    shape, rate = (A0 + e.size) / 2, (B0 + e @ e) / 2
    assert draws.mean() == pytest.approx(shape / rate, rel=0.01)
    assert draws.var() == pytest.approx(shape / rate**2, rel=0.05)


@pytest.mark.parametrize("y_hat", [-3.0, -0.5, 0.0, 1.2, 6.0])
def test_probit_latent_targets_follow_the_truncated_normal(y_hat):
    rng = np.random.default_rng(4)
    for positive in (True, False):
        z = draw_latent_targets(rng, np.full(50000, y_hat), np.full(50000, positive))
        assert np.all(z > 0) if positive else np.all(z < 0)
        s = 1.0 if positive else -1.0  # E[z] = y_hat + s phi / Phi(s y_hat)
        expected = y_hat + s * norm.pdf(y_hat) / ndtr(s * y_hat)
        assert z.mean() == pytest.approx(expected, abs=0.02)


def test_bayesian_fm_recovers_a_planted_fm_to_the_noise_level():
    X, y, score = planted_fm(n_rows=3000, seed=5, noise=0.1)
    bfm = fmlib.BayesianFM(k=3, num_sweeps=150, burn_in=50, seed=0)
    bfm.fit(X[:2500], y[:2500], X_test=X[2500:], y_test=y[2500:])
    y_hat = bfm.predict(X[2500:])
    assert np.sqrt(np.mean((y_hat - score[2500:]) ** 2)) < 0.1
    trace = bfm.trace_
    assert isinstance(trace, pd.DataFrame) and trace.index.tolist() == list(
        range(1, 151)
    )
    # the running posterior mean of the trace is what predict returns
    assert trace["test_rmse_mean"].iloc[-1] == pytest.approx(
        np.sqrt(np.mean((y_hat - y[2500:]) ** 2)), rel=1e-10
    )
    assert trace["test_rmse_mean"].iloc[:50].isna().all()
    assert 1 / np.sqrt(trace["alpha"].iloc[50:].mean()) == pytest.approx(0.1, rel=0.15)
    assert {
        "mu_w[all]",
        "lambda_w[all]",
        "mu_v[all]",
        "lambda_v[all]",
        "train_rmse",
        "test_rmse",
    } <= set(trace.columns)
    assert len(bfm.samples_["V"]) == 100


def test_probit_classification_learns_and_gives_probabilities():
    X, y01, score = planted_fm(n_rows=3000, seed=6, classification=True)
    probas = []
    for y in (y01, 2 * y01 - 1):
        bfm = fmlib.BayesianFM(k=3, num_sweeps=60, task="classification", seed=1)
        bfm.fit(X[:2500], y[:2500], X_test=X[2500:], y_test=y[2500:])
        probas.append(bfm.predict_proba(X[2500:]))
    np.testing.assert_array_equal(probas[0], probas[1])
    proba = probas[0]
    assert np.all((proba >= 0) & (proba <= 1))
    accuracy = np.mean((proba > 0.5) == (y01[2500:] > 0.5))
    bayes = np.mean((score[2500:] > 0) == (y01[2500:] > 0.5))
    assert accuracy > bayes - 0.05
    np.testing.assert_array_equal(bfm.predict(X[2500:]), (proba > 0.5).astype(int))
    assert bfm.trace_["test_accuracy_mean"].iloc[-1] == pytest.approx(accuracy)


def test_same_seed_same_samples_and_input_layouts_agree():
    X, y, _ = planted_fm(n_rows=400, seed=7)
    runs = []
    for data in (X, X, X.toarray(), tf.sparse.from_dense(X.toarray())):
        runs.append(
            fmlib.BayesianFM(k=2, num_sweeps=20, seed=3).fit(data, y).predict(X)
        )
    np.testing.assert_array_equal(runs[0], runs[1])
    for other in runs[2:]:
        np.testing.assert_allclose(other, runs[0], rtol=1e-9)
    assert not np.allclose(
        runs[0], fmlib.BayesianFM(k=2, num_sweeps=20, seed=4).fit(X, y).predict(X)
    )


def test_one_core_and_all_cores_agree_to_four_decimals():
    script = textwrap.dedent("""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        if sys.argv[2] == "one":
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        sys.path.insert(0, sys.argv[1])
        import numpy as np, fmlib
        from reference import planted_fm
        X, y, _ = planted_fm(n_rows=600, seed=8)
        p = fmlib.BayesianFM(k=3, num_sweeps=30, seed=0).fit(X, y).predict(X)
        print(" ".join(f"{v:.4f}" for v in p[:50]))
        """)
    here = os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))
    )  # tests/, for reference.py
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script, here, cores],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        for cores in ("all", "one")
    ]
    assert outputs[0] == outputs[1] and len(outputs[0].split()) == 50


@pytest.mark.parametrize(
    "params, fit_args, error, pattern",
    [
        ({"k": 0}, {}, ValueError, r"`k` must be >= 1; got 0"),
        (
            {"num_sweeps": 10, "burn_in": 10},
            {},
            ValueError,
            r"`burn_in` must be smaller than `num_sweeps` \(10\)",
        ),
        ({"burn_in": -1}, {}, ValueError, r"`burn_in` must be >= 0; got -1"),
        ({"task": "ranking"}, {}, ValueError, r"`task` must be one of .*got 'ranking'"),
        (
            {"task": "classification"},
            {},
            ValueError,
            r"`y` for task='classification' must be labels",
        ),
        (
            {"groups": [0, 1, 2]},
            {},
            ValueError,
            r"`groups` must hold one group label per column \(4\)",
        ),
        ({"seed": "x"}, {}, TypeError, r"`seed` must be an integer"),
        (
            {},
            {"X": np.r_[np.ones((5, 4)), [[np.inf, 0, 0, 0]]]},
            ValueError,
            r"`X` must be finite",
        ),
        ({}, {"y": np.r_[np.ones(5), np.nan]}, ValueError, r"`y` must be finite"),
        (
            {},
            {"y_test": np.ones(2)},
            ValueError,
            r"`y_test` was given without `X_test`",
        ),
        (
            {"keep_samples": 1},
            {},
            TypeError,
            r"`keep_samples` must be True or False; got int 1",
        ),
        (
            {"task": "ordinal"},
            {"y": np.full(6, 3.0)},
            ValueError,
            r"`y` for task='ordinal' needs at least two distinct ratings; got only \[3.0\]",
        ),
        (
            {"task": "ordinal"},
            {"X_test": np.ones((2, 4)), "y_test": np.array([1.0, 4.0])},
            ValueError,
            r"`y_test` has ratings that are not classes of the training ratings "
            r"\[0.0, 0.5, 1.0, 2.0\]: e.g. 4.0",
        ),
        (
            {},
            {"X_test": np.ones((2, 3)), "y_test": np.ones(2)},
            ValueError,
            r"`X_test` has 3 feature columns, but the model expects n_features=4",
        ),
    ],
)
def test_bayesian_fm_rejects_bad_input(params, fit_args, error, pattern):
    args = {"X": np.ones((6, 4)), "y": np.array([0, 1, 2, 0, 1, 0.5])}
    args.update(fit_args)
    with pytest.raises(error, match=pattern):
        fmlib.BayesianFM(num_sweeps=params.pop("num_sweeps", 3), **params).fit(**args)


def test_prediction_needs_a_fitted_model_and_probabilities_need_classification():
    with pytest.raises(RuntimeError, match="call fit before predicting"):
        fmlib.BayesianFM().predict(np.ones((2, 4)))
    bfm = fmlib.BayesianFM(k=2, num_sweeps=3).fit(np.eye(4), np.arange(4.0))
    with pytest.raises(
        AttributeError, match="predict_proba is for task='classification'"
    ):
        bfm.predict_proba(np.eye(4))
    with pytest.raises(
        ValueError,
        match=r"`X` has 5 feature columns, but the model expects n_features=4",
    ):
        bfm.predict(np.ones((2, 5)))


# --- ordinal ratings (ordered probit) and accumulated test predictions ----------------------
def _dense_scores(X, w0, w, V):
    """ŷ by Rendle's eq. (1) as a numpy double sum over the feature pairs."""
    Xd = np.asarray(X.todense() if sp.issparse(X) else X)
    inter = Xd @ V
    return w0 + Xd @ w + 0.5 * ((inter**2).sum(1) - ((Xd**2) @ (V**2)).sum(1))


def _planted_ordinal(n_rows, seed, cut=(-1.2, -0.3, 0.5, 1.4)):
    X, score, _ = planted_fm(n_rows=n_rows, noise=0.0, seed=seed)
    rng = np.random.default_rng(seed + 100)
    score = score - score.mean()  # the planted latent mean, centred
    stars = 1 + np.searchsorted(np.array(cut), score + rng.standard_normal(n_rows))
    return X, score, stars.astype(float), np.array(cut)


def test_ordinal_recovers_planted_class_probabilities_and_cutpoint_gaps():
    X, score, stars, cut = _planted_ordinal(3500, seed=3)
    Xt, yt = X[3000:], stars[3000:]
    bfm = fmlib.BayesianFM(k=3, num_sweeps=80, burn_in=30, task="ordinal", seed=0)
    bfm.fit(X[:3000], stars[:3000])
    np.testing.assert_array_equal(bfm.classes_, [1, 2, 3, 4, 5])
    P = bfm.predict_proba(Xt)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    edges = np.r_[-np.inf, cut, np.inf]
    truth = np.diff(norm.cdf(edges[None, :] - score[3000:, None]), axis=1)
    marginal = np.bincount(stars[:3000].astype(int) - 1, minlength=5) / 3000
    err = np.abs(P - truth).mean()
    assert err < 0.35 * np.abs(marginal[None, :] - truth).mean()
    # only c - ŷ is identified: the gaps between the cut-points are
    gaps = np.diff(bfm.samples_["cutpoints"], axis=1).mean(axis=0)
    np.testing.assert_allclose(gaps, np.diff(cut), atol=0.15)
    assert 0.3 < bfm.acceptance_rate_ <= 1.0
    # expected rating and most probable class from the probabilities
    np.testing.assert_allclose(bfm.predict(Xt), P @ np.arange(1, 6))
    np.testing.assert_array_equal(
        bfm.predict(Xt, most_probable=True), 1 + P.argmax(axis=1)
    )
    rmse = np.sqrt(np.mean((bfm.predict(Xt) - yt) ** 2))
    assert rmse < 0.9 * np.sqrt(np.mean((yt - stars[:3000].mean()) ** 2))


def test_ordinal_classes_are_the_sorted_distinct_ratings():
    X, _, stars, _ = _planted_ordinal(600, seed=4, cut=(-0.5, 0.5))
    labels = np.array([2.0, 4.0, 7.0])[stars.astype(int) - 1]
    bfm = fmlib.BayesianFM(k=2, num_sweeps=20, task="ordinal", seed=1).fit(X, labels)
    np.testing.assert_array_equal(bfm.classes_, [2.0, 4.0, 7.0])
    assert bfm.predict_proba(X[:5]).shape == (5, 3)
    assert set(bfm.predict(X[:50], most_probable=True)) <= {2.0, 4.0, 7.0}
    assert [c for c in bfm.trace_.columns if c.startswith("cutpoint")] == [
        "cutpoint[1]",
        "cutpoint[2]",
    ]
    with pytest.raises(ValueError, match="`most_probable` is for task='ordinal'"):
        fmlib.BayesianFM(k=2, num_sweeps=3).fit(X, labels).predict(
            X, most_probable=True
        )


def test_ordinal_on_relation_blocks_gives_the_flat_samples():
    rng = np.random.default_rng(5)
    users, items = (
        sp.csr_matrix(np.eye(30)),
        sp.csr_matrix(np.c_[np.eye(20), rng.random((20, 3))]),
    )
    u, i = rng.integers(0, 30, 500), rng.integers(0, 20, 500)
    groups = {"user": slice(0, 30), "item": slice(30, 53)}
    design = fmlib.RelationalDesign(
        None,
        [fmlib.RelationBlock(users, u, "user"), fmlib.RelationBlock(items, i, "item")],
        groups=groups,
    )
    stars = rng.integers(1, 6, 500).astype(float)
    fits = [
        fmlib.BayesianFM(k=2, num_sweeps=15, task="ordinal", groups=groups, seed=2).fit(
            d, stars
        )
        for d in (design, design.to_csr())
    ]
    for key in ("w0", "w", "V", "cutpoints"):
        np.testing.assert_allclose(
            fits[0].samples_[key], fits[1].samples_[key], atol=1e-8
        )
    np.testing.assert_allclose(
        fits[0].predict_proba(design[:40]),
        fits[1].predict_proba(design.to_csr()[:40]),
        atol=1e-8,
    )


@pytest.mark.parametrize("task", ["regression", "classification", "ordinal"])
def test_accumulated_test_predictions_equal_the_mean_over_kept_samples(task):
    X, score, stars, cut = _planted_ordinal(700, seed=6)
    y = {
        "regression": score,
        "classification": (score > 0).astype(float),
        "ordinal": stars,
    }[task]
    X_train, X_test = X[:500], X[500:]
    args = dict(k=3, num_sweeps=25, burn_in=5, task=task, seed=3)
    kept = fmlib.BayesianFM(**args).fit(X_train, y[:500], X_test=X_test)
    # the reference: numpy over the kept samples
    links = []
    for s in range(20):
        yh = _dense_scores(
            X_test, kept.samples_["w0"][s], kept.samples_["w"][s], kept.samples_["V"][s]
        )
        if task == "regression":
            links.append(yh)
        elif task == "classification":
            links.append(norm.cdf(yh))
        else:
            edges = np.r_[-np.inf, kept.samples_["cutpoints"][s], np.inf]
            links.append(np.diff(norm.cdf(edges[None, :] - yh[:, None]), axis=1))
    mean = np.mean(links, axis=0)
    if task == "regression":
        np.testing.assert_allclose(kept.test_prediction_, mean, rtol=1e-9, atol=1e-9)
    else:
        np.testing.assert_allclose(kept.test_proba_, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            kept.predict_proba(X_test), kept.test_proba_, atol=1e-12
        )
    np.testing.assert_allclose(kept.predict(X_test), kept.test_prediction_, atol=1e-12)
    # without samples: the same draws, the same accumulated predictions, nothing kept
    light = fmlib.BayesianFM(**args, keep_samples=False).fit(
        X_train, y[:500], X_test=X_test
    )
    assert not hasattr(light, "samples_")
    np.testing.assert_allclose(
        light.test_prediction_, kept.test_prediction_, atol=1e-12
    )
    with pytest.raises(RuntimeError, match="keep_samples=False"):
        light.predict(X_test)
