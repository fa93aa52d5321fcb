"""fmlib.interop: scikit-learn estimators, libFM files and the command line.

References are independent of the code under test: fmlib's own solvers called directly
(one ``fit`` call, ``BayesianFM``), ``sklearn.datasets.load_svmlight_file``, hand-written
files, and scikit-learn's estimator checks.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_svmlight_file
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import estimator_checks_generator

import fmlib
from fmlib.interop import (
    FMClassifier,
    FMRegressor,
    LibFMFormatError,
    load_libfm,
    save_libfm,
)
from fmlib.interop.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sparse_data(n_rows=60, n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n, density=0.3, random_state=seed, format="csr")
    y = X @ rng.normal(size=n) + 1.0
    return X, y


# --- scikit-learn's estimator checks ------------------------------------------------------
# Every check, for the two solvers that need no TensorFlow training step (fast); the
# gradient solvers get the checks that concern training and prediction below. Not run:
# check_array_api_input (fmlib computes with NumPy and TensorFlow, not through the array
# API; scikit-learn would skip it anyway unless SCIPY_ARRAY_API=1).
NOT_RUN = {"check_array_api_input"}
CHECKED = [
    FMRegressor(k=2, solver="als", num_epochs=5),
    FMClassifier(k=2, solver="mcmc", num_epochs=8),
]
CHECKS = [
    (est, check)
    for base in CHECKED
    for est, check in estimator_checks_generator(base, mark="xfail")
    if check.func.__name__ not in NOT_RUN
]


@pytest.mark.parametrize(
    "estimator, check",
    CHECKS,
    ids=lambda p: (
        p.func.__name__
        if callable(p) and hasattr(p, "func")
        else f"{type(p).__name__}-{p.solver}"
    ),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


GRADIENT_CHECKS = [
    ec.check_fit_idempotent,
    ec.check_estimators_pickle,
    ec.check_estimator_sparse_matrix,
    ec.check_methods_subset_invariance,
    ec.check_fit2d_1sample,
    ec.check_n_features_in_after_fitting,
]


@pytest.mark.parametrize("check", GRADIENT_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_checks_for_a_gradient_solver(check):
    check(
        "FMClassifier",
        FMClassifier(
            k=2, solver="adam", num_epochs=3, lr=0.05, batch_size=32, random_state=0
        ),
    )


def test_gradient_solvers_learn_scikit_learns_check_problems():
    ec.check_regressors_train(
        "FMRegressor",
        FMRegressor(k=2, solver="adam", num_epochs=10, lr=0.05, batch_size=32),
    )
    ec.check_classifiers_train(
        "FMClassifier",
        FMClassifier(k=2, solver="sgd", num_epochs=10, lr=0.5, batch_size=32),
    )


# --- the estimators equal fmlib's solvers called directly ---------------------------------
def test_regressor_equals_one_fit_call_for_adam_and_als():
    X, y = sparse_data()
    gradient = {"batch_size": 16, "lr": 0.05}  # hyper-parameters ALS does not take
    for solver, dtype, extra in (
        ("adam", tf.float32, gradient),
        ("als", tf.float64, {}),
    ):
        est = FMRegressor(
            k=3,
            solver=solver,
            num_epochs=4,
            lambda_w=0.01,
            lambda_v=0.02,
            random_state=7,
            **extra,
        ).fit(X, y)
        model = fmlib.FactorizationMachine(12, 3, init_std=0.1, seed=7, dtype=dtype)
        if solver == "als":
            fmlib.fit(
                model, X, y, solver="als", num_epochs=4, lambda_w=0.01, lambda_v=0.02
            )
        else:
            fmlib.fit(
                model,
                X,
                y,
                optimizer="adam",
                num_epochs=4,
                lambda_w=0.01,
                lambda_v=0.02,
                seed=7,
                **extra,
            )
        np.testing.assert_allclose(
            est.predict(X), model.predict(X), rtol=1e-5, atol=1e-6
        )
        assert len(est.history_) == 4


def test_mcmc_estimators_equal_bayesian_fm():
    X, y = sparse_data()
    est = FMRegressor(k=2, solver="mcmc", num_epochs=10, burn_in=3, random_state=1).fit(
        X, y
    )
    bfm = fmlib.BayesianFM(2, num_sweeps=10, burn_in=3, init_std=0.1, seed=1).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), bfm.predict(X))
    labels = np.where(y > np.median(y), "yes", "no")
    clf = FMClassifier(k=2, solver="mcmc", num_epochs=10, random_state=1).fit(X, labels)
    bfc = fmlib.BayesianFM(
        2, num_sweeps=10, task="classification", init_std=0.1, seed=1
    ).fit(X, labels == "yes")
    p = bfc.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), np.c_[1 - p, p])
    np.testing.assert_array_equal(clf.predict(X), np.where(p > 0.5, "yes", "no"))


def test_classifier_labels_logits_and_probabilities():
    X, y = sparse_data()
    labels = np.where(y > np.median(y), "spam", "ham")  # classes_ sorted: ham, spam
    clf = FMClassifier(
        k=2, solver="adam", num_epochs=3, batch_size=16, lr=0.05, random_state=2
    ).fit(X, labels)
    model = fmlib.FactorizationMachine(12, 2, init_std=0.1, seed=2)
    fmlib.fit(
        model,
        X,
        labels == "spam",
        task="classification",
        num_epochs=3,
        batch_size=16,
        lr=0.05,
        seed=2,
    )
    logit = model.predict(X)
    assert clf.classes_.tolist() == ["ham", "spam"]
    np.testing.assert_allclose(clf.decision_function(X), logit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-logit)), rtol=1e-5
    )
    np.testing.assert_array_equal(clf.predict(X), np.where(logit > 0, "spam", "ham"))
    with pytest.raises(ValueError, match="Only binary classification"):
        clf.fit(X, np.arange(60) % 3)
    with pytest.raises(ValueError, match="`solver='als'` trains regression"):
        FMClassifier(solver="als").fit(X, labels)
    with pytest.raises(ValueError, match=r"`solver` must be one of .* got 'lbfgs'"):
        FMRegressor(solver="lbfgs").fit(X, y)


def test_sparse_updates_equal_one_sparse_fit_call():
    """updates='sparse' trains with fmlib.fit's row-sparse path in one call (the lazy
    optimizer keeps its state for the whole run)."""
    X, y = sparse_data()
    est = FMRegressor(
        k=3,
        solver="adam",
        num_epochs=3,
        batch_size=16,
        lr=0.05,
        lambda_v=1e-3,
        random_state=5,
        updates="sparse",
        regularization="present",
    ).fit(X, y)
    model = fmlib.FactorizationMachine(12, 3, init_std=0.1, seed=5)
    fmlib.fit(
        model,
        X,
        y,
        optimizer="adam",
        num_epochs=3,
        batch_size=16,
        lr=0.05,
        lambda_v=1e-3,
        seed=5,
        updates="sparse",
        regularization="present",
    )
    np.testing.assert_allclose(est.predict(X), model.predict(X), rtol=1e-6)
    labels = (y > np.median(y)).astype(int)
    clf = FMClassifier(
        k=2,
        solver="sgd",
        num_epochs=2,
        lr=0.1,
        updates="sparse",
        regularization="occurrence",
        random_state=0,
    ).fit(X, labels)
    assert clf.predict_proba(X).shape == (len(y), 2)
    with pytest.raises(
        ValueError, match=r"`updates` must be one of \('dense', 'sparse'\); got 'lazy'"
    ):
        FMRegressor(updates="lazy").fit(X, y)
    with pytest.raises(ValueError, match=r"`updates` is not used by solver='als'"):
        FMRegressor(solver="als", updates="sparse").fit(X, y)
    with pytest.raises(
        ValueError, match=r"regularization='present' needs updates='sparse'"
    ):
        FMRegressor(updates="dense", regularization="present").fit(X, y)


def test_pickle_clone_warm_start_and_dataframes():
    X, y = sparse_data()
    est = FMRegressor(k=2, solver="adam", num_epochs=2, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert (
        not hasattr(clone(est), "fm_") and clone(est).get_params() == est.get_params()
    )
    # ALS has no state but the weights: 3 sweeps, then 3 more, are 6 sweeps
    warm = FMRegressor(k=2, solver="als", num_epochs=3, random_state=0, warm_start=True)
    warm.fit(X, y).fit(X, y)
    six = FMRegressor(k=2, solver="als", num_epochs=6, random_state=0).fit(X, y)
    np.testing.assert_allclose(warm.predict(X), six.predict(X), rtol=1e-9)
    assert len(warm.history_) == 6
    frame = pd.DataFrame(X.toarray(), columns=[f"f{i}" for i in range(12)])
    fitted = FMRegressor(k=2, solver="als", num_epochs=2).fit(frame, y)
    assert fitted.feature_names_in_.tolist() == list(frame.columns)


# --- FeatureEncoder as a transformer ------------------------------------------------------
def ratings_frame():
    return pd.DataFrame(
        {
            "user": [1, 1, 2, 3, 3, 2],
            "item": ["a", "b", "a", "c", "b", "c"],
            "age": [20.0, 20.0, 35.0, 50.0, 50.0, 35.0],
            "rating": [5.0, 3.0, 4.0, 1.0, 2.0, 4.0],
        }
    )


def test_encoder_in_a_pipeline_equals_encoding_then_fitting():
    df = ratings_frame()
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    pipe = make_pipeline(
        enc, FMRegressor(k=2, solver="als", num_epochs=3, random_state=0)
    )
    pipe.fit(df, df["rating"])
    X = fmlib.FeatureEncoder(categorical=["user", "item"]).fit_transform(df)
    direct = FMRegressor(k=2, solver="als", num_epochs=3, random_state=0).fit(
        X, df["rating"]
    )
    np.testing.assert_array_equal(pipe.predict(df), direct.predict(X))
    assert clone(enc).get_params() == enc.get_params()
    assert enc.n_features_in_ == 4 and enc.feature_names_in_.tolist() == list(
        df.columns
    )
    enc.set_params(categorical=["item"])  # refitted with the new columns
    assert enc.fit(df).get_feature_names_out().tolist() == [
        "item=a",
        "item=b",
        "item=c",
    ]


def test_encoder_in_a_column_transformer():
    df = ratings_frame()
    ct = ColumnTransformer(
        [
            (
                "fm",
                fmlib.FeatureEncoder(categorical=["user", "item"]),
                ["user", "item"],
            ),
            ("num", "passthrough", ["age"]),
        ]
    )
    X = ct.fit_transform(df)
    expected = np.zeros((6, 7))  # users 1,2,3 | items a,b,c | age
    for row, (u, i) in enumerate(zip(df["user"], df["item"])):
        expected[row, [1, 2, 3].index(u)] = 1
        expected[row, 3 + "abc".index(i)] = 1
    expected[:, 6] = df["age"]
    np.testing.assert_array_equal(X.toarray() if sp.issparse(X) else X, expected)
    assert ct.get_feature_names_out()[:2].tolist() == ["fm__user=1", "fm__user=2"]


def test_grid_search_on_movielens_u1_picks_the_middle_regularisation(movielens):
    """Fit on u1.base, score on u1.test: no regularisation overfits, a huge one underfits."""
    train, test = movielens.split("u1")
    df = pd.concat([train, test], ignore_index=True)
    fold = PredefinedSplit(np.r_[np.full(len(train), -1), np.zeros(len(test), int)])
    pipe = make_pipeline(
        fmlib.FeatureEncoder(categorical=["user", "item"]),
        FMRegressor(solver="als", num_epochs=3, lambda_w=10.0, random_state=0),
    )
    grid = {"fmregressor__k": [2, 4], "fmregressor__lambda_v": [0.01, 10.0, 1e4]}
    search = GridSearchCV(
        pipe, grid, cv=fold, scoring="neg_root_mean_squared_error", refit=False
    ).fit(df[["user", "item"]], df["rating"])
    assert search.best_params_["fmregressor__lambda_v"] == 10.0
    baseline = np.sqrt(np.mean((test["rating"] - train["rating"].mean()) ** 2))
    assert -search.best_score_ < baseline - 0.1


# --- libFM files --------------------------------------------------------------------------
def test_file_round_trip_from_a_dataframe_and_a_hand_written_line(tmp_path):
    df = ratings_frame()
    enc = fmlib.FeatureEncoder(categorical=["user", "item"], implicit=("user", "item"))
    X = enc.fit_transform(df)
    path = save_libfm(tmp_path / "r.libfm", X, df["rating"])
    first = open(path).readline().split()
    assert first == [
        "5",
        "0:1",
        "3:1",
        "6:0.5",
        "7:0.5",
    ]  # user 1, item a, rated {a, b}
    X2, y2 = load_libfm(path, n_features=X.shape[1])
    assert (X2 != X).nnz == 0 and X2.has_sorted_indices
    np.testing.assert_array_equal(X2.indptr, X.indptr)
    np.testing.assert_array_equal(y2, df["rating"])
    X3, y3 = load_svmlight_file(str(path), n_features=X.shape[1], zero_based=True)
    assert (X3 != X2).nnz == 0 and np.array_equal(y3, y2)


def test_reads_one_based_libsvm_files_and_comments(tmp_path):
    path = tmp_path / "a.svm"
    path.write_text("1 1:0.5 3:2 # a comment\n-1 2:1\n")
    X, y = load_libfm(path, zero_based=False)
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 2], [0, 1, 0]])
    np.testing.assert_array_equal(y, [1, -1])


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 0:1\n2 3\n", r"line 2: expected index:value .* got '3'"),
        (
            "1 0:1\nfive 1:1\n",
            r"line 2: expected the target \(a number\) first; got 'five'",
        ),
        ("1 0:1\n\n", r"line 2: expected a target value .* got an empty line"),
        (
            "1 0:1 0:2\n",
            r"line 1: each index may appear once per line; repeated: \[0\]",
        ),
        ("1 -1:1\n", r"line 1: expected index:value with an integer index >= 0"),
        ("1 0:nan\n", r"line 1: expected index:value .* finite value; got '0:nan'"),
        ("1 9:1\n", r"line 1: index 9 is beyond n_features=5"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.libfm"
    path.write_text(text)
    with pytest.raises(LibFMFormatError, match=message):
        load_libfm(path, n_features=5)


# --- the command line ---------------------------------------------------------------------
def write_files(tmp_path, task="r"):
    X, y = sparse_data(80)
    if task == "c":
        y = (y > np.median(y)).astype(float)
    save_libfm(tmp_path / "train.libfm", X[:60], y[:60])
    save_libfm(tmp_path / "test.libfm", X[60:], y[60:])
    return X, y


def run_cli(*flags, cwd):
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TQDM_DISABLE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "fmlib", *flags],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_adam_in_process_equals_one_fit_call(tmp_path, capsys, monkeypatch):
    X, y = write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "-task",
                "r",
                "-train",
                "train.libfm",
                "-test",
                "test.libfm",
                "-iter",
                "3",
                "-method",
                "adam",
                "-learn_rate",
                "0.05",
                "-batch_size",
                "16",
                "-out",
                "p.txt",
                "-seed",
                "4",
            ]
        )
        == 0
    )
    model = fmlib.FactorizationMachine(12, 8, init_std=0.1, seed=4)
    fmlib.fit(
        model,
        X[:60],
        y[:60],
        num_epochs=3,
        batch_size=16,
        lr=0.05,
        seed=4,
        updates="dense",
    )  # the CLI's minibatch Adam takes dense steps
    np.testing.assert_allclose(np.loadtxt("p.txt"), model.predict(X[60:]), rtol=1e-5)
    assert capsys.readouterr().out.count("#Iter=") == 3


def test_cli_malformed_file_is_one_line_with_exit_code_1(tmp_path):
    write_files(tmp_path)
    (tmp_path / "bad.libfm").write_text("1 0:1\n2 0:1 x\n")
    bad_file = run_cli("-task", "r", "-train", "bad.libfm", "-iter", "2", cwd=tmp_path)
    assert bad_file.returncode == 1
    assert bad_file.stderr.strip().splitlines()[-1] == (
        "python -m fmlib: error: bad.libfm, line 2: expected index:value with an integer "
        "index >= 0 and a finite value; got 'x'."
    )
