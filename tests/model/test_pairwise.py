import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import pairwise_loop

import fmlib


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
@pytest.mark.parametrize("n, k", [(2, 1), (5, 3), (16, 8), (40, 4)])
def test_fast_and_naive_equal_double_loop(n, k, dtype, tol):
    rng = np.random.default_rng(n * 100 + k)
    X = rng.normal(size=(6, n)).astype(dtype)
    V = rng.normal(size=(n, k)).astype(dtype)
    expected = pairwise_loop(X.astype(np.float64), V.astype(np.float64))
    fast = fmlib.pairwise_fast(X, V).numpy()
    naive = fmlib.pairwise_naive(X, V).numpy()
    assert fast.dtype == dtype and naive.dtype == dtype
    assert fast.shape == naive.shape == (6,)
    scale = 1 + np.abs(expected).max()
    np.testing.assert_allclose(fast, expected, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(naive, expected, atol=tol * scale, rtol=tol)
    assert (
        len(np.unique(np.round(expected, 6))) > 1
    )  # distinct rows, so a broadcast bug shows


def test_hand_computed_value():
    # v1=(1,0), v2=(1,1), v3=(0,2): <v1,v2>=1, <v1,v3>=0, <v2,v3>=2
    V = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    X = np.array([[1.0, 1.0, 1.0], [2.0, 3.0, 0.0], [0.0, 1.0, -1.0]])
    expected = [1 + 0 + 2, 1 * 2 * 3, 2 * 1 * -1]
    np.testing.assert_allclose(fmlib.pairwise_fast(X, V), expected)
    np.testing.assert_allclose(fmlib.pairwise_naive(X, V), expected)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "tf"])
def test_sparse_equals_dense(fmt):
    rng = np.random.default_rng(7)
    dense = sp.random(9, 30, density=0.2, random_state=3, format="csr").toarray()
    dense[:, 0] = rng.normal(size=9)  # a dense column too
    V = rng.normal(size=(30, 5))
    if fmt == "tf":
        X = tf.sparse.from_dense(tf.constant(dense))
    else:
        X = sp.csr_matrix(dense).asformat(fmt)
    expected = pairwise_loop(dense, V)
    np.testing.assert_allclose(
        fmlib.pairwise_fast(X, V), expected, rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        fmlib.pairwise_naive(X, V), expected, rtol=1e-10, atol=1e-10
    )


def test_sparse_path_never_densifies(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pairwise_fast densified a sparse input")

    monkeypatch.setattr(tf.sparse, "to_dense", forbidden)
    monkeypatch.setattr(sp.csr_matrix, "toarray", forbidden)
    X = sp.random(4, 100_000, density=1e-4, random_state=0, format="csr")
    V = np.random.default_rng(0).normal(size=(100_000, 2))
    dense_rows = [X.getrow(r) for r in range(4)]
    expected = [pairwise_loop(r.data[None, :], V[r.indices])[0] for r in dense_rows]
    np.testing.assert_allclose(
        fmlib.pairwise_fast(X, V), expected, rtol=1e-10, atol=1e-12
    )


def test_zero_row_and_one_hot_row_give_zero():
    V = np.random.default_rng(1).normal(size=(8, 3))
    X = np.zeros((3, 8))
    X[1, 4] = 1.0  # one-hot row: a single feature has no partner
    X[2, 2] = 3.5  # a single non-zero value, not one
    for f in (fmlib.pairwise_fast, fmlib.pairwise_naive):
        np.testing.assert_allclose(f(X, V), [0.0, 0.0, 0.0], atol=1e-12)
        np.testing.assert_allclose(f(sp.csr_matrix(X), V), [0.0, 0.0, 0.0], atol=1e-12)


def test_single_row_is_a_batch_of_one():
    rng = np.random.default_rng(2)
    x, V = rng.normal(size=6), rng.normal(size=(6, 2))
    np.testing.assert_allclose(fmlib.pairwise_fast(x, V), pairwise_loop(x[None], V))


@pytest.mark.parametrize("f", [fmlib.pairwise_fast, fmlib.pairwise_naive])
def test_bad_input(f):
    V = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"`X` has 5 feature columns.*n_features=4"):
        f(np.ones((2, 5)), V)
    with pytest.raises(ValueError, match=r"`X` must be finite.*1 NaN"):
        f(np.array([[1.0, np.nan, 0, 0]]), V)
    with pytest.raises(ValueError, match=r"`X` must be finite"):
        f(sp.csr_matrix(np.array([[1.0, np.inf, 0, 0]])), V)
    with pytest.raises(ValueError, match=r"`X` must be 2-D"):
        f(np.ones((2, 2, 4)), V)
    with pytest.raises(TypeError, match=r"`X` must hold real numbers.*<U"):
        f(np.array([["a", "b", "c", "d"]]), V)
    with pytest.raises(ValueError, match=r"`V` must be 2-D"):
        f(np.ones((2, 4)), np.ones(4))


def test_to_sparse_tensor_keeps_values_and_positions():
    dense = np.array([[0.0, 2.0, 0.0], [1.5, 0.0, -1.0]])
    for X in (dense, sp.csr_matrix(dense), sp.coo_matrix(dense)):
        st = fmlib.to_sparse_tensor(X)
        assert isinstance(st, tf.SparseTensor) and st.dtype == tf.float32
        assert st.indices.numpy().tolist() == [[0, 1], [1, 0], [1, 2]]
        np.testing.assert_array_equal(tf.sparse.to_dense(st).numpy(), dense)
