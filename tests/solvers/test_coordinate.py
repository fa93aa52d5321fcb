"""The coordinate updates behind ALS and MCMC, against references built from eq. (1) alone.

The reference never uses h, e or q: the conditional of one parameter theta is read off the
objective itself, which is quadratic in theta (the FM is multilinear), by evaluating it at
theta = -1, 0, 1 with the FM computed by its definition.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from reference import fm_definition, reference_sweep

from fmlib.solvers.coordinate import CoordinateSweeper, block_schedule
from fmlib.validation import column_groups


def mixed_design(n_rows=40, seed=0):
    """One-hot user (4) and item (5) blocks, a multi-hot block (4 columns), a numeric column."""
    rng = np.random.default_rng(seed)
    user = np.eye(4)[rng.integers(0, 4, n_rows)]
    item = np.eye(5)[rng.integers(0, 5, n_rows)]
    multi = (rng.random((n_rows, 4)) < 0.4) * rng.uniform(0.2, 1.0, (n_rows, 4))
    numeric = rng.normal(size=(n_rows, 1))
    X = np.hstack([user, item, multi, numeric])
    groups = {
        "user": slice(0, 4),
        "item": slice(4, 9),
        "multi": slice(9, 13),
        "num": [13],
    }
    return X, groups


def priors(n, k, rng, sample):
    if not sample:  # ALS: alpha = 1, mu = 0, w0 unregularised
        return (
            1.0,
            {"w0": np.zeros(()), "w": np.zeros(n), "V": np.zeros((n, k))},
            {"w0": np.zeros(()), "w": np.full(n, 0.7), "V": np.full((n, k), 1.3)},
        )
    return (
        1.7,
        {"w0": np.zeros(()), "w": rng.normal(size=n), "V": rng.normal(size=(n, k))},
        {
            "w0": np.zeros(()),
            "w": rng.uniform(0.5, 2, n),
            "V": rng.uniform(0.5, 2, (n, k)),
        },
    )


@pytest.mark.parametrize("sample", [False, True], ids=["als", "gibbs"])
@pytest.mark.parametrize(
    "layout", ["mixed-sparse", "mixed-dense-groups-none", "dense-random"]
)
def test_block_sweep_equals_one_parameter_at_a_time_from_the_full_data(sample, layout):
    rng = np.random.default_rng(1)
    if layout == "dense-random":
        X, groups = rng.normal(size=(25, 6)), None
    else:
        X, groups = mixed_design()
        groups = groups if layout == "mixed-sparse" else None
    N, n, k = X.shape[0], X.shape[1], 3
    y = rng.normal(size=N)
    w0, w, V = 0.2, rng.normal(0, 0.5, n), rng.normal(0, 0.5, (n, k))
    schedule = block_schedule(sp.csr_matrix(X), groups)
    alpha, mu, lam = priors(n, k, rng, sample)
    z = {
        "w0": rng.normal(size=()),
        "w": rng.normal(size=n),
        "V": rng.normal(size=(n, k)),
    }

    sweeper = CoordinateSweeper(sp.csr_matrix(X), y, w0, w, V, schedule)
    sweeper.update_w0(alpha, float(lam["w0"]), float(mu["w0"]), float(z["w0"]), sample)
    sweeper.update_w(alpha, mu["w"], lam["w"], z["w"], sample)
    sweeper.update_V(alpha, mu["V"], lam["V"], z["V"], sample)

    ref_w0, ref_w, ref_V = reference_sweep(
        X, y, w0, w, V, schedule, alpha, mu, lam, z, sample
    )
    got = sweeper.weights()
    np.testing.assert_allclose(got["w0"], ref_w0, rtol=1e-9)
    np.testing.assert_allclose(got["w"], ref_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["V"], ref_V, rtol=1e-9, atol=1e-12)
    # the cached residuals still equal y - y_hat after all the incremental updates
    np.testing.assert_allclose(
        sweeper.e, y - fm_definition(X, ref_w0, ref_w, ref_V), atol=1e-10
    )


def test_the_schedule_splits_columns_into_blocks_that_share_no_row():
    X, groups = mixed_design(n_rows=200, seed=3)
    for grouping in (groups, None):
        schedule = block_schedule(sp.csr_matrix(X), grouping)
        assert sorted(np.concatenate(schedule).tolist()) == list(range(X.shape[1]))
        for block in schedule:
            assert ((X[:, block] != 0).sum(axis=1) <= 1).all()
    blocks = [set(b.tolist()) for b in block_schedule(sp.csr_matrix(X), groups)]
    assert (
        set(range(4)) in blocks and set(range(4, 9)) in blocks
    )  # one-hot: one block each
    assert len(blocks) > 3  # the multi-hot is split


def test_repeated_row_patterns_are_coloured_once():
    """The implicit block repeats on every rating of a user; colouring sees one copy."""
    rated = sp.random(30, 50, density=0.3, random_state=0, format="csr")
    X = rated[np.repeat(np.arange(30), 20)]
    schedule = block_schedule(X)
    for block in schedule:
        assert (np.asarray((X[:, block] != 0).sum(axis=1)).ravel() <= 1).all()


@pytest.mark.parametrize(
    "groups, error, pattern",
    [
        (
            "user",
            TypeError,
            r"`groups` must be None, a sequence .*got the string 'user'",
        ),
        (
            [0, 1],
            ValueError,
            r"`groups` must hold one group label per column \(4\); got shape \(2,\)",
        ),
        (
            {"a": slice(0, 2)},
            ValueError,
            r"`groups` must cover every one of the 4 columns; 2 are in no",
        ),
        (
            {"a": slice(0, 3), "b": slice(2, 4)},
            ValueError,
            r"assigns some column to more than one",
        ),
        ({"a": [0, 1, 2, 7]}, ValueError, r"`groups` names columns outside 0..3"),
    ],
)
def test_column_groups_rejects_bad_groups(groups, error, pattern):
    with pytest.raises(error, match=pattern):
        column_groups(groups, 4)


def test_column_groups_accepts_labels_and_mappings():
    np.testing.assert_array_equal(column_groups(["b", "a", "b", "c"], 4), [1, 0, 1, 2])
    np.testing.assert_array_equal(
        column_groups({"x": slice(0, 1), "y": [1, 2, 3]}, 4), [0, 1, 1, 1]
    )
    np.testing.assert_array_equal(column_groups(None, 3), [0, 0, 0])


@pytest.mark.parametrize("lam", [0.0, 2.0], ids=["lambda=0", "lambda=2"])
def test_feature_absent_from_training_is_set_as_libfm_sets_it(lam):
    """A column with no non-zero: its conditional is the prior alone. ALS (mu = 0) gives
    0; with lambda = 0 the precision is 0 and libFM (fm_learn_mcmc.h, draw_w/draw_v: an
    infinite variance) sets the parameter to 0 as well. A Gibbs draw is mu + z/sqrt(lambda)."""
    rng = np.random.default_rng(4)
    X, _ = mixed_design()
    X = np.hstack([X, np.zeros((X.shape[0], 1))])  # column 14 never occurs
    n, k = X.shape[1], 2
    y = rng.normal(size=X.shape[0])
    w, V = rng.normal(0, 0.5, n), rng.normal(0, 0.5, (n, k))
    sweeper = CoordinateSweeper(
        sp.csr_matrix(X), y, 0.1, w, V, block_schedule(sp.csr_matrix(X))
    )
    sweeper.update_w(1.0, np.zeros(n), np.full(n, lam), np.zeros(n), False)
    sweeper.update_V(
        1.0, np.zeros((n, k)), np.full((n, k), lam), np.zeros((n, k)), False
    )
    assert sweeper.w[-1] == 0.0 and np.all(sweeper.V[-1] == 0.0)
    # the predictions on the training rows do not depend on the absent column at all
    np.testing.assert_allclose(
        sweeper.e, y - fm_definition(X, sweeper.w0, sweeper.w, sweeper.V), atol=1e-10
    )
    if lam > 0:
        mu, z = np.full(n, 0.3), rng.normal(size=n)
        sweeper.update_w(1.0, mu, np.full(n, lam), z, True)
        assert sweeper.w[-1] == pytest.approx(0.3 + z[-1] / np.sqrt(lam), rel=1e-12)
