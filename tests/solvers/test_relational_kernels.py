"""The compiled loops of fmlib.solvers.kernels, against numpy loops over the ratings
(one parameter at a time, no cached sums), hand values and a known posterior."""

import numpy as np
import pytest
import scipy.sparse as sp

from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.solvers import kernels
from fmlib.solvers.sweeper import RelationalSweeper


def block_case(seed=0, n_rows=40, M=6, n_B=7, k=3, offset=2):
    """A relation block whose columns share rows (so a colouring needs several colours),
    with a column that no used row has, plus per-rating state: the other blocks' part
    of q is random, e and q are consistent with it."""
    rng = np.random.default_rng(seed)
    B = (rng.random((M, n_B)) < 0.6) * rng.uniform(0.3, 1.5, (M, n_B))
    B[-1], B[:, -1] = 0.0, 0.0
    B[-1, -1] = 0.8  # column n_B - 1 lives in row M - 1 only ...
    index = rng.integers(0, M - 1, n_rows)  # ... which no rating uses
    n = offset + n_B + 2  # the block's columns sit among other columns
    V = rng.normal(0, 0.5, (n, k))
    w = rng.normal(0, 0.5, n)
    cols = offset + np.arange(n_B)
    q_other = rng.normal(size=(n_rows, k))  # the part of q of the other blocks
    X = B[index]  # the block's columns, one row per rating
    q = q_other + X @ V[cols]
    e = rng.normal(size=n_rows)
    return rng, B, index, cols, w, V, q, e, X


def csc_columns(B, cols, order):
    """(cols, indptr, rows, x) of the block's columns in ``order``, rows increasing."""
    sub = sp.csc_matrix(B[:, order])
    sub.sort_indices()
    return (
        cols[order],
        sub.indptr.astype(np.int64),
        sub.indices.astype(np.int64),
        sub.data,
    )


def reference_draw(theta, h, e, alpha, mu, lam, z, sample):
    """Module docstring of fmlib.solvers.coordinate, from the per-rating h and e."""
    prec = alpha * h @ h + lam
    if prec <= 0:
        return 0.0  # no data, no prior precision: libFM sets the parameter to 0
    mean = (alpha * h @ (e + theta * h) + lam * mu) / prec
    return mean + (z / np.sqrt(prec) if sample else 0.0)


@pytest.mark.parametrize("sample", [False, True], ids=["als", "gibbs"])
def test_sweep_v_is_one_parameter_at_a_time_over_the_ratings(sample):
    rng, B, index, cols, w, V, q, e, X = block_case()
    n, k = V.shape
    M = B.shape[0]
    n_b = np.bincount(index, minlength=M).astype(float)
    order = rng.permutation(cols.size)  # any order: columns may share rows
    alpha = 1.7
    mu, z = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    lam = rng.uniform(0.5, 2, (n, k))
    lam[cols[-1]] = 0.0  # the unused column: P = 0, set to 0 as libFM does
    ref_V, ref_q, ref_e = V.copy(), q.copy(), e.copy()
    Vt, qt, e_ = np.ascontiguousarray(V.T), np.ascontiguousarray(q.T), e.copy()
    Qt = np.ascontiguousarray((B @ V[cols]).T)
    for f in range(k):
        for j in order:  # the reference: h_i = x_il (q_if - v_lf x_il) per rating
            l, x = cols[j], X[:, j]
            h = x * (ref_q[:, f] - ref_V[l, f] * x)
            new = reference_draw(
                ref_V[l, f], h, ref_e, alpha, mu[l, f], lam[l, f], z[l, f], sample
            )
            ref_e -= (new - ref_V[l, f]) * h
            ref_q[:, f] += (new - ref_V[l, f]) * x
            ref_V[l, f] = new
        kernels.sweep_v(
            Vt[f], qt[f], e_, Qt[f], index, n_b, *csc_columns(B, cols, order),
            alpha, mu[:, f].copy(), lam[:, f].copy(), z[:, f].copy(), sample,
        )  # fmt: skip
    np.testing.assert_allclose(Vt.T, ref_V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(qt.T, ref_q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(e_, ref_e, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Qt.T, B @ ref_V[cols], rtol=1e-10, atol=1e-12)
    outside = np.setdiff1d(np.arange(n), cols)
    np.testing.assert_array_equal(Vt.T[outside], V[outside])  # other blocks: untouched
    np.testing.assert_array_equal(Vt.T[cols[-1]], 0.0)  # P = 0: 0, as libFM


@pytest.mark.parametrize("sample", [False, True], ids=["als", "gibbs"])
def test_sweep_w_is_one_parameter_at_a_time_over_the_ratings(sample):
    rng, B, index, cols, w, V, q, e, X = block_case(seed=1)
    n = w.size
    n_b = np.bincount(index, minlength=B.shape[0]).astype(float)
    order = rng.permutation(cols.size)
    alpha = 0.8
    mu, z, lam = rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2, n)
    ref_w, ref_e = w.copy(), e.copy()
    for j in order:  # h_i = x_il
        l, h = cols[j], X[:, j]
        new = reference_draw(ref_w[l], h, ref_e, alpha, mu[l], lam[l], z[l], sample)
        ref_e -= (new - ref_w[l]) * h
        ref_w[l] = new
    kernels.sweep_w(
        w, e, index, n_b, *csc_columns(B, cols, order), alpha, mu, lam, z, sample
    )
    np.testing.assert_allclose(w, ref_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(e, ref_e, rtol=1e-10, atol=1e-12)


def test_draw_by_hand_and_its_precision_guard():
    # P = 2 * 3 + 4 = 10, m = (2 * (2 + 1 * 3) + 4 * 0.5) / 10 = 1.2
    assert kernels.draw(1.0, 2.0, 3.0, 2.0, 0.5, 4.0, 1.0, False) == pytest.approx(1.2)
    assert kernels.draw(1.0, 2.0, 3.0, 2.0, 0.5, 4.0, 1.0, True) == pytest.approx(
        1.2 + 1 / np.sqrt(10)
    )
    # P = 0 or nan: libFM's variance 1/P is not finite and it sets the parameter to 0
    assert kernels.draw(0.7, 0.0, 0.0, 2.0, 0.5, 0.0, 1.0, True) == 0.0  # P = 0
    assert kernels.draw(0.7, 0.0, np.nan, 2.0, 0.5, 1.0, 1.0, True) == 0.0  # P = nan


def test_one_factor_q_and_the_half_squares_by_hand():
    rng = np.random.default_rng(3)
    N, M, n0 = 50, 7, 5
    X = sp.random(N, n0, density=0.4, random_state=4, format="csr")
    v, Q = rng.normal(size=n0), rng.normal(size=M)
    index = rng.integers(0, M, N)
    q = np.full(N, np.nan)  # overwritten, not added to
    kernels.csr_matvec(q, X.indptr, X.indices, X.data, v)
    expected = [sum(X[i, l] * v[l] for l in range(n0)) for i in range(N)]
    np.testing.assert_allclose(q, expected, rtol=1e-14, atol=1e-15)
    kernels.add_gathered(q, Q, index)
    np.testing.assert_allclose(
        q, [expected[i] + Q[index[i]] for i in range(N)], rtol=1e-14, atol=1e-15
    )
    y_hat0 = rng.normal(size=N)
    y_hat = y_hat0.copy()
    kernels.add_half_square(y_hat, q)
    np.testing.assert_allclose(y_hat, y_hat0 + q * q / 2, rtol=1e-14)
    # the rows' own terms: linear minus half the within-row s, loops over the entries
    w, V = rng.normal(size=n0), rng.normal(size=(n0, 3))
    expected = [
        sum(X[i, l] * w[l] - 0.5 * X[i, l] ** 2 * V[l] @ V[l] for l in range(n0))
        for i in range(N)
    ]
    kernels.add_row_terms(y_hat, X.indptr, X.indices, X.data, w, np.sum(V**2, 1))
    np.testing.assert_allclose(
        y_hat, y_hat0 + q * q / 2 + expected, rtol=1e-13, atol=1e-14
    )


def test_gibbs_on_a_relation_block_samples_the_conjugate_posterior():
    """With V = 0 the FM is linear: Gibbs sweeps over w on a relation block whose
    columns share rows (several colours, correlated columns) must reproduce the
    analytical posterior N(m, S), S = (alpha X'X + Lambda)^-1, of the flat matrix."""
    rng = np.random.default_rng(0)
    B = np.array([[1.0, 0.5, 0, 0.3], [1.0, 0, 1.2, 0], [0, 0.7, 1.0, 0.4]])
    index = rng.integers(0, 3, 15)
    X = B[index]
    y = X @ np.array([0.5, -1.0, 0.8, 0.2]) + rng.normal(0, 0.5, 15)
    alpha, mu, lam = 2.0, np.array([0.3, 0, -0.2, 0.1]), np.array([1, 2, 0.5, 1.0])
    S = np.linalg.inv(alpha * X.T @ X + np.diag(lam))
    m = S @ (alpha * X.T @ y + lam * mu)
    design = RelationalDesign(None, [RelationBlock(B, index, "b")])
    sweeper = RelationalSweeper(design, y, 0.0, np.zeros(4), np.zeros((4, 1)))
    assert len(sweeper.schedule) > 1  # several colours
    samples = np.empty((20000, 4))
    for t in range(samples.shape[0]):
        sweeper.update_w(alpha, mu, lam, rng.standard_normal(4), sample=True)
        samples[t] = sweeper.w
    kept = samples[1000:]
    # sweeps are autocorrelated: tolerances of a few effective-sample standard errors
    np.testing.assert_allclose(kept.mean(axis=0), m, atol=0.03)
    np.testing.assert_allclose(np.cov(kept.T), S, atol=0.02)
