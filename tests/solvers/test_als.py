"""fmlib.fit(solver="als"): coordinate descent against the objective computed from eq. (1)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_definition, fm_gradient, planted_fm, reference_sweep

import fmlib
from fmlib.solvers.coordinate import block_schedule


def objective(X, y, fm, lambda_w, lambda_v):
    """sum of squared errors + lambda_w |w|^2 + lambda_v |V|^2 (libFM's ALS objective)."""
    p = fm.get_weights()
    r = y - fm_definition(X, p["w0"], p["w"], p["V"])
    return r @ r + lambda_w * p["w"] @ p["w"] + lambda_v * np.sum(p["V"] ** 2)


@pytest.mark.parametrize("layout", ["scipy", "dense", "tf.SparseTensor"])
def test_one_sweep_sets_every_parameter_to_its_argmin(layout):
    rng = np.random.default_rng(0)
    X = sp.random(30, 7, density=0.35, random_state=2, format="csr")
    y = rng.normal(size=30)
    fm = fmlib.FactorizationMachine(7, k=2, seed=1, init_std=0.5, dtype=tf.float64)
    start = fm.get_weights()
    data = {
        "scipy": X,
        "dense": X.toarray(),
        "tf.SparseTensor": tf.sparse.from_dense(X.toarray()),
    }[layout]
    fmlib.fit(fm, data, y, solver="als", num_epochs=1, lambda_w=0.3, lambda_v=0.8)
    # the reference: one parameter at a time (in the schedule's order), each set to the
    # minimiser of the objective in that parameter, read off the objective itself
    n, k = 7, 2
    mu = {"w0": np.zeros(()), "w": np.zeros(n), "V": np.zeros((n, k))}
    lam = {"w0": np.zeros(()), "w": np.full(n, 0.3), "V": np.full((n, k), 0.8)}
    ref_w0, ref_w, ref_V = reference_sweep(
        X.toarray(),
        y,
        start["w0"],
        start["w"],
        start["V"],
        block_schedule(X),
        1.0,
        mu,
        lam,
        None,
        sample=False,
    )
    got = fm.get_weights()
    np.testing.assert_allclose(got["w0"], ref_w0, rtol=1e-9)
    np.testing.assert_allclose(got["w"], ref_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["V"], ref_V, rtol=1e-9, atol=1e-12)


def test_the_objective_never_increases_and_the_gradient_vanishes_at_convergence():
    X, y, _ = planted_fm(n_rows=80, n=8, k=2, noise=0.3, seed=3)
    Xd = X.toarray()
    fm = fmlib.FactorizationMachine(8, k=2, seed=0, init_std=0.3, dtype=tf.float64)
    lambda_w, lambda_v = 0.5, 1.0
    values = [objective(Xd, y, fm, lambda_w, lambda_v)]
    for _ in range(40):  # one sweep per call: ALS keeps no state between
        fmlib.fit(
            fm, X, y, solver="als", num_epochs=1, lambda_w=lambda_w, lambda_v=lambda_v
        )
        values.append(objective(Xd, y, fm, lambda_w, lambda_v))
    assert np.all(np.diff(values) <= 1e-9 * values[0])
    assert values[-1] < 0.2 * values[0]
    fmlib.fit(
        fm, X, y, solver="als", num_epochs=1500, lambda_w=lambda_w, lambda_v=lambda_v
    )
    p = fm.get_weights()
    r = y - fm_definition(Xd, p["w0"], p["w"], p["V"])
    grad_w0, grad_w, grad_V = 0.0, 2 * lambda_w * p["w"], 2 * lambda_v * p["V"]
    for x, e in zip(Xd, r):  # d/d theta of sum e^2 = -2 sum e dy_hat/d theta
        d_w0, d_w, d_V = fm_gradient(x, p["V"])
        grad_w0, grad_w, grad_V = (
            grad_w0 - 2 * e * d_w0,
            grad_w - 2 * e * d_w,
            grad_V - 2 * e * d_V,
        )
    scale = np.abs(2 * r @ np.abs(Xd)).max()
    assert abs(grad_w0) < 1e-6 * scale
    assert np.abs(grad_w).max() < 1e-6 * scale
    assert np.abs(grad_V).max() < 1e-6 * scale


def test_als_learns_a_planted_fm_with_validation_and_early_stopping():
    X, y, score = planted_fm(n_rows=3000, seed=4)
    fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
    history = fmlib.fit(
        fm,
        X[:2500],
        y[:2500],
        solver="als",
        num_epochs=100,
        lambda_w=0.1,
        lambda_v=0.1,
        validation_data=(X[2500:], y[2500:]),
        patience=3,
    )
    assert isinstance(history, pd.DataFrame)
    assert list(history.columns) == ["loss", "val_loss", "val_rmse"]
    best = history.attrs["best_epoch"]
    assert history["val_loss"].idxmin() == best
    assert fmlib.evaluate(fm, X[2500:], y[2500:])["loss"] == pytest.approx(
        history["val_loss"].min(), rel=1e-5
    )
    assert history["val_rmse"].min() < 0.15  # noise std 0.1; the targets' std is > 1
    assert np.std(y) > 1.0


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (
            {"task": "classification", "y": np.array([0, 1, 1, 0, 1, 0])},
            ValueError,
            r"`solver='als'` trains regression models",
        ),
        (
            {"solver": "newton"},
            ValueError,
            r"`solver` must be one of \('gradient', 'als', 'mcmc'\); got 'newton'",
        ),
        (
            {"lambda_w": -1},
            ValueError,
            r"`lambda_w` must be a finite number >= 0; got -1",
        ),
        (
            {"groups": [0, 1]},
            ValueError,
            r"`groups` must hold one group label per column \(4\)",
        ),
        (
            {"X": np.r_[np.ones((5, 4)), [[np.nan, 0, 0, 0]]]},
            ValueError,
            r"`X` must be finite",
        ),
    ],
)
def test_als_rejects_bad_input(kwargs, error, pattern):
    args = {"X": np.ones((6, 4)), "y": np.ones(6), "solver": "als"}
    args.update(kwargs)
    fm = fmlib.FactorizationMachine(4, k=2)
    with pytest.raises(error, match=pattern):
        fmlib.fit(fm, args.pop("X"), args.pop("y"), num_epochs=1, **args)
