"""fmlib.solvers.libfm on relations (libFM's -relation): the block-structured sweeps
against the flat sweeps on the joined matrix, and one relation feature's update against
its conditional written here in numpy on the joined matrix.

The flat sweeps are checked against numpy references in test_libfm_solvers.py; the joined
matrix ``[X, B1[phi1], B2[phi2]]`` is built here with numpy indexing, independently of the
kernels' per-block-row caches.
"""

import numpy as np
import pytest

from fmlib.solvers import libfm as L


def _design(seed=0, N=40, n_main=5):
    """Main rows, two relations (one with an empty column, one block row no data row
    uses, and a column only in that row), their row maps, targets and the joined matrix."""
    rng = np.random.default_rng(seed)
    X = (rng.random((N, n_main)) < 0.4) * rng.normal(size=(N, n_main))
    B1 = (rng.random((7, 6)) < 0.5) * rng.normal(size=(7, 6))
    B1[:, 2] = 0.0  # never occurs
    B1[:, 5] = 0.0
    B1[6, 5] = 1.5  # occurs only in block row 6, which no data row uses
    B2 = (rng.random((4, 3)) < 0.6) * rng.normal(size=(4, 3))
    phi1, phi2 = rng.integers(0, 6, N), rng.integers(0, 4, N)
    y = rng.integers(1, 6, N).astype(float)
    joined = np.hstack([X, B1[phi1], B2[phi2]])
    return X, [B1, B2], [phi1, phi2], y, joined


def _test_rows(seed, blocks, N=15, n_main=5):
    """Test rows of their own (other main rows, other block rows, block row 6 of the
    first relation included: it holds the column no training row has) and their joined
    matrix."""
    rng = np.random.default_rng(seed + 100)
    X = (rng.random((N, n_main)) < 0.4) * rng.normal(size=(N, n_main))
    phi = [rng.integers(0, 7, N), rng.integers(0, 4, N)]
    phi[0][0] = 6
    return X, phi, np.hstack([X, blocks[0][phi[0]], blocks[1][phi[1]]])


def _learners(seed, sample, k=3, k0=True, k1=True, task=L.REGRESSION, **kw):
    X, blocks, phi, y, joined = _design(seed)
    X_test, phi_test, joined_test = _test_rows(seed, blocks)
    if task == L.CLASSIFICATION:
        y = np.where(y > 3, 1.0, -1.0)
    n = joined.shape[1]
    out = []
    for relational in (False, True):
        p = L.init_params(n, k, 0.1, seed + 1, "mcmc", k0, k1)
        common = dict(sample=sample, task=task, target_range=(1.0, 5.0), **kw)
        if relational:
            learner = L.RelationalCoordinateLearner(
                L.as_rows(X), y, L.as_rows(X_test), p, blocks, phi, phi_test, **common
            )
        else:
            learner = L.CoordinateLearner(
                L.as_rows(joined), y, L.as_rows(joined_test), p, **common
            )
        out.append((learner, p))
    return out


def _assert_same(flat, rel, rtol):
    (cf, pf), (cr, pr) = flat, rel
    np.testing.assert_allclose(pr.w0, pf.w0, rtol=rtol)
    np.testing.assert_allclose(pr.w, pf.w, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(pr.V, pf.V, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(cr.e, cf.e, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(cr.test_sum, cf.test_sum, rtol=rtol)
    np.testing.assert_allclose(cr.v_lambda, cf.v_lambda, rtol=rtol)


@pytest.mark.parametrize(
    "regular, k0, k1, task",
    [
        ((0.0, 0.0, 0.0), True, True, L.REGRESSION),
        ((0.5, 1.0, 2.0), True, True, L.REGRESSION),
        ((0.5, 1.0, 2.0), False, False, L.REGRESSION),
        ((0.5, 1.0, 2.0), True, True, L.CLASSIFICATION),
    ],
)
def test_als_on_relations_equals_als_on_the_joined_matrix(regular, k0, k1, task):
    groups = np.array([0] * 5 + [1] * 6 + [2] * 3)
    flat, rel = _learners(
        0, False, k0=k0, k1=k1, task=task, regular=regular, groups=groups
    )
    for _ in range(6):
        flat[0].sweep()
        rel[0].sweep()
    _assert_same(flat, rel, rtol=1e-9)
    assert rel[0].train_metric == pytest.approx(flat[0].train_metric, rel=1e-12)
    # features that never occur in training rows (the empty column, and the one only
    # in the unused block row) take the prior's mean, 0, as on the joined matrix
    assert rel[1].w[5 + 2] == rel[1].w[5 + 5] == 0.0 or not k1


def test_mcmc_on_relations_draws_what_mcmc_on_the_joined_matrix_draws():
    """Same seed: the same draws in the same order (main features, then relation 1, 2),
    so the chains agree to round-off."""
    groups = np.array([0] * 5 + [1] * 6 + [2] * 3)
    flat, rel = _learners(1, True, groups=groups, regular=(0.5, 0.0, 0.0))
    L.seed_numba(11)
    for _ in range(8):
        flat[0].sweep()
    L.seed_numba(11)
    for _ in range(8):
        rel[0].sweep()
    _assert_same(flat, rel, rtol=1e-8)
    assert rel[0].alpha == pytest.approx(flat[0].alpha, rel=1e-8)


def test_predict_relational_is_the_fm_of_the_joined_rows():
    X, blocks, phi, _, joined = _design(2)
    p = L.init_params(joined.shape[1], 4, 0.3, 5, "mcmc")
    p.w0[0] = 0.7
    rel = L.stack_relations(blocks, X.shape[1])
    got = L.predict_relational(L.as_rows(X), rel, L.block_rows(rel, phi, len(X)), p)
    pair = 0.5 * (((joined @ p.V) ** 2).sum(1) - ((joined**2) @ (p.V**2)).sum(1))
    np.testing.assert_allclose(got, 0.7 + joined @ p.w + pair, rtol=1e-12)


def _conditional_mean(theta, h, e, lam, mu, alpha):
    """als's coordinate value: the mean of N(m, 1/P), P = lam + alpha sum h^2,
    m = (alpha sum h (theta h - e) + lam mu) / P with e = y_hat - y (theta's current
    contribution h theta is removed from the prediction)."""
    P = lam + alpha * h @ h
    return (alpha * h @ (theta * h - e) + lam * mu) / P


def _fm(joined, w0, w, V):
    pair = 0.5 * (((joined @ V) ** 2).sum(1) - ((joined**2) @ (V**2)).sum(1))
    return w0 + joined @ w + pair


def _single_update_setup(seed=3, k=2):
    X, blocks, phi, y, joined = _design(seed)
    p = L.init_params(joined.shape[1], k, 0.3, seed, "mcmc")
    rel = L.stack_relations(blocks, X.shape[1])
    Phi = L.block_rows(rel, phi, len(X))
    e = _fm(joined, p.w0[0], p.w, p.V) - y
    M = rel.rows.n_rows
    wnum = np.bincount(Phi.ravel(), minlength=M).astype(float)
    cache = np.zeros((6, M))  # bq, wc, wc_sqr, dy, we, weq
    return X, joined, y, p, rel, Phi, e, wnum, cache


def test_one_relation_factor_update_matches_its_conditional():
    """_draw_v_relation on one feature of relation 2 (a user of the second block) sets
    v_{j,f} to the conditional mean of the joined matrix, h_i = x_ij (q_if - x_ij v_jf),
    and leaves e and q equal to the joined matrix's after the change."""
    X, joined, y, p, rel, Phi, e, wnum, cache = _single_update_setup()
    f, j, r = 1, 5 + 6 + 1, 1  # second column of B2
    lam, mu, alpha = 2.0, 0.1, 1.5
    q = joined @ p.V[:, f]
    h = joined[:, j] * (q - joined[:, j] * p.V[j, f])
    assert np.count_nonzero(h) > 3
    expected = _conditional_mean(p.V[j, f], h, e, lam, mu, alpha)
    bq = cache[0]  # q^B of every block row: B @ v_f
    dense_B = np.zeros((rel.rows.n_rows, rel.rows.n_cols))
    for b in range(rel.rows.n_rows):
        s = slice(rel.rows.indptr[b], rel.rows.indptr[b + 1])
        dense_B[b, rel.rows.indices[s]] = rel.rows.data[s]
    bq[:] = dense_B @ p.V[:, f]
    groups = np.zeros(joined.shape[1], np.int64)
    v_mu, v_lambda = np.full((1, 2), mu), np.full((1, 2), lam)
    c = rel.cols
    L._draw_v_relation(
        c.indptr, c.indices, c.data, j, j + 1, rel.row_start[r], rel.row_start[r + 1],
        f, Phi[r], e, q, p.V, groups, v_mu, v_lambda, alpha, False, wnum, *cache,
    )  # fmt: skip
    assert p.V[j, f] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(q, joined @ p.V[:, f], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(e, _fm(joined, p.w0[0], p.w, p.V) - y, atol=1e-12)


def test_one_relation_linear_update_matches_its_conditional():
    """_draw_w_relation on one feature of relation 1: h_i = x_ij, the same conditional."""
    X, joined, y, p, rel, Phi, e, wnum, cache = _single_update_setup(4)
    r = 0
    j = 5 + int(np.argmax((joined[:, 5:11] != 0).sum(0)))  # relation 1's commonest
    lam, mu, alpha = 0.5, -0.2, 2.0
    h = joined[:, j]
    assert np.count_nonzero(h) > 3
    expected = _conditional_mean(p.w[j], h, e, lam, mu, alpha)
    groups = np.zeros(joined.shape[1], np.int64)
    c = rel.cols
    L._draw_w_relation(
        c.indptr, c.indices, c.data, j, j + 1, rel.row_start[r], rel.row_start[r + 1],
        Phi[r], e, p.w, groups, np.array([mu]), np.array([lam]), alpha, False, wnum,
        cache[3], cache[4],
    )  # fmt: skip
    assert p.w[j] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(e, _fm(joined, p.w0[0], p.w, p.V) - y, atol=1e-12)


def test_bad_relational_inputs_name_the_argument():
    X, blocks, phi, y, joined = _design()
    p = L.init_params(joined.shape[1], 2, 0.1, 0, "als")
    rows = L.as_rows(X)
    with pytest.raises(ValueError, match=r"`index\[1\]` must give each of the 40 rows"):
        L.RelationalCoordinateLearner(rows, y, None, p, blocks, [phi[0], phi[1][:-1]])
    with pytest.raises(ValueError, match="`index` must hold one row map per relation"):
        L.RelationalCoordinateLearner(rows, y, None, p, blocks, phi[:1])
    with pytest.raises(ValueError, match=r"`index\[0\]`.*0\.\.6"):
        L.RelationalCoordinateLearner(rows, y, None, p, blocks, [phi[0] + 5, phi[1]])
    with pytest.raises(ValueError, match="`test_index` is needed"):
        L.RelationalCoordinateLearner(rows, y, rows, p, blocks, phi)
    wide = L.as_rows(np.hstack([X, X]))
    with pytest.raises(ValueError, match="`rows` has 10 columns"):
        L.RelationalCoordinateLearner(wide, y, None, p, blocks, phi)
    with pytest.raises(TypeError, match=r"`index\[0\]` must hold integer row numbers"):
        L.RelationalCoordinateLearner(rows, y, None, p, blocks, [phi[0] * 1.0, phi[1]])
    small = L.init_params(8, 2, 0.1, 0, "als")
    with pytest.raises(ValueError, match="`params` has 8 features, fewer than the blo"):
        L.RelationalCoordinateLearner(rows, y, None, small, blocks, phi)
    with pytest.raises(ValueError, match="`blocks` must hold at least one"):
        L.stack_relations([], 5)
