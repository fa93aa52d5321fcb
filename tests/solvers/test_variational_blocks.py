"""fmlib.VariationalFM on relation blocks: the same fit as on the flattened matrix (whose
steps tests/solvers/test_variational.py checks against numerical optimisation of the
ELBO), computed without flattening, the ELBO non-decreasing, bad designs refused."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp

import fmlib
from fmlib.solvers import variational as vi
from fmlib.solvers import variational_blocks as vb

RTOL = 1e-8


def _block(rng, rows, cols, density, N, used, name, binary=False):
    """A relation block whose ratings point to ``used`` of its ``rows`` only."""
    data = sp.random(rows, cols, density=density, random_state=rng, format="csr")
    data.data = np.ones(data.nnz) if binary else rng.normal(0.0, 1.0, data.nnz)
    index = rng.choice(rng.permutation(rows)[:used], N)
    return fmlib.RelationBlock(data, index, name)


def _design(seed=0, N=240, main=True):
    rng = np.random.default_rng(seed)
    blocks = [
        _block(rng, 25, 7, 0.4, N, 20, "user"),
        _block(rng, 30, 6, 0.5, N, 30, "item", binary=True),
        _block(rng, 12, 3, 0.6, N, 9, "day"),
    ]
    X0 = None
    if main:
        X0 = sp.random(N, 4, density=0.5, random_state=rng, format="csr")
        X0.data = rng.uniform(0.5, 2.0, X0.nnz)
    design = fmlib.RelationalDesign(X0, blocks)
    flat = design.to_csr()
    # a target with pairwise structure, plus noise
    V = rng.normal(0.0, 0.5, (flat.shape[1], 2))
    q = flat @ V
    y = 1.0 + flat @ rng.normal(0.0, 0.3, flat.shape[1])
    y += 0.5 * np.sum(q**2 - flat.multiply(flat) @ V**2, axis=1)
    y += rng.normal(0.0, 0.3, N)
    return design, flat, y


def _groups(design):
    """Prior groups that cut blocks, so every block meets two groups' priors."""
    n = design.shape[1]
    return np.arange(n) % 3


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("main", [True, False])
def test_blocks_equal_the_flattened_fit(task, main, monkeypatch):
    design, flat, y = _design(seed=1, main=main)
    if task == "classification":
        y = (y > np.median(y)).astype(float)
    kw = dict(k=3, num_iter=12, task=task, groups=_groups(design), seed=4)
    ref = fmlib.VariationalFM(**kw).fit(flat, y)
    test_design, test_flat, _ = _design(seed=2, main=main)
    test_design = fmlib.RelationalDesign(
        test_design.X if main else None,
        [
            fmlib.RelationBlock(b.data, t.index, b.name)
            for b, t in zip(design.blocks, test_design.blocks)
        ],
    )
    test_flat = test_design.to_csr()
    ref_moments = ref.predict_moments(test_flat)

    def no_flattening(self):
        raise AssertionError("the relational path flattened the design")

    monkeypatch.setattr(fmlib.RelationalDesign, "to_csr", no_flattening)
    model = fmlib.VariationalFM(**kw).fit(design, y)
    for name in ("w0_", "w0_var_", "w_", "w_var_", "V_", "V_var_", "alpha_"):
        np.testing.assert_allclose(
            getattr(model, name),
            getattr(ref, name),
            rtol=RTOL,
            atol=1e-12,
            err_msg=name,
        )
    np.testing.assert_allclose(
        model.trace_.to_numpy(), ref.trace_.to_numpy(), rtol=RTOL
    )
    np.testing.assert_allclose(
        model.predict_moments(test_design), ref_moments, rtol=RTOL, atol=1e-12
    )
    if task == "classification":
        np.testing.assert_allclose(
            model.predict_proba(test_design), ref.predict_proba(test_flat), rtol=RTOL
        )
    else:
        np.testing.assert_allclose(
            model.predict(test_design), ref.predict(test_flat), rtol=RTOL
        )


def test_each_step_equals_the_flat_step():
    """One call of each step, from the same state, on the blocks and on the flat
    matrix: the updated factors and the residuals agree."""
    design, flat, y = _design(seed=3)
    group = _groups(design)
    G = 3
    model = fmlib.VariationalFM(k=2, num_iter=2, groups=group, seed=0).fit(flat, y)
    st = model.state_
    mean, var = vi.prediction_moments(flat, st)
    mean_b, var_b = vi.prediction_moments(design, st)
    np.testing.assert_allclose(mean_b, mean, rtol=RTOL)
    np.testing.assert_allclose(var_b, var, rtol=RTOL)
    a, b = copy.deepcopy(st), copy.deepcopy(st)
    r_a, r_b = y - mean, y - mean
    alpha = float(st.alpha.mean)
    vi.update_w(flat.tocsc(), a, r_a, alpha, group, G)
    vi.update_w(design, b, r_b, alpha, group, G)
    np.testing.assert_allclose(b.mw, a.mw, rtol=RTOL)
    np.testing.assert_allclose(b.sw, a.sw, rtol=RTOL)
    np.testing.assert_allclose(r_b, r_a, rtol=RTOL, atol=1e-12)
    vi.update_V(flat.tocsc(), a, r_a, alpha, group, G)
    vi.update_V(design, b, r_b, alpha, group, G)
    np.testing.assert_allclose(b.MV, a.MV, rtol=RTOL)
    np.testing.assert_allclose(b.SV, a.SV, rtol=RTOL)
    np.testing.assert_allclose(r_b, r_a, rtol=RTOL, atol=1e-12)
    # and the residuals kept in place are target - E[y_hat] of the new factors
    np.testing.assert_allclose(r_b, y - vi.prediction_moments(flat, b)[0], atol=1e-10)


def test_block_sums_are_the_flat_sums():
    """The per-rating sums q, s, t that the V step starts from, and the block rows'
    own parts, against dense products with the flat matrix and each block."""
    design, flat, _ = _design(seed=5)
    rng = np.random.default_rng(0)
    n, k = flat.shape[1], 3
    MV, SV = rng.normal(size=(n, k)), rng.uniform(0.1, 1.0, (n, k))
    BP = vb.BlockPowers(design)
    _, _, sums = vb.block_moments(BP, 0.0, 1.0, np.zeros(n), np.ones(n), MV, SV)
    F = flat.toarray()
    np.testing.assert_allclose(sums.q, (F @ MV).T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums.s2, (F**2 @ SV).T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums.t, (F**3 @ (SV * MV)).T, rtol=1e-12, atol=1e-12)
    for rel, block in zip(BP.relations, design.blocks):
        B = block.data.toarray()
        cols = slice(rel.start, rel.start + B.shape[1])
        rows = slice(rel.row0, rel.row0 + B.shape[0])
        np.testing.assert_allclose(sums.Q[:, rows], (B @ MV[cols]).T, atol=1e-12)
        np.testing.assert_allclose(sums.S[:, rows], (B**2 @ SV[cols]).T, atol=1e-12)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_elbo_never_decreases_on_blocks(task):
    design, _, y = _design(seed=7, N=600)
    if task == "classification":
        y = (y > np.median(y)).astype(float)
    model = fmlib.VariationalFM(
        k=3, num_iter=30, task=task, groups=_groups(design), seed=0
    ).fit(design, y)
    elbo = model.trace_["elbo"].to_numpy()
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))
    assert elbo[-1] > elbo[0]


def test_bad_designs():
    design, _, y = _design(seed=0)
    model = fmlib.VariationalFM(k=2, num_iter=1).fit(design, y)
    narrow = fmlib.RelationalDesign(design.X, design.blocks[:2])
    with pytest.raises(
        ValueError,
        match=f"`X` has {narrow.shape[1]} feature columns, but the model expects "
        f"n_features={design.shape[1]}",
    ):
        model.predict(narrow)
    with pytest.raises(ValueError, match="`y` .*240"):
        fmlib.VariationalFM(num_iter=1).fit(design, y[:-1])
    bad = copy.deepcopy(design)
    bad.blocks[1].data.data[0] = np.nan
    with pytest.raises(
        ValueError, match="`X` must be finite; its block 'item' has NaN or infinite"
    ):
        fmlib.VariationalFM(num_iter=1).fit(bad, y)
    with pytest.raises(ValueError, match="`X` must be finite; its block 'item'"):
        model.predict(bad)


def test_prediction_moments_takes_a_dense_array_and_checks_its_inputs():
    design, _, y = _design(seed=1)
    model = fmlib.VariationalFM(k=2, num_iter=2).fit(design, y)
    flat = design.to_csr()
    mean, var = vi.prediction_moments(flat, model.state_)
    dense_mean, dense_var = vi.prediction_moments(flat.toarray(), model.state_)
    np.testing.assert_allclose(dense_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(dense_var, var, rtol=1e-12)
    with pytest.raises(TypeError, match="`X` must be a sparse matrix, a 2-d array"):
        vi.prediction_moments([[1.0, 0.0]], model.state_)
    with pytest.raises(ValueError, match=r"`X` must be 2-d; got shape \(3,\)"):
        vi.prediction_moments(np.ones(3), model.state_)
    _, _, sums = vi.prediction_moments(flat, model.state_, sums=True)
    short = sums._replace(q=sums.q[:, :-1].copy())
    with pytest.raises(ValueError, match=r"`out.q` must be a C-contiguous float64"):
        vi.prediction_moments(flat, model.state_, sums=True, out=short)
