"""The schedule's colouring without the co-occurrence graph, against the graph-based
one.

The reference is the colouring ``block_schedule`` used before (kept here, unchanged):
form G = D^T D of the distinct row patterns, then colour largest degree first with the
smallest colour free among the neighbours. The walk that replaces it must give the same
colours, so that every schedule, sweep and committed result stays the same.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fmlib.solvers.coordinate import _distinct_rows, _greedy_colouring, block_schedule


# --- the reference: the former implementation ------------------------------------
def reference_distinct_rows(B):
    keys = (B.indices[a:b].tobytes() for a, b in zip(B.indptr[:-1], B.indptr[1:]))
    one_row_per_key = dict(zip(keys, range(B.shape[0])))
    return B[np.sort(np.fromiter(one_row_per_key.values(), np.int64))]


def reference_greedy_colouring(G):
    n = G.shape[0]
    colour = np.full(n, -1, np.int64)
    for v in np.argsort(-np.diff(G.indptr), kind="stable"):
        taken = colour[G.indices[G.indptr[v] : G.indptr[v + 1]]]
        free = np.ones(taken.size + 1, bool)
        free[taken[(taken >= 0) & (taken <= taken.size)]] = False
        colour[v] = int(np.argmax(free))
    return colour


def reference_colours(pattern):
    distinct = reference_distinct_rows(pattern)
    G = (distinct.T @ distinct).tocsr()
    G.setdiag(0)
    G.eliminate_zeros()
    return reference_greedy_colouring(G)


def as_pattern(X):
    """What block_schedule colours: ones at the stored entries, duplicates summed."""
    X = sp.csr_matrix(X)
    pattern = sp.csr_matrix((np.ones(X.nnz), X.indices, X.indptr), shape=X.shape)
    pattern.sum_duplicates()
    return pattern


def random_design(rng, n_rows, n_cols, density, repeats, empty_rows, duplicates):
    """Multi-hot rows, each repeated (like a user's implicit block on all the user's
    ratings), some rows empty, and optionally duplicate (row, column) entries."""
    X = sp.random(n_rows, n_cols, density=density, random_state=rng, format="csr")
    X = X[rng.integers(0, n_rows, n_rows * repeats)].tolil()
    for r in rng.choice(X.shape[0], empty_rows, replace=False):
        X.rows[r], X.data[r] = [], []
    X = X.tocsr()
    if duplicates:  # the same (row, column) stored twice: one co-occurrence
        coo = X.tocoo()
        take = rng.random(coo.nnz) < 0.3
        rows = np.concatenate([coo.row, coo.row[take]])
        cols = np.concatenate([coo.col, coo.col[take]])
        X = sp.csr_matrix(
            (
                np.ones(rows.size),
                cols,
                np.r_[0, np.cumsum(np.bincount(rows, minlength=X.shape[0]))],
            ),
            shape=X.shape,
        )
        order = np.argsort(rows, kind="stable")
        X.indices = cols[order].astype(X.indices.dtype)
    return X


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("duplicates", [False, True], ids=["canonical", "duplicates"])
def test_colours_equal_the_graph_based_colouring(seed, duplicates):
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(5, 60))
    X = random_design(
        rng,
        int(rng.integers(5, 40)),
        n_cols,
        rng.uniform(0.05, 0.4),
        int(rng.integers(1, 4)),
        int(rng.integers(0, 4)),
        duplicates,
    )
    pattern = as_pattern(X)
    got = _greedy_colouring(_distinct_rows(pattern))
    want = reference_colours(pattern)
    np.testing.assert_array_equal(got, want)
    # repeated rows only cost time: walking all the rows gives the same colours
    np.testing.assert_array_equal(_greedy_colouring(pattern), want)
    # the colours are a proper colouring: no two columns of one colour share a row
    dense = pattern.toarray() > 0
    for c in range(got.max() + 1):
        assert (dense[:, got == c].sum(axis=1) <= 1).all()


def test_colours_of_graphs_with_ties_isolated_columns_and_a_clique():
    """Equal degrees (the stable order decides), columns in no row, a full row."""
    X = sp.csr_matrix(
        np.array(
            [
                [1, 1, 0, 0, 0, 0, 0],
                [0, 1, 1, 0, 0, 0, 0],
                [1, 0, 1, 0, 0, 0, 0],
                [0, 0, 0, 1, 1, 1, 0],
                [0, 0, 0, 0, 0, 0, 0],
            ],
            float,
        )
    )
    got = _greedy_colouring(_distinct_rows(as_pattern(X)))
    np.testing.assert_array_equal(got, [0, 1, 2, 0, 1, 2, 0])  # by hand
    np.testing.assert_array_equal(got, reference_colours(as_pattern(X)))


def test_distinct_rows_keep_one_row_per_pattern():
    rng = np.random.default_rng(4)
    X = as_pattern(random_design(rng, 20, 15, 0.3, 3, 2, False))
    got = _distinct_rows(X).toarray()
    want = reference_distinct_rows(X).toarray()
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))
    assert len(set(map(tuple, got))) == got.shape[0]


@pytest.mark.parametrize("density", [0.25, 0.8], ids=["short-rows", "long-rows"])
@pytest.mark.parametrize("seed", range(3))
def test_block_schedule_equals_the_graph_based_schedule(seed, density):
    """Groups of one-hot, multi-hot (with repeats, empty rows, duplicates) and numeric
    columns: the whole schedule, colour by colour, equals the former one (with short
    rows every row is walked, with long rows the distinct ones)."""
    rng = np.random.default_rng(10 + seed)
    N = 60
    user = sp.csr_matrix(np.eye(7)[rng.integers(0, 7, N)])
    item = sp.csr_matrix(np.eye(9)[rng.integers(0, 9, N)])
    implicit = random_design(rng, 7, 25, density, 1, 1, seed == 2)[
        user.indices
    ]  # the rated items of each rating's user
    numeric = sp.csr_matrix(rng.normal(size=(N, 2)))
    X = sp.hstack([user, item, implicit, numeric], format="csr")
    groups = {
        "user": slice(0, 7),
        "item": slice(7, 16),
        "rated": slice(16, 41),
        "num": [41, 42],
    }
    for grouping in (groups, None):
        got = block_schedule(X, grouping)
        want = []
        pattern = as_pattern(X)
        labels = (
            np.zeros(X.shape[1], int)
            if grouping is None
            else np.repeat(np.arange(4), [7, 9, 25, 2])
        )
        for g in range(labels.max() + 1):
            cols = np.flatnonzero(labels == g)
            sub = pattern[:, cols]
            if np.diff(sub.indptr).max() <= 1:
                want.append(cols)
                continue
            colour = reference_colours(sub)
            want.extend(cols[colour == c] for c in range(colour.max() + 1))
        assert [b.tolist() for b in got] == [b.tolist() for b in want]
