import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_gradient, fm_loop

import fmlib


def random_model(n=12, k=4, seed=0, dtype=tf.float64):
    rng = np.random.default_rng(seed)
    fm = fmlib.FactorizationMachine(n, k=k, seed=seed, init_std=0.5, dtype=dtype)
    fm.set_weights(w0=rng.normal(), w=rng.normal(size=n))
    return fm


def test_prediction_equals_equation_1_dense_and_sparse():
    fm = random_model()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 12)) * (rng.random((7, 12)) < 0.4)
    p = fm.get_weights()
    expected = fm_loop(X, p["w0"], p["w"], p["V"])
    np.testing.assert_allclose(fm(X).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(fm(sp.csr_matrix(X)).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(
        fm(tf.sparse.from_dense(X)).numpy(), expected, rtol=1e-10
    )
    fm.pairwise = "naive"
    np.testing.assert_allclose(fm(X).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(fm(sp.csr_matrix(X)).numpy(), expected, rtol=1e-10)


def test_predict_in_batches_equals_one_call():
    fm = random_model(dtype=tf.float32)
    X = sp.random(1000, 12, density=0.3, random_state=2, format="csr")
    p = fm.get_weights()
    expected = fm_loop(X.toarray(), p["w0"], p["w"], p["V"])
    for batch_size in (1, 7, 1000, 5000):
        np.testing.assert_allclose(
            fm.predict(X, batch_size=batch_size), expected, rtol=1e-4, atol=1e-4
        )
    np.testing.assert_allclose(
        fm.predict(X.toarray(), batch_size=64), expected, rtol=1e-4, atol=1e-4
    )
    proba = fm.predict_proba(X[:5])
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-expected[:5])), rtol=1e-4)


def test_gradient_equals_equation_4():
    fm = random_model(n=6, k=3, seed=3)
    x = np.array([0.5, 0.0, -1.5, 2.0, 0.0, 1.0])
    with tf.GradientTape() as tape:
        y_hat = fm(x[None, :])[0]
    g_w0, g_w, g_V = tape.gradient(y_hat, [fm.w0, fm.w, fm.V])
    e_w0, e_w, e_V = fm_gradient(x, fm.V.numpy())
    np.testing.assert_allclose(g_w0.numpy(), e_w0)
    np.testing.assert_allclose(g_w.numpy(), e_w, rtol=1e-12)
    np.testing.assert_allclose(g_V.numpy(), e_V, rtol=1e-10, atol=1e-12)
    for grad in (g_w0, g_w, g_V):
        assert np.any(grad.numpy() != 0)
    # features with x_i = 0 get no gradient, as eq. (4) says
    assert np.all(g_V.numpy()[[1, 4]] == 0)


def test_seed_makes_initialisation_reproducible():
    a = fmlib.FactorizationMachine(10, k=3, seed=42).V.numpy()
    b = fmlib.FactorizationMachine(10, k=3, seed=42).V.numpy()
    c = fmlib.FactorizationMachine(10, k=3, seed=43).V.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.005 < a.std() < 0.02  # init_std=0.01


def test_original_project_names():
    fm = fmlib.FactorizationMachine(m=16)
    assert fm.n_features == fm.m == 16 and fm.k == 8
    assert fm.b is fm.w0 and fm.v is fm.V
    assert fmlib.FactorizationMachine(m=16, k=3).V.shape == (16, 3)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"n_features": 0}, ValueError, r"`n_features` must be >= 1; got 0"),
        ({"n_features": -3}, ValueError, r"`n_features` must be >= 1; got -3"),
        ({"n_features": 4, "k": 0}, ValueError, r"`k` must be >= 1; got 0"),
        (
            {"n_features": 4, "k": 2.5},
            TypeError,
            r"`k` must be an integer; got float 2.5",
        ),
        (
            {"n_features": 4, "pairwise": "slow"},
            ValueError,
            r"`pairwise` must be 'fast' or 'naive'; got 'slow'",
        ),
        (
            {"n_features": 4, "dtype": tf.int32},
            ValueError,
            r"`dtype` must be float32 or float64; got int32",
        ),
        ({"n_features": 4, "m": 5}, ValueError, r"`m` is an alias of `n_features`"),
        ({}, TypeError, r"needs `n_features`"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        fmlib.FactorizationMachine(**kwargs)


def test_bad_prediction_input():
    fm = fmlib.FactorizationMachine(5, k=2, seed=0)
    with pytest.raises(
        ValueError,
        match=r"`X` has 4 feature columns, but the model expects n_features=5",
    ):
        fm(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"`X` has 6 feature columns"):
        fm.predict(sp.csr_matrix(np.ones((3, 6))))
    with pytest.raises(ValueError, match=r"`X` must be finite; it contains 2 NaN"):
        fm(np.array([[np.nan, 0, 0, 0, np.nan]]))
    with pytest.raises(ValueError, match=r"`w` must have shape \(5,\); got \(4,\)"):
        fm.set_weights(w=np.ones(4))
