"""Relation blocks: the design type, predictions and ALS/MCMC sweeps, against the
flat matrix
built by hand (numpy) and the references of Rendle's equations in ``reference.py``."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_definition, fm_gradient, reference_sweep

import fmlib
from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.data.design_predict import predict, predict_tf
from fmlib.data.movielens_design import movielens_design
from fmlib.solvers.coordinate import block_schedule
from fmlib.solvers.sweeper import RelationalSweeper, relational_schedule

K = 3


def small_design(n_rows=30, seed=0, main=True):
    """A main block (one-hot 'item' with a weight, a numeric column) and two relation
    blocks
    ('user': one-hot + multi-hot; 'ctx': dense-ish reals, one row never used)."""
    rng = np.random.default_rng(seed)
    item = np.eye(3)[rng.integers(0, 3, n_rows)] * rng.uniform(0.5, 2, (n_rows, 1))
    X = np.c_[item, rng.normal(size=(n_rows, 1))] if main else None
    users = np.c_[np.eye(5), (rng.random((5, 4)) < 0.5) * rng.uniform(0.2, 1, (5, 4))]
    ctx = (rng.random((4, 3)) < 0.6) * rng.normal(size=(4, 3))
    u_idx, c_idx = (
        rng.integers(0, 5, n_rows),
        rng.integers(0, 3, n_rows),
    )  # ctx row 3 unused
    flat = np.hstack(([X] if main else []) + [users[u_idx], ctx[c_idx]])
    off = 4 if main else 0
    groups = ({"item": slice(0, 3), "num": [3]} if main else {}) | {
        "user": slice(off, off + 5),
        "multi": slice(off + 5, off + 9),
        "ctx": slice(off + 9, off + 12),
    }
    design = RelationalDesign(
        None if X is None else sp.csr_matrix(X),
        [
            RelationBlock(sp.csr_matrix(users), u_idx, "user"),
            RelationBlock(ctx, c_idx, "ctx"),
        ],
        groups=groups,
    )
    return design, flat


def params(n, seed=1):
    rng = np.random.default_rng(seed)
    return 0.3, rng.normal(0, 0.5, n), rng.normal(0, 0.5, (n, K))


# --- the design type ------------------------------------------------------------------
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_to_csr_is_the_hand_built_flat_matrix(main):
    design, flat = small_design(main=main)
    np.testing.assert_array_equal(design.to_csr().toarray(), flat)
    assert design.shape == flat.shape and design.flat_nnz == np.count_nonzero(flat)
    assert design.nnz < design.flat_nnz


def test_rows_and_dtype_keep_the_blocks():
    design, flat = small_design()
    rows = np.array([5, 0, 7, 7])
    np.testing.assert_array_equal(design[rows].to_csr().toarray(), flat[rows])
    np.testing.assert_array_equal(design[2:9].to_csr().toarray(), flat[2:9])
    small = design.astype(np.float32)
    assert small.to_csr().dtype == np.float32 and small.groups == design.groups


@pytest.mark.parametrize(
    "make, error, message",
    [
        (
            lambda: RelationBlock(np.eye(3), [0, 3]),
            ValueError,
            r"block\.index.*0\.\.2.*e\.g\. 3",
        ),
        (
            lambda: RelationBlock(np.eye(3), [0, -1]),
            ValueError,
            r"block\.index.*e\.g\. -1",
        ),
        (lambda: RelationBlock(np.eye(3), [0.0, 1.0]), TypeError, r"integer.*float64"),
        (lambda: RelationBlock(np.eye(3), [[0, 1]]), ValueError, r"1-D.*\(1, 2\)"),
        (
            lambda: RelationBlock(np.eye(3) * np.nan, [0]),
            ValueError,
            r"block\.data.*finite",
        ),
        (
            lambda: RelationalDesign(
                np.eye(2), [RelationBlock(np.eye(3), [0, 1, 2], "u")]
            ),
            ValueError,
            r"same ratings.*'X': 2.*'u\.index': 3",
        ),
        (lambda: RelationalDesign(None, []), ValueError, "needs a main block"),
        (
            lambda: RelationalDesign(np.eye(2), RelationBlock(np.eye(2), [0, 1])),
            TypeError,
            "list of RelationBlock",
        ),
        (
            lambda: RelationalDesign(np.eye(2), [np.eye(2)]),
            TypeError,
            r"blocks\[0\].*ndarray",
        ),
        (
            lambda: RelationalDesign(np.eye(2), groups={"a": slice(0, 1)}),
            ValueError,
            "cover every one",
        ),
        (
            lambda: RelationalDesign(np.eye(2), feature_names=["a"]),
            ValueError,
            r"one name per column \(2\); got 1",
        ),
    ],
)
def test_bad_designs_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_group_across_two_blocks_is_refused_by_the_schedule():
    design, _ = small_design()
    with pytest.raises(ValueError, match=r"'mixed' has columns in 2 blocks"):
        relational_schedule(design, {"mixed": slice(0, 6), "rest": slice(6, 16)})


def test_movielens_design_is_the_flat_encoders_matrix_with_columns_reordered(movielens):
    train, test = (
        movielens.with_side_features(d, dates=True) for d in movielens.split("u1")
    )
    train, test = train.iloc[:3000], test.iloc[:500]
    d_train, d_test = movielens_design(train, test)
    encoder = fmlib.FeatureEncoder(
        categorical=[
            "user",
            "item",
            "age_bucket",
            "gender",
            "occupation",
            "release_year",
        ],
        multi_hot=["genres"],
        implicit=("user", "item"),
        implicit_items=("item", "user"),
        implicit_norm="sqrt",
    )
    X, X_test = encoder.fit_transform(train), encoder.transform(test)
    where = {name: j for j, name in enumerate(encoder.feature_names_)}
    order = [where[name] for name in d_train.feature_names]
    assert sorted(order) == list(range(X.shape[1]))
    assert abs(d_train.to_csr() - X[:, order]).max() == 0
    assert abs(d_test.to_csr() - X_test[:, order]).max() == 0
    assert d_train.nnz * 20 < d_train.flat_nnz  # what the blocks save


# --- predictions ----------------------------------------------------------------------
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_predictions_equal_equation_1_on_the_flat_matrix(main):
    design, flat = small_design(main=main)
    w0, w, V = params(flat.shape[1])
    expected = fm_definition(flat, w0, w, V)
    np.testing.assert_allclose(
        predict(design, w0, w, V, batch_size=7), expected, rtol=1e-12, atol=1e-12
    )
    got = predict_tf(
        design, tf.constant(w0, tf.float64), tf.constant(w), tf.constant(V)
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    rows = np.array([3, 3, 11, 0])
    np.testing.assert_allclose(
        predict_tf(design, w0, tf.constant(w), tf.constant(V), rows=rows).numpy(),
        expected[rows],
        rtol=1e-12,
    )


def test_tf_gradients_equal_equation_4_summed_over_the_flat_rows():
    design, flat = small_design()
    w0, w, V = params(flat.shape[1], seed=4)
    weights = np.random.default_rng(5).normal(size=flat.shape[0])  # d loss / d y_hat_i
    w0_t, w_t, V_t = (tf.Variable(a, dtype=tf.float64) for a in (w0, w, V))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * predict_tf(design, w0_t, w_t, V_t))
    g_w0, g_w, g_V = tape.gradient(loss, [w0_t, w_t, V_t])
    expected = [
        sum(c * np.asarray(g) for c, g in zip(weights, parts))
        for parts in zip(*(fm_gradient(x, V) for x in flat))
    ]
    np.testing.assert_allclose(g_w0.numpy(), expected[0], rtol=1e-10)
    np.testing.assert_allclose(
        tf.convert_to_tensor(g_w).numpy(), expected[1], rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        tf.convert_to_tensor(g_V).numpy(), expected[2], rtol=1e-10, atol=1e-12
    )


def test_model_predict_accepts_a_relational_design():
    design, flat = small_design()
    fm = fmlib.FactorizationMachine(flat.shape[1], k=K, seed=0, dtype=tf.float64)
    np.testing.assert_allclose(
        fm.predict(design, batch_size=8), fm.predict(flat), rtol=1e-12
    )


# --- sweeps ---------------------------------------------------------------------------
def test_schedule_is_block_schedule_of_the_flat_matrix():
    design, flat = small_design()
    flat_schedule = block_schedule(sp.csr_matrix(flat), design.groups)
    ours = [cols for _, colours in relational_schedule(design) for cols in colours]
    assert [c.tolist() for c in ours] == [c.tolist() for c in flat_schedule]


def all_q(sweeper):
    """(N, k): the sweeper's one-factor q, factor after factor."""
    return np.stack([sweeper.factor_q(f).copy() for f in range(sweeper.k)], axis=1)


@pytest.mark.parametrize("sample", [False, True], ids=["als", "gibbs"])
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_one_sweep_equals_one_parameter_at_a_time_on_the_flat_matrix(sample, main):
    design, flat = small_design(main=main)
    N, n = flat.shape
    rng = np.random.default_rng(2)
    y = rng.normal(size=N)
    w0, w, V = params(n)
    alpha = 1.6 if sample else 1.0
    mu = {
        "w0": np.zeros(()),
        "w": rng.normal(size=n) * sample,
        "V": rng.normal(size=(n, K)) * sample,
    }
    lam = {
        "w0": np.zeros(()),
        "w": rng.uniform(0.5, 2, n),
        "V": rng.uniform(0.5, 2, (n, K)),
    }
    z = {
        "w0": rng.normal(size=()),
        "w": rng.normal(size=n),
        "V": rng.normal(size=(n, K)),
    }
    sweeper = RelationalSweeper(design, y, w0, w, V, design.groups)
    sweeper.update_w0(alpha, 0.0, 0.0, float(z["w0"]), sample)
    sweeper.update_w(alpha, mu["w"], lam["w"], z["w"], sample)
    sweeper.update_V(alpha, mu["V"], lam["V"], z["V"], sample)

    ref_w0, ref_w, ref_V = reference_sweep(
        flat, y, w0, w, V, sweeper.schedule, alpha, mu, lam, z, sample
    )
    np.testing.assert_allclose(sweeper.w0, ref_w0, rtol=1e-9)
    np.testing.assert_allclose(sweeper.w, ref_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sweeper.V, ref_V, rtol=1e-9, atol=1e-12)
    # the caches were kept exact: residuals and q equal a fresh computation
    np.testing.assert_allclose(
        sweeper.e, y - fm_definition(flat, ref_w0, ref_w, ref_V), atol=1e-10
    )
    np.testing.assert_allclose(all_q(sweeper), flat @ ref_V, atol=1e-10)
    sweeper.refresh()  # and so does a refresh from the parameters
    np.testing.assert_allclose(
        sweeper.e, y - fm_definition(flat, ref_w0, ref_w, ref_V), atol=1e-10
    )
    np.testing.assert_allclose(all_q(sweeper), flat @ ref_V, atol=1e-10)


def test_fit_als_on_the_design_equals_fit_als_on_the_flat_matrix():
    design, flat = small_design(n_rows=60, seed=3)
    y = np.random.default_rng(6).normal(3, 1, flat.shape[0])
    histories, weights = [], []
    for X in (design, flat):
        fm = fmlib.FactorizationMachine(
            flat.shape[1], k=K, init_std=0.1, seed=0, dtype=tf.float64
        )
        histories.append(
            fmlib.fit(
                fm,
                X,
                y,
                solver="als",
                num_epochs=4,
                lambda_w=0.5,
                lambda_v=0.5,
                groups=design.groups,
                validation_data=(X[:10], y[:10]),
            )
        )
        weights.append(fm.get_weights())
    np.testing.assert_allclose(
        histories[0].to_numpy(), histories[1].to_numpy(), rtol=1e-9
    )
    for key in ("w0", "w", "V"):
        np.testing.assert_allclose(
            weights[0][key], weights[1][key], rtol=1e-8, atol=1e-12
        )


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_bayesian_fm_on_the_design_equals_it_on_the_flat_matrix(task):
    design, flat = small_design(n_rows=80, seed=4)
    rng = np.random.default_rng(7)
    y = (
        rng.normal(3, 1, flat.shape[0])
        if task == "regression"
        else rng.integers(0, 2, 80)
    )
    test, flat_test = design[::3], flat[::3]
    fits = [
        fmlib.BayesianFM(
            k=K, num_sweeps=6, burn_in=2, task=task, groups=design.groups, seed=0
        ).fit(X, y, X_test, y[::3])
        for X, X_test in ((design, test), (sp.csr_matrix(flat), flat_test))
    ]
    np.testing.assert_allclose(
        fits[0].trace_.to_numpy(), fits[1].trace_.to_numpy(), rtol=1e-8
    )
    for key in ("w0", "w", "V"):
        np.testing.assert_allclose(
            fits[0].samples_[key], fits[1].samples_[key], rtol=1e-8, atol=1e-10
        )
    np.testing.assert_allclose(
        fits[0].predict(test), fits[1].predict(flat_test), rtol=1e-9
    )


def test_gradient_fit_on_a_design_trains_on_its_flat_matrix():
    """fit(solver='gradient') on relation blocks equals fit on design.to_csr(), step for step."""
    design, flat = small_design()
    y = np.random.default_rng(3).normal(size=flat.shape[0])
    weights = []
    for X in (design, design.to_csr()):
        fm = fmlib.FactorizationMachine(design.shape[1], k=2, seed=0, dtype=tf.float64)
        fmlib.fit(fm, X, y, num_epochs=2, batch_size=5, updates="sparse", seed=0)
        weights.append(fm.get_weights()["V"])
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12)
