import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from reference import planted_fm

import fmlib


def test_figure1_trains_to_low_loss_with_train_step():
    X, y, _ = fmlib.rendle_figure1()
    fm = fmlib.FactorizationMachine(m=16, k=2, seed=0, init_std=0.1)
    first = float(
        fmlib.train_step(mod=fm, x=X, y_true=y, lr=0.002, loss_f=fmlib.l2_loss)
    )
    for _ in range(1000):
        loss = fmlib.train_step(mod=fm, x=X, y_true=y, lr=0.002, loss_f=fmlib.l2_loss)
    assert first > 10
    assert float(loss) < 1e-3
    np.testing.assert_allclose(fm(X).numpy(), y, atol=0.05)


def test_train_step_is_one_gradient_descent_step():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(4, 3)), rng.normal(size=4)
    fm = fmlib.FactorizationMachine(3, k=2, seed=1, init_std=0.3, dtype=tf.float64)
    before = fm.get_weights()
    loss = fmlib.train_step(mod=fm, x=X, y_true=y, lr=0.1)
    # reference: numpy gradient of the mean squared error, using eq. (4)
    Xv = X @ before["V"]
    y_hat = (
        before["w0"]
        + X @ before["w"]
        + 0.5 * ((Xv**2) - (X**2) @ (before["V"] ** 2)).sum(1)
    )
    r = 2 * (y_hat - y) / len(y)
    g_V = (
        np.einsum("b,bi,bf->if", r, X, Xv)
        - before["V"] * ((r[:, None] * X**2).sum(0))[:, None]
    )
    after = fm.get_weights()
    assert float(loss) == pytest.approx(np.mean((y_hat - y) ** 2))
    np.testing.assert_allclose(after["w0"], before["w0"] - 0.1 * r.sum())
    np.testing.assert_allclose(after["w"], before["w"] - 0.1 * (r @ X))
    np.testing.assert_allclose(after["V"], before["V"] - 0.1 * g_V, rtol=1e-10)


def test_fit_recovers_a_planted_fm():
    X, y, score = planted_fm()
    train, test = slice(0, 5000), slice(5000, None)
    fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
    history = fmlib.fit(
        fm,
        X[train],
        y[train],
        num_epochs=60,
        batch_size=128,
        lr=0.02,
        validation_data=(X[test], y[test]),
        seed=0,
    )
    assert isinstance(history, pd.DataFrame)
    assert list(history.columns) == ["loss", "val_loss", "val_rmse"]
    assert history.index.tolist() == list(range(1, 61))
    rmse = np.sqrt(np.mean((fm.predict(X[test]) - y[test]) ** 2))
    assert rmse == pytest.approx(history["val_rmse"].iloc[-1], rel=1e-4)
    assert rmse < 0.15  # noise std is 0.1; predicting the mean would give ~1.5
    assert np.std(y[test]) > 1.0
    # the best linear model (least squares on w0 + w) cannot get there: the interactions matter
    w, *_ = np.linalg.lstsq(
        np.c_[np.ones(5000), X[train].toarray()], y[train], rcond=None
    )
    lin_rmse = np.sqrt(
        np.mean((np.c_[np.ones(1000), X[test].toarray()] @ w - y[test]) ** 2)
    )
    assert lin_rmse > 3 * rmse


def test_sparse_and_dense_training_agree():
    X, y, _ = planted_fm(n_rows=600, seed=1)
    results = []
    for data in (X, X.toarray(), tf.sparse.from_dense(X.toarray())):
        fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
        history = fmlib.fit(
            fm, data, y, num_epochs=3, batch_size=64, seed=3, updates="dense"
        )
        results.append((history["loss"].to_numpy(), fm.V.numpy()))
    for loss, V in results[1:]:
        np.testing.assert_allclose(loss, results[0][0], rtol=1e-4)
        np.testing.assert_allclose(V, results[0][1], rtol=1e-3, atol=1e-5)


def test_same_seed_same_history():
    X, y, _ = planted_fm(n_rows=500, seed=2)
    runs = []
    for _ in range(2):
        fm = fmlib.FactorizationMachine(40, k=3, seed=7)
        runs.append(fmlib.fit(fm, X, y, num_epochs=3, seed=11)["loss"].to_numpy())
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "optimizer, lr", [("sgd", 0.5), ("adam", 0.01), ("adagrad", 0.1)]
)
def test_every_optimizer_reduces_the_loss(optimizer, lr):
    X, y, _ = planted_fm(n_rows=2000, seed=4)
    fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
    history = fmlib.fit(fm, X, y, num_epochs=8, optimizer=optimizer, lr=lr, seed=0)
    assert history["loss"].iloc[-1] < 0.5 * history["loss"].iloc[0]


def test_regularisation_shrinks_the_parameters():
    X, y, _ = planted_fm(n_rows=1000, seed=5)
    norms = []
    for lam in (0.0, 1.0):
        fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
        fmlib.fit(fm, X, y, num_epochs=5, lambda_w=lam, lambda_v=lam, seed=0)
        norms.append((np.linalg.norm(fm.w.numpy()), np.linalg.norm(fm.V.numpy())))
    assert norms[1][0] < 0.7 * norms[0][0] and norms[1][1] < 0.7 * norms[0][1]


def test_classification_learns_and_accepts_both_label_codings():
    X, y01, score = planted_fm(n_rows=5000, seed=6, classification=True)
    histories = []
    for y in (y01, 2 * y01 - 1):
        fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
        histories.append(
            fmlib.fit(
                fm,
                X[:4000],
                y[:4000],
                task="classification",
                num_epochs=15,
                validation_data=(X[4000:], y[4000:]),
                seed=0,
            )
        )
    pd.testing.assert_frame_equal(histories[0], histories[1])
    assert list(histories[0].columns) == ["loss", "val_loss", "val_accuracy"]
    base_rate = max(y01[4000:].mean(), 1 - y01[4000:].mean())
    assert histories[0]["val_accuracy"].iloc[-1] > base_rate + 0.1
    # the Bayes-optimal accuracy from the true scores bounds what can be learned
    bayes = np.mean((score[4000:] > 0) == (y01[4000:] > 0.5))
    assert histories[0]["val_accuracy"].iloc[-1] > bayes - 0.06


def test_early_stopping_restores_the_best_epoch():
    X, y, _ = planted_fm(n_rows=400, seed=8, noise=1.0)
    fm = fmlib.FactorizationMachine(40, k=8, seed=0, init_std=0.3)
    history = fmlib.fit(
        fm,
        X[:200],
        y[:200],
        num_epochs=200,
        batch_size=16,
        lr=0.05,
        validation_data=(X[200:], y[200:]),
        patience=3,
        seed=0,
    )
    best = history.attrs["best_epoch"]
    assert len(history) == best + 3 < 200
    assert history["val_loss"].idxmin() == best
    final = fmlib.evaluate(fm, X[200:], y[200:])
    assert final["loss"] == pytest.approx(history["val_loss"].min(), rel=1e-5)
    seconds = history.attrs["epoch_seconds"]  # one timing per epoch that ran
    assert len(seconds) == len(history) and all(s > 0 for s in seconds)


def test_divergence_is_caught_with_advice():
    X, y, _ = fmlib.rendle_figure1()
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    with pytest.raises(
        fmlib.TrainingDivergedError,
        match=r"diverged in epoch \d+.*smaller learning rate",
    ):
        fmlib.fit(fm, X, y, optimizer="sgd", lr=1.0, num_epochs=50, batch_size=7)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"y": np.ones(5)}, ValueError, r"`y` has 5 rows, but X has 6 rows"),
        (
            {"y": np.ones((6, 2))},
            ValueError,
            r"`y` must have shape \(N,\) or \(N, 1\); got shape \(6, 2\)",
        ),
        (
            {"y": np.r_[np.ones(5), np.nan]},
            ValueError,
            r"`y` must be finite; it contains 1 NaN",
        ),
        (
            {"X": np.ones((6, 3))},
            ValueError,
            r"`X` has 3 feature columns, but the model expects n_features=4",
        ),
        (
            {"X": np.r_[np.ones((5, 4)), [[np.inf, 0, 0, 0]]]},
            ValueError,
            r"`X` must be finite",
        ),
        ({"task": "ranking"}, ValueError, r"`task` must be one of .*got 'ranking'"),
        (
            {"task": "classification", "y": np.array([0, 1, 2, 0, 1, 0])},
            ValueError,
            r"labels in \{0, 1\} or \{-1, \+1\}; got values \[0.0, 1.0, 2.0\]",
        ),
        ({"num_epochs": 0}, ValueError, r"`num_epochs` must be >= 1; got 0"),
        ({"batch_size": -1}, ValueError, r"`batch_size` must be >= 1; got -1"),
        (
            {"lambda_v": -0.1},
            ValueError,
            r"`lambda_v` must be a finite number >= 0; got -0.1",
        ),
        (
            {"optimizer": "rmsprop"},
            ValueError,
            r"`optimizer` must be one of \['adagrad', 'adam', 'sgd'\]",
        ),
        (
            {"patience": 2},
            ValueError,
            r"`patience` \(early stopping\) needs `validation_data`",
        ),
        (
            {"validation_data": (np.ones((2, 4)), np.ones(3))},
            ValueError,
            r"`validation_data\[1\]` has 3 rows, but X has 2 rows",
        ),
    ],
)
def test_fit_rejects_bad_input(kwargs, error, pattern):
    args = {"X": np.ones((6, 4)), "y": np.ones(6)}
    args.update(kwargs)
    fm = fmlib.FactorizationMachine(4, k=2)
    with pytest.raises(error, match=pattern):
        fmlib.fit(
            fm,
            args.pop("X"),
            args.pop("y"),
            num_epochs=args.pop("num_epochs", 1),
            **args,
        )


def _hand_model(task=None) -> fmlib.FactorizationMachine:
    """w0 = 0.5, w = (1, -1), v_1 = (1, 0), v_2 = (2, 0): ŷ(x) = 0.5 + x1 - x2 + 2 x1 x2."""
    fm = fmlib.FactorizationMachine(2, k=2, dtype=tf.float64, task=task)
    fm.set_weights(w0=0.5, w=[1.0, -1.0], V=[[1.0, 0.0], [2.0, 0.0]])
    return fm


def test_evaluate_follows_the_task_of_the_model():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # ŷ = 1.5, -0.5, 2.5
    y = np.array([1.0, 0.0, 0.0])
    classifier = _hand_model("classification")
    logistic = np.mean(np.log1p(np.exp([-1.5, -0.5, 2.5])))  # log(1 + exp(-(2y-1) ŷ))
    got = fmlib.evaluate(classifier, X, y)  # task not repeated
    assert got == pytest.approx({"loss": logistic, "accuracy": 2 / 3})
    assert fmlib.evaluate(classifier, X, y, task="classification") == got
    with pytest.raises(
        ValueError,
        match=r"`task`='regression' conflicts with the model's task "
        r"'classification'",
    ):
        fmlib.evaluate(classifier, X, y, task="regression")
    mse = np.mean((np.array([1.5, -0.5, 2.5]) - y) ** 2)
    for untrained in (
        _hand_model(None),
        _hand_model("regression"),
    ):  # None: regression, as before
        assert fmlib.evaluate(untrained, X, y) == pytest.approx(
            {"loss": mse, "rmse": np.sqrt(mse)}
        )


def test_fit_sets_the_task_and_refuses_to_change_it():
    X, y, _ = planted_fm(n_rows=64, seed=3, classification=True)
    fm = fmlib.FactorizationMachine(40, k=2, seed=0)
    assert fm.task is None
    fmlib.fit(fm, X, y, task="classification", num_epochs=1)
    assert fm.task == "classification" and "task='classification'" in repr(fm)
    fmlib.fit(fm, X, y, num_epochs=1)  # task follows the model
    assert fm.task == "classification"
    with pytest.raises(ValueError, match=r"`task`='regression' conflicts"):
        fmlib.fit(fm, X, y, task="regression", num_epochs=1)
    regressor = fmlib.FactorizationMachine(40, k=2, seed=0)
    fmlib.fit(regressor, X, y, num_epochs=1)
    assert regressor.task == "regression"
    with pytest.raises(
        AttributeError, match=r"predict_proba is for task='classification'"
    ):
        regressor.predict_proba(X)
    als = fmlib.FactorizationMachine(40, k=2, seed=0)
    fmlib.fit(als, X, y, solver="als", num_epochs=1)
    assert als.task == "regression"
    bad = fmlib.FactorizationMachine(40, k=2, seed=0)
    with pytest.raises(ValueError, match=r"`optimizer` must be one of"):
        fmlib.fit(bad, X, y, optimizer="rmsprop", task="classification")
    assert bad.task is None  # failed arguments: no task yet


def test_predict_proba_of_a_classifier_is_the_sigmoid_of_the_logits():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        _hand_model("classification").predict_proba(X),
        1 / (1 + np.exp(-np.array([1.5, -0.5, 2.5]))),
        rtol=1e-12,
    )


@pytest.mark.parametrize("task", ["ranking", 1, "Regression"])
def test_a_bad_task_is_named(task):
    with pytest.raises(
        ValueError,
        match=r"`task` must be one of \('regression', 'classification', None\)",
    ):
        fmlib.FactorizationMachine(2, task=task)


class _Warnings(list):
    """TensorFlow's Python log (where retracing warnings go), collected."""

    def __enter__(self):
        import logging

        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.append(record.getMessage())
        tf.get_logger().addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        tf.get_logger().removeHandler(self.handler)


def test_repeated_fits_trace_the_step_once():
    X, y, _ = planted_fm(n_rows=24, n=6, seed=4)  # X is scipy.sparse
    fm = fmlib.FactorizationMachine(6, k=2, seed=0)
    with _Warnings() as logged:
        for i in range(
            6
        ):  # one batch per epoch: every call would be a trace without the cache
            fmlib.fit(
                fm,
                X,
                y,
                num_epochs=1,
                batch_size=24 - i,
                lr=0.01 * (i + 1),
                lambda_w=0.1 * i,
                lambda_v=0.01 * i,
                updates="dense",
            )
        for i in range(6):  # new models: one trace each, not counted as retracing
            fmlib.fit(
                fmlib.FactorizationMachine(6, k=2, seed=i),
                X,
                y,
                num_epochs=1,
                batch_size=24,
                updates="dense",
            )
    assert [m for m in logged if "retracing" in m] == []
    steps = [entry[0] for entry in fm._compiled_steps.values()]
    assert [s.experimental_get_tracing_count() for s in steps] == [1]
    fmlib.fit(fm, X.toarray(), y, num_epochs=1)  # dense input: its own step
    assert len(fm._compiled_steps) == 2


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_a_reused_named_optimizer_starts_fresh_every_fit(optimizer):
    X, y, _ = planted_fm(n_rows=64, n=6, seed=5)
    fm = fmlib.FactorizationMachine(6, k=2, seed=0, dtype=tf.float64)
    start = fm.get_weights()
    runs = []
    for lr in (0.05, 0.05, 0.02):
        fm.set_weights(**start)
        fmlib.fit(
            fm,
            X,
            y,
            num_epochs=3,
            batch_size=16,
            optimizer=optimizer,
            lr=lr,
            shuffle=False,
        )
        runs.append(fm.get_weights()["V"])
    fresh = fmlib.FactorizationMachine(6, k=2, seed=0, dtype=tf.float64)
    fmlib.fit(
        fresh,
        X,
        y,
        num_epochs=3,
        batch_size=16,
        optimizer=optimizer,
        lr=0.02,
        shuffle=False,
    )
    np.testing.assert_array_equal(runs[0], runs[1])  # no moments carried over
    np.testing.assert_allclose(
        runs[2], fresh.get_weights()["V"], rtol=1e-12
    )  # new lr used
    assert not np.allclose(runs[1], runs[2])
