"""The solver registry: one table of hyper-parameters for fit, the estimators and BayesianFM.

For every solver, each hyper-parameter it does not use is refused when set (naming it), and
each constraint it declares is enforced with a ValueError or TypeError naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.base

import fmlib
from fmlib.solvers.registry import SOLVERS, resolve

X, Y, _ = fmlib.rendle_figure1()

# a value for every hyper-parameter any solver declares: valid, and not its default
VALID = {
    "num_epochs": 2,
    "batch_size": 3,
    "optimizer": "sgd",
    "lr": 0.05,
    "lambda_w": 0.1,
    "lambda_v": 0.1,
    "updates": "sparse",
    "regularization": "present",
    "shuffle": False,
    "seed": 1,
    "groups": [0] * 8 + [1] * 8,
    "burn_in": 1,
    "init_std": 0.2,
}
# values that break each constraint: (value, exception)
INVALID = {
    "num_epochs": [(0, ValueError), (1.5, TypeError), ("3", TypeError)],
    "batch_size": [(0, ValueError), (-1, ValueError), (2.0, TypeError)],
    "optimizer": [("bogus", ValueError), (3, TypeError)],
    "lr": [
        (-1, ValueError),
        (0, ValueError),
        (float("nan"), ValueError),
        ("x", TypeError),
    ],
    "lambda_w": [(-1, ValueError), ("x", TypeError)],
    "lambda_v": [(-0.5, ValueError), (float("inf"), ValueError)],
    "updates": [("bogus", ValueError)],
    "regularization": [("bogus", ValueError)],
    "seed": [(-1, ValueError), ("x", TypeError)],
    "burn_in": [(-3, ValueError), (0.5, TypeError)],
    "init_std": [(-0.1, ValueError)],
}


def test_every_declared_parameter_has_test_values():
    declared = {name for s in SOLVERS.values() for name in s.params}
    assert declared <= set(VALID)
    assert {name for name in declared if name not in ("shuffle", "groups")} <= set(
        INVALID
    )


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_unused_parameter_is_refused(solver):
    for name in VALID:
        if name in SOLVERS[solver].params:
            continue
        with pytest.raises(
            ValueError, match=f"`{name}` is not used by solver='{solver}'"
        ):
            resolve(solver, {name: VALID[name]})


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_constraints_name_the_argument(solver):
    for name, cases in INVALID.items():
        if name not in SOLVERS[solver].params:
            continue
        for value, error in cases:
            with pytest.raises(error, match=f"`{name}`"):
                resolve(solver, {name: value})


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_defaults_fill_what_is_not_set(solver):
    values = resolve(solver, {})
    assert values == {name: p.default for name, p in SOLVERS[solver].params.items()}
    # a value set is checked and kept
    name = "num_epochs"
    assert resolve(solver, {name: 3})[name] == 3


def test_unknown_solver_and_wrong_task():
    with pytest.raises(ValueError, match="`solver`"):
        resolve("newton", {})
    with pytest.raises(ValueError, match="trains regression"):
        resolve("als", {}, task="classification")


# ----------------------------------------------------------------- through fit
@pytest.mark.parametrize(
    "name",
    ["lr", "optimizer", "batch_size", "seed", "shuffle", "updates", "regularization"],
)
def test_fit_als_refuses_gradient_parameters(name):
    fm = fmlib.FactorizationMachine(16, k=2, seed=0, dtype="float64")
    with pytest.raises(ValueError, match=f"`{name}` is not used by solver='als'"):
        fmlib.fit(fm, X, Y, solver="als", **{name: VALID[name]})


def test_fit_gradient_refuses_groups():
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    with pytest.raises(ValueError, match="`groups` is not used by solver='gradient'"):
        fmlib.fit(fm, X, Y, groups="nonsense")


def test_fit_points_mcmc_to_bayesian_fm():
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    with pytest.raises(ValueError, match="BayesianFM"):
        fmlib.fit(fm, X, Y, solver="mcmc")


# ----------------------------------------------------------------- through the estimators
@pytest.mark.parametrize(
    "solver, kwargs, name",
    [
        ("mcmc", {"updates": "bogus"}, "updates"),
        ("mcmc", {"lr": -5}, "lr"),
        ("mcmc", {"batch_size": -1}, "batch_size"),
        ("mcmc", {"lambda_w": -1}, "lambda_w"),
        ("als", {"burn_in": -3}, "burn_in"),
        ("als", {"lr": 0.5}, "lr"),
        ("adam", {"burn_in": 5}, "burn_in"),
        ("sgd", {"groups": [0] * 16}, "groups"),
    ],
)
def test_estimator_refuses_parameters_its_solver_does_not_use(solver, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` is not used by solver="):
        fmlib.FMRegressor(k=2, solver=solver, **kwargs).fit(X, Y)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"solver": "adam", "lr": -1}, ValueError, "lr"),
        ({"solver": "sgd", "lr": 0}, ValueError, "lr"),
        ({"solver": "adam", "batch_size": 0}, ValueError, "batch_size"),
        ({"solver": "mcmc", "burn_in": -3}, ValueError, "burn_in"),
        ({"solver": "als", "lambda_v": -1}, ValueError, "lambda_v"),
        ({"solver": "adam", "init_std": -1}, ValueError, "init_std"),
    ],
)
def test_estimator_checks_values(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}`"):
        fmlib.FMRegressor(k=2, **kwargs).fit(X, Y)


def test_estimator_trains_in_one_call_as_epochs_would():
    """One fit call equals the epoch-by-epoch reference: the same permutations from
    default_rng(seed), one Adam carrying its state, no shuffling inside the calls."""
    import keras

    Xs = sp.csr_matrix(np.tile(X, (5, 1)))
    ys = np.tile(Y, 5) + np.repeat(np.arange(5) * 0.1, 7)
    est = fmlib.FMRegressor(
        k=2,
        solver="adam",
        num_epochs=4,
        batch_size=4,
        lr=0.02,
        updates="dense",
        random_state=3,
    ).fit(Xs, ys)
    ref = fmlib.FactorizationMachine(16, 2, init_std=0.1, seed=3)
    opt, rng = keras.optimizers.Adam(learning_rate=0.02), np.random.default_rng(3)
    for _ in range(4):
        order = rng.permutation(Xs.shape[0])
        fmlib.fit(
            ref,
            Xs[order],
            ys[order],
            num_epochs=1,
            batch_size=4,
            optimizer=opt,
            shuffle=False,
        )
    np.testing.assert_allclose(
        est.fm_.get_weights()["V"], ref.get_weights()["V"], rtol=1e-5, atol=1e-7
    )


def test_estimator_als_equals_fit():
    est = fmlib.FMRegressor(
        k=2, solver="als", num_epochs=6, lambda_v=0.5, random_state=0
    ).fit(X, Y)
    fm = fmlib.FactorizationMachine(16, 2, init_std=0.1, seed=0, dtype="float64")
    fmlib.fit(fm, X, Y, solver="als", num_epochs=6, lambda_v=0.5)
    np.testing.assert_allclose(est.predict(X), fm.predict(X), rtol=1e-12)
    assert len(est.history_) == 6


# ----------------------------------------------------------------- BayesianFM's contract
def test_bayesian_fm_clone_get_set_params():
    bfm = fmlib.BayesianFM(k=3, num_sweeps=20, burn_in=5, seed=7)
    params = bfm.get_params()
    assert params == {
        "k": 3,
        "num_sweeps": 20,
        "burn_in": 5,
        "task": "regression",
        "groups": None,
        "init_std": 0.1,
        "seed": 7,
        "keep_samples": True,
    }
    clone = sklearn.base.clone(bfm)
    assert clone is not bfm and clone.get_params() == params
    assert clone.set_params(k=4).k == 4
    with pytest.raises(ValueError, match="`alpha` is not a parameter of BayesianFM"):
        bfm.set_params(alpha=1)
