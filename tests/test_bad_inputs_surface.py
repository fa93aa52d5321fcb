"""Bad and edge inputs on the newer surface (issue #31): a clear error naming the argument, or the
exact answer; never a silently wrong number or a raw internal trace.

As in ``tests/test_bad_inputs.py`` each case asserts the exception type and that the message
names the argument (``match``). Only public ``fmlib`` names are used. Cases are grouped by area.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf

import fmlib

X, Y, _ = fmlib.rendle_figure1()


# ---------------------------------------------------------------- ranking metrics

SCORES = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
TARGETS = np.array([2, 1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        # zero contexts: no average exists (NaN with a RuntimeWarning before)
        (
            {"scores": np.zeros((0, 4)), "targets": np.zeros(0, int)},
            ValueError,
            "`scores`.*no contexts|`scores`.*0",
        ),
        # float item indices were truncated
        ({"targets": np.array([2.7, 1.0])}, (TypeError, ValueError), "`targets`"),
        ({"targets": [2.0, 1.0]}, (TypeError, ValueError), "`targets`"),
        # complex scores were accepted (their real part ranked)
        ({"scores": SCORES + 1j}, (TypeError, ValueError), "`scores`"),
        ({"scores": SCORES.astype(object)}, (TypeError, ValueError), "`scores`"),
        ({"scores": np.ones((2, 4), bool)}, (TypeError, ValueError), "`scores`"),
        # a 0/1 nested-list mask was read as lists of item indices (items 0 and 1 excluded)
        ({"exclude": [[0, 1, 0, 0], [1, 0, 0, 0]]}, ValueError, "`exclude`"),
        ({"exclude": [[0, 0], [1, 1]]}, ValueError, r"`exclude\[0\]`.*repeats"),
        ({"exclude": [[0.5], [1]]}, (TypeError, ValueError), r"`exclude\[0\]`"),
        ({"exclude": [[0], [7]]}, ValueError, r"`exclude\[1\]`"),
        ({"exclude": np.full((2, 4), 2)}, ValueError, "`exclude`"),
        ({"k": 0}, ValueError, "`k`"),
        ({"k": 2.5}, TypeError, "`k`"),
        ({"n_negatives": 0}, ValueError, "`n_negatives`"),
        ({"n_negatives": "3"}, TypeError, "`n_negatives`"),
    ],
)
def test_ranking_metrics_arguments(kwargs, error, match):
    args = {"scores": SCORES, "targets": TARGETS} | kwargs
    with pytest.raises(error, match=match):
        fmlib.ranking_metrics(**args)


def test_ranking_auc_undefined_is_not_zero():
    """One candidate only (all others excluded): the rank is 1 but AUC has no pairs to average.

    It was reported as 0.0 next to HR = MRR = 1; it must be NaN-free and refused, or left out
    with the number of contexts it is defined on."""
    exclude = np.array([[True, True, False, True], [True, False, True, True]])
    try:
        m = fmlib.ranking_metrics(SCORES, TARGETS, exclude=exclude, k=1)
    except ValueError as err:
        assert "auc" in str(err).lower() or "candidate" in str(err).lower()
        return
    assert m["hr@1"] == 1.0 and m["mrr"] == 1.0
    assert m.get("auc") is None or (
        isinstance(m["auc"], float) and math.isnan(m["auc"])
    ), m


def test_ranking_auc_averages_only_defined_contexts():
    """Context 0 has only its target; context 1 ranks its target above the 3 others (AUC 1)."""
    exclude = np.array([[True, True, False, True], [False, False, False, False]])
    m = fmlib.ranking_metrics(SCORES, TARGETS, exclude=exclude, k=1)
    assert m["auc"] == 1.0  # the context with no pairs does not drag it to 0.5


def test_ranking_boolean_nested_lists_are_a_mask():
    mask = [[True, False, False, False], [False, False, True, False]]
    assert fmlib.ranking_metrics(
        SCORES, TARGETS, exclude=mask, k=1
    ) == fmlib.ranking_metrics(SCORES, TARGETS, exclude=np.array(mask), k=1)


def test_ranking_nested_lists_of_indices_still_work():
    """Index lists stay accepted: item 0 excluded for context 0 lifts the target to rank 1."""
    m = fmlib.ranking_metrics(SCORES, TARGETS, exclude=[[0], []], k=1)
    assert m["hr@1"] == 1.0


@pytest.mark.parametrize(
    "timestamps, error, match",
    [
        ([1.0, np.nan, 3.0, 4.0], ValueError, "`timestamps`.*NaN|`timestamps`.*finite"),
        ([1.0, 2.0, np.inf, 4.0], ValueError, "`timestamps`"),
        (["a", "b", "c", "d"], TypeError, "`timestamps`"),
        ([1 + 1j, 2, 3, 4], TypeError, "`timestamps`"),
    ],
)
def test_leave_last_out_timestamps(timestamps, error, match):
    with pytest.raises(error, match=match):
        fmlib.leave_last_out([7, 7, 8, 8], timestamps)


# ---------------------------------------------------------------- relational designs


def _design():
    rng = np.random.default_rng(0)
    block = fmlib.RelationBlock(rng.random((3, 4)) + 0.25, [0, 1, 2, 1, 0], name="user")
    return fmlib.RelationalDesign(sp.csr_matrix(rng.random((5, 2)) + 0.25), [block])


@pytest.mark.parametrize("dtype", [np.int32, "int64", np.uint8, bool, tf.int32])
def test_relational_design_refuses_integer_dtype(dtype):
    """Casting to an integer dtype truncated every value (0.7 -> 0) silently."""
    with pytest.raises((TypeError, ValueError), match="`dtype`"):
        _design().astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float64", tf.float32])
def test_relational_design_float_dtypes_keep_values(dtype):
    d = _design()
    flat = d.to_csr().toarray()
    cast = d.astype(dtype).to_csr().toarray()
    np.testing.assert_allclose(cast, flat, rtol=1e-6)


def _ratings():
    return pd.DataFrame(
        {
            "user": [1, 1, 2, 2, 3],
            "item": [10, 11, 10, 12, 11],
            "rating": [4, 3, 5, 2, 1],
            "timestamp": [1, 2, 3, 4, 5],
            "age_bucket": [0, 0, 1, 1, 2],
            "gender": ["F", "F", "M", "M", "F"],
            "occupation": ["a", "a", "b", "b", "c"],
            "release_year": [1990, 1991, 1990, 1992, 1991],
            "genres": [["x"], ["y"], ["x"], ["x", "y"], ["y"]],
            "mood": [0, 1, 1, 0, 1],
        }
    )


def test_movielens_design_refuses_a_column_that_is_not_per_user():
    """``mood`` changes within user 1: as a user column, row 0's value was copied to row 1."""
    with pytest.raises(ValueError, match="`user_columns`.*mood"):
        fmlib.movielens_design(_ratings(), user_columns=("user", "mood"))


def test_movielens_design_refuses_a_column_that_is_not_per_item():
    frame = _ratings()
    frame["release_year"] = [1990, 1991, 2000, 1992, 1991]  # item 10: two years
    with pytest.raises(ValueError, match="`item_columns`.*release_year"):
        fmlib.movielens_design(frame)


# ---------------------------------------------------------------- the FM family


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("order", [5, 6, 9])
def test_anova_order_above_the_number_of_features_is_zero(dtype, order):
    """No set of `order` distinct features exists among 4: the kernel is exactly 0
    (float32 power sums returned up to 1.8)."""
    rng = np.random.default_rng(1)
    Xd = rng.normal(size=(6, 4)) * 3
    P = tf.constant(rng.normal(size=(4, 3)) * 3, dtype)
    out = fmlib.anova_fast(tf.constant(Xd, dtype), P, order).numpy()
    np.testing.assert_array_equal(out, np.zeros(6))
    np.testing.assert_array_equal(fmlib.anova_naive(Xd, P.numpy(), order), np.zeros(6))


@pytest.mark.parametrize("order", [10**5, 10**9])
def test_higher_order_builder_bounds_the_order(order):
    """An order of 10^5 built for minutes; it cannot exceed the number of features."""
    with pytest.raises(ValueError, match="`order`"):
        fmlib.build_higher_order_fm_model(50, order=order, k=2)


@pytest.mark.parametrize("order", [10**5, 10**9])
def test_anova_of_a_huge_order_is_zero_at_once(order):
    """More than n distinct features: the exact kernel is 0, and it takes no work to say so."""
    import time

    started = time.perf_counter()
    out = fmlib.anova_fast(np.ones((2, 3)), np.ones((3, 2)), order)
    assert time.perf_counter() - started < 5
    np.testing.assert_array_equal(out.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_anova_rows_with_fewer_nonzeros_than_the_order_are_exactly_zero(dtype):
    """Row 0 has 2 non-zeros of 8 features: A^4 is exactly 0 (no 4 distinct present features);
    row 1 is compared with the subset definition."""
    rng = np.random.default_rng(3)
    Xd = np.zeros((2, 8))
    Xd[0, [1, 5]] = [7.0, -9.0]
    Xd[1] = rng.normal(size=8)
    P = rng.normal(size=(8, 2)) * 4
    out = fmlib.anova_fast(tf.constant(Xd, dtype), tf.constant(P, dtype), 4).numpy()
    assert out[0] == 0.0
    np.testing.assert_allclose(
        out[1],
        fmlib.anova_naive(Xd, P, 4)[1],
        rtol=1e-3 if dtype == tf.float32 else 1e-9,
    )


@pytest.mark.parametrize("labels", [[0, 2], [1, 2], [-1, 0], [0, 0.5]])
def test_deepfm_classifier_refuses_labels_other_than_0_1(labels):
    model = fmlib.build_deepfm_model(
        [3, 4], k=2, hidden_units=(4,), task="classification", seed=0
    )
    model.compile(optimizer="adam")
    Xf = np.array([[0, 1], [1, 2], [2, 3], [0, 0]])
    y = np.array(labels * 2, float)
    with pytest.raises(ValueError, match="`y`|labels"):
        model.fit(Xf, y, epochs=1, verbose=0)


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("dtype", [np.int32, np.int64, "int16", bool])
def test_stream_chunk_refuses_integer_dtype(dtype):
    stream = fmlib.stream_ratings(20, 10, 100, chunk_size=50, seed=0)
    with pytest.raises((TypeError, ValueError), match="`dtype`"):
        stream.chunk(0, dtype=dtype)


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.bool, tf.string])
def test_stream_dataset_refuses_integer_dtype(dtype):
    stream = fmlib.stream_ratings(20, 10, 100, chunk_size=50, seed=0)
    with pytest.raises((TypeError, ValueError), match="`dtype`"):
        stream.dataset(16, dtype=dtype)


# ---------------------------------------------------------------- fit on datasets


def _endless(n=16):
    rows = tf.data.Dataset.from_tensor_slices(
        (X.astype(np.float32), Y.astype(np.float32))
    )
    return rows.batch(4).repeat()


def test_fit_refuses_an_endless_dataset_without_a_limit():
    with pytest.raises(
        ValueError, match="`X`.*endless|`X`.*infinite|`steps_per_epoch`"
    ):
        fmlib.fit(
            fmlib.FactorizationMachine(16, k=2, seed=0), _endless(), None, num_epochs=1
        )


def test_fit_on_an_endless_dataset_with_a_limit_takes_that_many_steps():
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    history = fmlib.fit(
        fm, _endless(), None, num_epochs=3, steps_per_epoch=5, optimizer="sgd", lr=0.01
    )
    assert list(history.index) == [1, 2, 3]
    # one epoch of 5 SGD steps equals 5 manual passes of the same batches
    ref = fmlib.FactorizationMachine(16, k=2, seed=0)
    fit_one = fmlib.fit(
        ref, _endless().take(5), None, num_epochs=1, optimizer="sgd", lr=0.01
    )
    fm1 = fmlib.FactorizationMachine(16, k=2, seed=0)
    h1 = fmlib.fit(
        fm1, _endless(), None, num_epochs=1, steps_per_epoch=5, optimizer="sgd", lr=0.01
    )
    np.testing.assert_allclose(
        h1["loss"].to_numpy(), fit_one["loss"].to_numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(fm1.V.numpy(), ref.V.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "steps, error",
    [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("5", TypeError)],
)
def test_fit_steps_per_epoch_checked(steps, error):
    with pytest.raises(error, match="`steps_per_epoch`"):
        fmlib.fit(
            fmlib.FactorizationMachine(16, k=2, seed=0),
            _endless(),
            None,
            num_epochs=1,
            steps_per_epoch=steps,
        )


@pytest.mark.parametrize("index", [16, 1000, -1])
def test_fit_dataset_with_out_of_range_ids(index):
    """A sparse batch whose column id is beyond the model's width surfaced as graph text."""
    st = tf.SparseTensor([[0, 0], [1, index]], [1.0, 1.0], [2, 16])
    data = tf.data.Dataset.from_tensors((st, tf.constant([1.0, 2.0])))
    with pytest.raises(ValueError, match=r"`X`.*(ind|column).*\[0, 16\)"):
        fmlib.fit(fmlib.FactorizationMachine(16, k=2, seed=0), data, None, num_epochs=1)


# ---------------------------------------------------------------- a wrong object for a model


class NotAModel:
    w0 = w = V = None


@pytest.mark.parametrize(
    "call",
    [
        lambda m: fmlib.recommend(m, np.ones((1, 2)), np.eye(3), k=1),
        lambda m: fmlib.catalogue_scores(m, np.ones((1, 2)), np.eye(3)),
        lambda m: fmlib.fit_bpr(m, np.eye(2), np.eye(3), [0, 1], [0, 1], num_epochs=1),
        lambda m: fmlib.FactorizationMachine.save(m, "x.npz"),
        lambda m: fmlib.FactorizationMachine.export(m, "x_model"),
        lambda m: fmlib.fit(m, np.eye(2), [1.0, 2.0]),
        lambda m: fmlib.evaluate(m, np.eye(2), [1.0, 2.0]),
    ],
)
@pytest.mark.parametrize("thing", [NotAModel(), "model.npz", None])
def test_wrong_object_where_a_model_is_expected(tmp_path, monkeypatch, call, thing):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="`model`|`self`|FactorizationMachine"):
        call(thing)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content", [b"not a zip archive at all" * 10, b"PK\x03\x04" + b"\0" * 50, b""]
)
def test_garbage_keras_file_is_named(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="`path`.*model.keras.*not a .keras"):
        fmlib.FMModel.load(path)


def test_missing_keras_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`.*nothing.keras"):
        fmlib.FMModel.load(tmp_path / "nothing.keras")


def test_keras_round_trip_through_load(tmp_path):
    model = fmlib.build_fm_model(5, k=2, seed=0)
    model.compile()
    x = np.random.default_rng(0).random((3, 5)).astype("float32")
    model.save(tmp_path / "m.keras")
    back = fmlib.FMModel.load(tmp_path / "m.keras")
    np.testing.assert_allclose(
        back.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


@pytest.mark.parametrize("content", [b"garbage" * 10, b"PK\x03\x04 broken"])
def test_garbage_npz_file_gives_no_unsafe_advice(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(
        ValueError, match="model.keras.*not a FactorizationMachine"
    ) as info:
        fmlib.FactorizationMachine.load(path)
    assert "allow_pickle" not in str(info.value)


# ---------------------------------------------------------------- estimators


@pytest.mark.parametrize("est", [fmlib.FMRegressor, fmlib.FMClassifier])
@pytest.mark.parametrize(
    "lr, error",
    [
        (float("nan"), ValueError),
        (-0.1, ValueError),
        (0, ValueError),
        ("0.1", TypeError),
        (float("inf"), ValueError),
    ],
)
def test_estimators_check_lr(est, lr, error):
    y = (Y > 3).astype(int) if est is fmlib.FMClassifier else Y
    with pytest.raises(error, match="`lr`"):
        est(k=2, lr=lr, num_epochs=1, solver="sgd").fit(X, y)


@pytest.mark.parametrize("est", [fmlib.FMRegressor, fmlib.FMClassifier])
def test_estimator_divergence_quotes_the_users_lr(est):
    y = (Y > 3).astype(int) if est is fmlib.FMClassifier else Y * 1e6
    with pytest.raises(
        fmlib.TrainingDivergedError, match=r"lr=1e\+30|lr=1e30|lr=1\.0e\+30"
    ) as info:
        est(k=2, lr=1e30, num_epochs=3, solver="sgd", random_state=0).fit(X * 1e3, y)
    assert "0.01" not in str(info.value)


# ---------------------------------------------------------------- solvers: overflow is divergence


@pytest.mark.parametrize("scale", [1e160, 1e200])
@pytest.mark.parametrize("lambdas", [(0.0, 0.0), (0.5, 2.0)])
def test_als_overflow_is_a_divergence_quoting_the_users_arguments(scale, lambdas):
    fm = fmlib.FactorizationMachine(16, k=2, seed=0, dtype=tf.float64)
    with (
        np.errstate(all="ignore"),
        pytest.raises(
            fmlib.TrainingDivergedError,
            match=rf"ALS sweep 1.*lambda_w={lambdas[0]}, lambda_v={lambdas[1]}",
        ),
    ):
        fmlib.fit(
            fm,
            X * scale,
            Y * scale,
            solver="als",
            num_epochs=3,
            lambda_w=lambdas[0],
            lambda_v=lambdas[1],
        )


@pytest.mark.parametrize("k, sweeps", [(2, 5), (3, 7)])
def test_sampler_overflow_is_a_divergence_quoting_the_users_arguments(k, sweeps):
    with (
        np.errstate(all="ignore"),
        pytest.raises(
            fmlib.TrainingDivergedError,
            match=rf"MCMC sweep.*k={k}, num_sweeps={sweeps}",
        ),
    ):
        fmlib.BayesianFM(k=k, num_sweeps=sweeps, seed=0).fit(X * 1e200, Y * 1e150)
