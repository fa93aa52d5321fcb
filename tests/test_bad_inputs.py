"""Bad and edge inputs at every public entry point: a clear error naming the argument, or a hang bound.

Each case asserts the exception type and that the message names the argument (``match``), so a
raw TensorFlow, numpy or pandas trace, or a silently wrong result, fails the test. Cases are
grouped by class of defect (issue #20); each class has several members.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

import fmlib

X, Y, _ = fmlib.rendle_figure1()


def fm(**kwargs):
    return fmlib.FactorizationMachine(16, k=2, **({"seed": 0} | kwargs))


# ------------------------------------------------------------ scalar arguments

@pytest.mark.parametrize("kwargs, error, match", [
    ({"seed": "x"}, TypeError, "`seed`"),
    ({"seed": -1}, ValueError, "`seed`"),
    ({"seed": 1.5}, TypeError, "`seed`"),
    ({"dtype": "floaty"}, TypeError, "`dtype`"),
    ({"dtype": tf.int32}, ValueError, "`dtype`"),
    ({"dtype": object()}, TypeError, "`dtype`"),
    ({"init_std": "a"}, TypeError, "`init_std`"),
    ({"init_std": float("nan")}, ValueError, "`init_std`"),
    ({"init_std": -1}, ValueError, "`init_std`"),
    ({"pairwise": ["fast"]}, ValueError, "`pairwise`"),
])
def test_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fm(**kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"shuffle": "no"}, TypeError, "`shuffle`"),
    ({"shuffle": 1}, TypeError, "`shuffle`"),
    ({"seed": "x"}, TypeError, "`seed`"),
    ({"seed": -3}, ValueError, "`seed`"),
    ({"lr": "0.1", "optimizer": "sgd"}, TypeError, "`lr`"),
    ({"lr": float("nan")}, ValueError, "`lr`"),
    ({"lambda_w": -1.0}, ValueError, "`lambda_w`"),
    ({"validation_data": (X[:0], Y[:0])}, ValueError, r"`validation_data\[0\]`.*0"),
])
def test_fit_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fmlib.fit(fm(), X, Y, num_epochs=1, **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"lr": float("nan")}, ValueError, "`lr`"),
    ({"lr": -0.1}, ValueError, "`lr`"),
    ({"lr": 0}, ValueError, "`lr`"),
    ({"lr": "a"}, TypeError, "`lr`"),
    ({"y_true": Y * np.nan}, ValueError, "`y_true`"),
    ({"y_true": np.r_[Y[:-1], np.inf]}, ValueError, "`y_true`"),
    ({"y_true": Y[:3]}, ValueError, "`y_true`"),
    ({"x": X * np.nan}, ValueError, "`x`"),
])
def test_train_step_checks_like_fit(kwargs, error, match):
    args = {"x": X, "y_true": Y, "lr": 0.01, **kwargs}
    with pytest.raises(error, match=match):
        fmlib.train_step(fm(), **args)


def test_train_step_refuses_other_models():
    with pytest.raises(TypeError, match="`mod`"):
        fmlib.train_step(object(), X, Y, lr=0.1)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"w0": np.nan}, ValueError, "`w0`"),
    ({"w": np.full(16, np.inf)}, ValueError, "`w`"),
    ({"V": np.zeros((16, 3))}, ValueError, r"`V`.*\(16, 2\)"),
    ({"w": np.zeros(15)}, ValueError, "`w`"),
    ({"w0": "a"}, TypeError, "`w0`"),
    ({"V": [["a", "b"]] * 16}, TypeError, "`V`"),
    ({"w": np.full(16, 1e39)}, ValueError, "`w`.*float32"),
])
def test_set_weights_is_checked_and_all_or_nothing(kwargs, error, match):
    model = fm()
    before = model.get_weights()
    with pytest.raises(error, match=match):   # a good w0 next to a bad w or V is not assigned
        model.set_weights(**({"w0": 1.0} | kwargs))
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("call, error, match", [
    (lambda: fmlib.l2_penalty(fm(), lambda_w=-1.0), ValueError, "`lambda_w`"),
    (lambda: fmlib.l2_penalty(fm(), lambda_v=float("nan")), ValueError, "`lambda_v`"),
    (lambda: fmlib.l2_penalty(fm(), lambda_v="a"), TypeError, "`lambda_v`"),
    (lambda: fmlib.logistic_loss(np.array([0., 2.]), np.zeros(2)), ValueError, "`y_true`"),
    (lambda: fmlib.logistic_loss(np.array([-1., 1.]), np.zeros(2)), ValueError, "`y_true`"),
    (lambda: fmlib.logistic_loss(np.array([np.nan, 1.]), np.zeros(2)), ValueError, "`y_true`"),
])
def test_losses(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------ the shared input gate

@pytest.mark.parametrize("make", [
    lambda: X * 1e39,                                   # float64, finite, beyond float32
    lambda: sp.csr_matrix(X * 1e39),
    lambda: tf.constant(X * 1e39),
    lambda: tf.sparse.from_dense(tf.constant(X * 1e39)),
])
def test_float64_beyond_float32_range_is_an_error(make):
    with pytest.raises(ValueError, match="`X`.*float32"):
        fm()(make())
    with pytest.raises(ValueError, match="`X`.*float32"):
        fm().predict(make())
    fm(dtype=tf.float64)(make())   # fits in float64: accepted


def test_targets_beyond_float32_range_are_an_error():
    with pytest.raises(ValueError, match="`y`.*float32"):
        fmlib.fit(fm(), X, Y * 1e39, num_epochs=1)


@pytest.mark.parametrize("fmt", ["dok", "lil", "csc", "coo", "bsr", "dia"])
def test_every_scipy_format_is_accepted(fmt):
    model = fm(init_std=0.3)
    expected = model(X).numpy()
    Xs = sp.csr_matrix(X).asformat(fmt)
    np.testing.assert_allclose(model(Xs).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(Xs), expected, rtol=1e-5)
    np.testing.assert_allclose(fmlib.to_sparse_tensor(Xs).values.numpy().sum(), X.sum(), rtol=1e-6)


def _duplicated(rows):
    """X's rows as a SparseTensor in which every entry is split into two halves (same index twice)."""
    coo = sp.coo_matrix(X[rows])
    idx = np.stack([coo.row, coo.col], 1)
    return tf.SparseTensor(np.repeat(idx, 2, axis=0), np.repeat(coo.data / 2, 2), coo.shape)


def test_duplicate_sparse_indices_are_summed_in_every_path():
    model = fm(init_std=0.5)
    rows = [0, 3, 6]
    expected = model(X[rows]).numpy()
    st = _duplicated(rows)
    np.testing.assert_allclose(model(st).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(st), expected, rtol=1e-5)
    np.testing.assert_allclose(fmlib.pairwise_fast(st, model.V).numpy(),
                               fmlib.pairwise_fast(X[rows], model.V).numpy(), rtol=1e-5)
    np.testing.assert_allclose(fmlib.evaluate(model, st, Y[rows])["loss"],
                               fmlib.evaluate(model, X[rows], Y[rows])["loss"], rtol=1e-5)


@pytest.mark.parametrize("index", [[1, 16], [1, -1], [2, 0], [-1, 3]])
def test_sparse_tensor_indices_outside_its_shape(index):
    st = tf.SparseTensor([[0, 0], index], [1.0, 1.0], [2, 16])
    with pytest.raises(ValueError, match="`X`.*outside"):
        fm()(st)
    with pytest.raises(ValueError, match="`X`.*outside"):
        fm().predict(st)
    with pytest.raises(ValueError, match="`X`.*outside"):
        fmlib.to_sparse_tensor(st)


@pytest.mark.parametrize("dtype, error", [(tf.int32, ValueError), (tf.int64, ValueError),
                                          ("floaty", TypeError), (tf.bool, ValueError)])
def test_to_sparse_tensor_never_truncates(dtype, error):
    with pytest.raises(error, match="`dtype`"):
        fmlib.to_sparse_tensor(X * 0.5, dtype=dtype)


@pytest.mark.parametrize("call", [
    lambda m: fmlib.evaluate(m, X[:0], Y[:0]),
    lambda m: fmlib.evaluate(m, sp.csr_matrix((0, 16)), []),
    lambda m: fmlib.fit(m, X, Y, num_epochs=1, validation_data=(sp.csr_matrix((0, 16)), [])),
    lambda m: fmlib.fit(m, X[:0], Y[:0], num_epochs=1),
])
def test_empty_evaluation_sets_are_errors_not_nan(call):
    with pytest.raises(ValueError, match="`(X|validation_data\\[0\\])`.*(0|no rows)"):
        call(fm())


# ------------------------------------------------------------ divergence is never returned silently

@pytest.mark.parametrize("optimizer, lr, scale", [("sgd", 1e12, 100), ("sgd", 1e3, 100),
                                                  ("adam", 1e30, 1), ("adagrad", 1e30, 1)])
def test_fit_never_returns_an_exploded_model(optimizer, lr, scale):
    with pytest.raises(fmlib.TrainingDivergedError, match="lr="):
        fmlib.fit(fm(), X * scale, Y, optimizer=optimizer, lr=lr, num_epochs=2, batch_size=3)


def test_an_overflowing_validation_loss_is_divergence():
    model = fm(init_std=0.0)
    model.set_weights(w=np.ones(16))
    with pytest.raises(fmlib.TrainingDivergedError, match="validation loss"):
        fmlib.fit(model, X, Y, optimizer="sgd", lr=1e-9, num_epochs=1,
                  validation_data=(X * 1e20, Y))


def test_train_step_reports_divergence():
    model = fm()
    with pytest.raises(fmlib.TrainingDivergedError, match="lr="):
        for _ in range(5):
            fmlib.train_step(model, X * 100, Y, lr=1e12)


def test_an_optimizer_instance_is_not_shared_between_models():
    import keras
    opt = keras.optimizers.Adam(0.01)
    fmlib.fit(fm(), X, Y, optimizer=opt, num_epochs=1)
    with pytest.raises(ValueError, match="`optimizer`.*another model"):
        fmlib.fit(fm(), X, Y, optimizer=opt, num_epochs=1)
