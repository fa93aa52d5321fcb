"""The relational sweeper's memory savings change no result.

The main block's colours are updated by compiled loops (``kernels.sweep_w_colour``,
``kernels.sweep_v_colour``) instead of numpy's gathers and ``bincount``: the reference
is ``CoordinateSweeper``'s numpy update of the same colour from the same state, and the
two must agree bit for bit. The sweeper shares the design's arrays instead of copying
them, and must leave them unchanged.
"""

import copy

import numpy as np
import pytest
import scipy.sparse as sp

import fmlib
from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.solvers import kernels
from fmlib.solvers.coordinate import CoordinateSweeper, block_schedule
from fmlib.solvers.sweeper import RelationalSweeper, _loop_arrays


def main_block(rng, n_rows):
    """One-hot (every row, value 1), weighted one-hot, multi-hot reals, numeric: colours
    with one non-zero per row, with rows missing, and with values other than 1."""
    user = np.eye(6)[rng.integers(0, 6, n_rows)]
    item = np.eye(4)[rng.integers(0, 4, n_rows)] * rng.uniform(0.5, 2, (n_rows, 1))
    item[rng.random(n_rows) < 0.2] = 0.0  # some rows without an item
    multi = (rng.random((n_rows, 5)) < 0.3) * rng.uniform(0.2, 1.0, (n_rows, 5))
    X = np.hstack([user, item, multi, rng.normal(size=(n_rows, 1))])
    groups = {
        "user": slice(0, 6),
        "item": slice(6, 10),
        "multi": slice(10, 15),
        "num": [15],
    }
    return sp.csr_matrix(X), groups


@pytest.mark.parametrize("sample", [False, True], ids=["als", "gibbs"])
@pytest.mark.parametrize("seed", range(3))
def test_compiled_colour_updates_equal_the_numpy_updates_bit_for_bit(sample, seed):
    rng = np.random.default_rng(seed)
    X, groups = main_block(rng, 50)
    N, n, k = X.shape[0], X.shape[1], 3
    schedule = block_schedule(X, groups)
    numpy_side = CoordinateSweeper(
        X,
        rng.normal(size=N),
        0.2,
        rng.normal(0, 0.5, n),
        rng.normal(0, 0.5, (n, k)),
        schedule,
    )
    loops = copy.deepcopy(numpy_side)
    kinds = {type(b.rows).__name__ for b in numpy_side.blocks}
    assert kinds == {"slice", "ndarray"}  # both layouts of a colour are exercised
    assert any(b.x is None for b in numpy_side.blocks)
    assert any(b.x is not None for b in numpy_side.blocks)
    alpha = 1.7 if sample else 1.0
    mu, lam = rng.normal(size=(n, k + 1)), rng.uniform(0.5, 2, (n, k + 1))
    z = rng.normal(size=(n, k + 1))
    numpy_side.update_w(alpha, mu[:, 0], lam[:, 0], z[:, 0], sample)
    numpy_side.update_V(alpha, mu[:, 1:], lam[:, 1:], z[:, 1:], sample)
    for b in loops.blocks:
        kernels.sweep_w_colour(
            loops.w,
            loops.e,
            *_loop_arrays(b),
            alpha,
            mu[:, 0].copy(),
            lam[:, 0].copy(),
            z[:, 0].copy(),
            sample,
        )
    for f in range(k):
        for b in loops.blocks:
            kernels.sweep_v_colour(
                loops.Vt[f],
                loops.qt[f],
                loops.e,
                *_loop_arrays(b),
                alpha,
                mu[:, 1 + f].copy(),
                lam[:, 1 + f].copy(),
                z[:, 1 + f].copy(),
                sample,
            )
    for name in ("w", "Vt", "e", "qt"):
        np.testing.assert_array_equal(getattr(loops, name), getattr(numpy_side, name))


def relational(rng, n_rows, unused_row):
    X, groups = main_block(rng, n_rows)
    B = sp.csr_matrix((rng.random((5, 7)) < 0.5) * rng.uniform(0.2, 1, (5, 7)))
    index = rng.integers(0, 4 if unused_row else 5, n_rows)
    if not unused_row:
        index[:5] = np.arange(5)
    return RelationalDesign(X, [RelationBlock(B, index, "user")])


@pytest.mark.parametrize("unused_row", [False, True], ids=["all-rows", "unused-row"])
def test_sweeper_shares_the_designs_arrays_and_leaves_them_unchanged(unused_row):
    rng = np.random.default_rng(4)
    design = relational(rng, 40, unused_row)
    before = [
        a.copy()
        for a in (design.X.data, design.blocks[0].data.data, design.blocks[0].index)
    ]
    N, n = design.shape
    y = rng.normal(size=N)
    y_before = y.copy()
    sweeper = RelationalSweeper(
        design, y, 0.1, rng.normal(0, 0.3, n), rng.normal(0, 0.3, (n, 2))
    )
    assert np.shares_memory(sweeper.X.data, design.X.data)
    rel = sweeper.relations[1]
    assert np.shares_memory(rel.data.data, design.blocks[0].data.data) != unused_row
    assert np.shares_memory(rel.index, design.blocks[0].index) != unused_row
    q, e = sweeper.q, sweeper.e
    for _ in range(2):
        sweeper.refresh()
        sweeper.update_w(1.3, np.zeros(n), np.ones(n), rng.normal(size=n), True)
        sweeper.update_V(
            1.3, np.zeros((n, 2)), np.ones((n, 2)), rng.normal(size=(n, 2)), True
        )
    assert sweeper.q is q and sweeper.e is e  # refreshed in place
    sweeper.refresh()
    for old, new in zip(
        before, (design.X.data, design.blocks[0].data.data, design.blocks[0].index)
    ):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(y, y_before)
    # and the caches are still those of the flat matrix's FM (numpy reference)
    flat, w, V = design.to_csr().toarray(), sweeper.w, sweeper.V
    q = flat @ V
    y_hat = sweeper.w0 + flat @ w + 0.5 * ((q**2).sum(1) - (flat**2) @ (V**2).sum(1))
    np.testing.assert_allclose(sweeper.e, y - y_hat, atol=1e-10)
    for f in range(2):  # one factor at a time, in the one buffer
        np.testing.assert_allclose(sweeper.factor_q(f), q[:, f], atol=1e-10)
        assert sweeper.factor_q(f) is sweeper.q


def test_bayesian_fm_on_the_design_equals_bayesian_fm_on_the_flat_matrix():
    rng = np.random.default_rng(5)
    design = relational(rng, 60, True)
    y = rng.normal(3, 1, design.shape[0])
    groups = {"main": slice(0, 16), "user": slice(16, 23)}  # the same on both
    runs = [
        fmlib.BayesianFM(k=2, num_sweeps=4, burn_in=1, groups=groups, seed=3).fit(X, y)
        for X in (design, design.to_csr())
    ]
    for key in ("w0", "w", "V"):
        np.testing.assert_allclose(
            runs[0].samples_[key], runs[1].samples_[key], rtol=1e-9, atol=1e-11
        )


@pytest.mark.parametrize("seed", range(3))
def test_colours_read_from_csr_equal_the_column_major_colours(seed):
    """RelationalSweeper._colour builds a main-block colour from the CSR arrays; the
    reference is CoordinateSweeper._block, which sorts a CSC copy of it by row."""
    rng = np.random.default_rng(seed)
    design = relational(rng, 40, unused_row=False)
    N, n = design.shape
    sweeper = RelationalSweeper(
        design, rng.normal(size=N), 0.0, np.zeros(n), np.zeros((n, 2))
    )
    Xc = sp.csc_matrix(sweeper.X)
    colours = [b for j, parts in sweeper.segments if j == 0 for b in parts]
    assert len(colours) > 4
    layouts = set()
    for ours in colours:
        ref = CoordinateSweeper._block(sweeper, Xc, ours.cols)
        layouts.add((isinstance(ours.rows, slice), ours.x is None))
        for name in ("cols", "seg", "counts"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name))
        for name in ("rows", "x", "x_sq"):
            a, b = getattr(ours, name), getattr(ref, name)
            assert type(a) is type(b), name
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
    # colours with one non-zero in every row and without; binary and real values
    assert {a for a, _ in layouts} == {True, False}
    assert {b for _, b in layouts} == {True, False}
