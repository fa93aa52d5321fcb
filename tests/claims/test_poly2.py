"""fmlib.claims.poly2: the explicit degree-2 polynomial model, against the closed-form ridge solution.

The claim of Rendle (2010), Sec. IV-B: a pair of features never observed together gets the
weight w_ij = 0 exactly, because no data term of the objective contains it (the normal
equation of that coordinate reads lam * w_ij = 0).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import lsqr

from fmlib.claims.poly2 import Poly2Regression, pair_index, poly2_expand


def _expand_loop(X):
    X = np.asarray(X, float)
    n = X.shape[1]
    return np.array(
        [np.r_[x, [x[i] * x[j] for i in range(n) for j in range(i + 1, n)]] for x in X]
    )


def _ridge(Z, y, lam):
    """Closed form: theta = (Z'Z + lam I)^-1 Z'(y - mean y)."""
    return np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))


def test_expansion_matches_the_pair_products_of_every_row():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 6)) * (rng.random((9, 6)) < 0.5)
    X[3] = 0.0  # an empty row
    np.testing.assert_allclose(
        poly2_expand(sp.csr_matrix(X)).toarray(), _expand_loop(X), rtol=1e-15
    )
    np.testing.assert_array_equal(
        pair_index([0, 0, 1, 4], [1, 5, 2, 5], 6), [0, 4, 5, 14]
    )


def _users_items(rng, n_users=6, n_items=5, n_rows=40):
    u, i = rng.integers(0, n_users, n_rows), rng.integers(0, n_items, n_rows)
    keep = ~((u == 2) & (i == 3))  # user 2 never rates item 3
    u, i = u[keep], i[keep]
    X = np.zeros((u.size, n_users + n_items))
    X[np.arange(u.size), u] = 1.0
    X[np.arange(u.size), n_users + i] = 1.0
    y = 3 + 0.5 * rng.normal(size=u.size) + (u == 1) * (i == 0)
    return X, y, n_users


def test_poly2_is_ridge_on_the_expansion_and_an_unseen_pair_weight_is_exactly_zero():
    rng = np.random.default_rng(1)
    X, y, n_users = _users_items(rng)
    lam = 0.7
    model = Poly2Regression(lam=lam, tol=1e-12).fit(sp.csr_matrix(X), y)
    theta = _ridge(_expand_loop(X), y, lam)
    n = X.shape[1]
    np.testing.assert_allclose(np.r_[model.w_, model.W_], theta, atol=1e-8)
    assert model.w0_ == pytest.approx(y.mean())
    unseen = (2, n_users + 3)
    assert model.pair_weight(*unseen) == 0.0  # exactly, not approximately
    assert abs(theta[n + pair_index(*unseen, n)]) < 1e-12  # the closed form agrees
    # and so does LSQR run on every column, empty ones included (scipy, not fmlib)
    Z = sp.csr_matrix(_expand_loop(X))
    full = lsqr(Z, y - y.mean(), damp=np.sqrt(lam), atol=1e-12, btol=1e-12)[0]
    assert full[n + pair_index(*unseen, n)] == 0.0
    np.testing.assert_allclose(np.r_[model.w_, model.W_], full, atol=1e-8)
    assert abs(model.pair_weight(1, n_users + 0)) > 0.05  # a seen pair is learned
    # so the prediction for the unseen pair is the linear part alone: w0 + w_u + w_i
    x = np.zeros((2, n))
    x[0, [2, n_users + 3]] = 1.0
    x[1, [1, n_users + 0]] = 1.0
    y_hat = model.predict(x)
    assert y_hat[0] == pytest.approx(
        model.w0_ + model.w_[2] + model.w_[n_users + 3], abs=1e-12
    )
    np.testing.assert_allclose(y_hat, model.w0_ + _expand_loop(x) @ theta, atol=1e-8)


def test_without_pairs_it_is_the_ridge_linear_model():
    rng = np.random.default_rng(2)
    X, y, _ = _users_items(rng)
    model = Poly2Regression(lam=2.0, pairs=False, tol=1e-12).fit(X, y)
    assert model.W_ is None
    np.testing.assert_allclose(model.w_, _ridge(X, y, 2.0), atol=1e-8)
    np.testing.assert_allclose(
        model.predict(X[:5]), y.mean() + X[:5] @ _ridge(X, y, 2.0), atol=1e-8
    )


def test_bad_inputs_name_the_argument():
    X = np.eye(3)
    with pytest.raises(ValueError, match="`lam` must be > 0"):
        Poly2Regression(lam=0.0).fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`y` has 2 rows, but X has 3"):
        Poly2Regression().fit(X, [1.0, 2.0])
    with pytest.raises(AttributeError, match="not fitted yet"):
        Poly2Regression().predict(X)
    with pytest.raises(
        ValueError,
        match="`X` has 4 feature columns, but the model expects n_features=3",
    ):
        Poly2Regression().fit(X, [1.0, 2.0, 3.0]).predict(np.eye(4))
    with pytest.raises(ValueError, match="0 <= i < j < n_features=3"):
        pair_index(2, 1, 3)
    with pytest.raises(AttributeError, match="pairs=True"):
        Poly2Regression(pairs=False).fit(X, [1.0, 2.0, 3.0]).pair_weight(0, 1)
