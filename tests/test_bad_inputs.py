"""Bad and edge inputs at every public entry point: a clear error naming the argument, or a hang bound.

Each case asserts the exception type and that the message names the argument (``match``), so a
raw TensorFlow, numpy or pandas trace, or a silently wrong result, fails the test. Cases are
grouped by class of defect (issue #20); each class has several members.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

import fmlib

X, Y, _ = fmlib.rendle_figure1()


def fm(**kwargs):
    return fmlib.FactorizationMachine(16, k=2, **({"seed": 0} | kwargs))


# ------------------------------------------------------------ scalar arguments


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"seed": "x"}, TypeError, "`seed`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"seed": 1.5}, TypeError, "`seed`"),
        ({"dtype": "floaty"}, TypeError, "`dtype`"),
        ({"dtype": tf.int32}, ValueError, "`dtype`"),
        ({"dtype": object()}, TypeError, "`dtype`"),
        ({"init_std": "a"}, TypeError, "`init_std`"),
        ({"init_std": float("nan")}, ValueError, "`init_std`"),
        ({"init_std": -1}, ValueError, "`init_std`"),
        ({"pairwise": ["fast"]}, ValueError, "`pairwise`"),
    ],
)
def test_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fm(**kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"shuffle": "no"}, TypeError, "`shuffle`"),
        ({"shuffle": 1}, TypeError, "`shuffle`"),
        ({"seed": "x"}, TypeError, "`seed`"),
        ({"seed": -3}, ValueError, "`seed`"),
        ({"lr": "0.1", "optimizer": "sgd"}, TypeError, "`lr`"),
        ({"lr": float("nan")}, ValueError, "`lr`"),
        ({"lambda_w": -1.0}, ValueError, "`lambda_w`"),
        ({"validation_data": (X[:0], Y[:0])}, ValueError, r"`validation_data\[0\]`.*0"),
    ],
)
def test_fit_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fmlib.fit(fm(), X, Y, num_epochs=1, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": float("nan")}, ValueError, "`lr`"),
        ({"lr": -0.1}, ValueError, "`lr`"),
        ({"lr": 0}, ValueError, "`lr`"),
        ({"lr": "a"}, TypeError, "`lr`"),
        ({"y_true": Y * np.nan}, ValueError, "`y_true`"),
        ({"y_true": np.r_[Y[:-1], np.inf]}, ValueError, "`y_true`"),
        ({"y_true": Y[:3]}, ValueError, "`y_true`"),
        ({"x": X * np.nan}, ValueError, "`x`"),
    ],
)
def test_train_step_checks_like_fit(kwargs, error, match):
    args = {"x": X, "y_true": Y, "lr": 0.01, **kwargs}
    with pytest.raises(error, match=match):
        fmlib.train_step(fm(), **args)


def test_train_step_refuses_other_models():
    with pytest.raises(TypeError, match="`mod`"):
        fmlib.train_step(object(), X, Y, lr=0.1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"w0": np.nan}, ValueError, "`w0`"),
        ({"w": np.full(16, np.inf)}, ValueError, "`w`"),
        ({"V": np.zeros((16, 3))}, ValueError, r"`V`.*\(16, 2\)"),
        ({"w": np.zeros(15)}, ValueError, "`w`"),
        ({"w0": "a"}, TypeError, "`w0`"),
        ({"V": [["a", "b"]] * 16}, TypeError, "`V`"),
        ({"w": np.full(16, 1e39)}, ValueError, "`w`.*float32"),
    ],
)
def test_set_weights_is_checked_and_all_or_nothing(kwargs, error, match):
    model = fm()
    before = model.get_weights()
    with pytest.raises(
        error, match=match
    ):  # a good w0 next to a bad w or V is not assigned
        model.set_weights(**({"w0": 1.0} | kwargs))
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fmlib.l2_penalty(fm(), lambda_w=-1.0), ValueError, "`lambda_w`"),
        (
            lambda: fmlib.l2_penalty(fm(), lambda_v=float("nan")),
            ValueError,
            "`lambda_v`",
        ),
        (lambda: fmlib.l2_penalty(fm(), lambda_v="a"), TypeError, "`lambda_v`"),
        (
            lambda: fmlib.logistic_loss(np.array([0.0, 2.0]), np.zeros(2)),
            ValueError,
            "`y_true`",
        ),
        (
            lambda: fmlib.logistic_loss(np.array([-1.0, 1.0]), np.zeros(2)),
            ValueError,
            "`y_true`",
        ),
        (
            lambda: fmlib.logistic_loss(np.array([np.nan, 1.0]), np.zeros(2)),
            ValueError,
            "`y_true`",
        ),
    ],
)
def test_losses(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------ the shared input gate


@pytest.mark.parametrize(
    "make",
    [
        lambda: X * 1e39,  # float64, finite, beyond float32
        lambda: sp.csr_matrix(X * 1e39),
        lambda: tf.constant(X * 1e39),
        lambda: tf.sparse.from_dense(tf.constant(X * 1e39)),
    ],
)
def test_float64_beyond_float32_range_is_an_error(make):
    with pytest.raises(ValueError, match="`X`.*float32"):
        fm()(make())
    with pytest.raises(ValueError, match="`X`.*float32"):
        fm().predict(make())
    fm(dtype=tf.float64)(make())  # fits in float64: accepted


def test_targets_beyond_float32_range_are_an_error():
    with pytest.raises(ValueError, match="`y`.*float32"):
        fmlib.fit(fm(), X, Y * 1e39, num_epochs=1)


@pytest.mark.parametrize("fmt", ["dok", "lil", "csc", "coo", "bsr", "dia"])
def test_every_scipy_format_is_accepted(fmt):
    model = fm(init_std=0.3)
    expected = model(X).numpy()
    Xs = sp.csr_matrix(X).asformat(fmt)
    np.testing.assert_allclose(model(Xs).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(Xs), expected, rtol=1e-5)
    np.testing.assert_allclose(
        fmlib.to_sparse_tensor(Xs).values.numpy().sum(), X.sum(), rtol=1e-6
    )


def _duplicated(rows):
    """X's rows as a SparseTensor in which every entry is split into two halves (same index twice)."""
    coo = sp.coo_matrix(X[rows])
    idx = np.stack([coo.row, coo.col], 1)
    return tf.SparseTensor(
        np.repeat(idx, 2, axis=0), np.repeat(coo.data / 2, 2), coo.shape
    )


def test_duplicate_sparse_indices_are_summed_in_every_path():
    model = fm(init_std=0.5)
    rows = [0, 3, 6]
    expected = model(X[rows]).numpy()
    st = _duplicated(rows)
    np.testing.assert_allclose(model(st).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(st), expected, rtol=1e-5)
    np.testing.assert_allclose(
        fmlib.pairwise_fast(st, model.V).numpy(),
        fmlib.pairwise_fast(X[rows], model.V).numpy(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        fmlib.evaluate(model, st, Y[rows])["loss"],
        fmlib.evaluate(model, X[rows], Y[rows])["loss"],
        rtol=1e-5,
    )


@pytest.mark.parametrize("index", [[1, 16], [1, -1], [2, 0], [-1, 3]])
def test_sparse_tensor_indices_outside_its_shape(index):
    st = tf.SparseTensor([[0, 0], index], [1.0, 1.0], [2, 16])
    with pytest.raises(ValueError, match="`X`.*outside"):
        fm()(st)
    with pytest.raises(ValueError, match="`X`.*outside"):
        fm().predict(st)
    with pytest.raises(ValueError, match="`X`.*outside"):
        fmlib.to_sparse_tensor(st)


@pytest.mark.parametrize(
    "dtype, error",
    [
        (tf.int32, ValueError),
        (tf.int64, ValueError),
        ("floaty", TypeError),
        (tf.bool, ValueError),
    ],
)
def test_to_sparse_tensor_never_truncates(dtype, error):
    with pytest.raises(error, match="`dtype`"):
        fmlib.to_sparse_tensor(X * 0.5, dtype=dtype)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: fmlib.evaluate(m, X[:0], Y[:0]),
        lambda m: fmlib.evaluate(m, sp.csr_matrix((0, 16)), []),
        lambda m: fmlib.fit(
            m, X, Y, num_epochs=1, validation_data=(sp.csr_matrix((0, 16)), [])
        ),
        lambda m: fmlib.fit(m, X[:0], Y[:0], num_epochs=1),
    ],
)
def test_empty_evaluation_sets_are_errors_not_nan(call):
    with pytest.raises(ValueError, match="`(X|validation_data\\[0\\])`.*(0|no rows)"):
        call(fm())


# ------------------------------------------------------------ divergence is never returned silently


@pytest.mark.parametrize(
    "optimizer, lr, scale",
    [("sgd", 1e12, 100), ("sgd", 1e3, 100), ("adam", 1e30, 1), ("adagrad", 1e30, 1)],
)
def test_fit_never_returns_an_exploded_model(optimizer, lr, scale):
    with pytest.raises(fmlib.TrainingDivergedError, match="lr="):
        fmlib.fit(
            fm(), X * scale, Y, optimizer=optimizer, lr=lr, num_epochs=2, batch_size=3
        )


def test_an_overflowing_validation_loss_is_divergence():
    model = fm(init_std=0.0)
    model.set_weights(w=np.ones(16))
    with pytest.raises(fmlib.TrainingDivergedError, match="validation loss"):
        fmlib.fit(
            model,
            X,
            Y,
            optimizer="sgd",
            lr=1e-9,
            num_epochs=1,
            validation_data=(X * 1e20, Y),
        )


def test_train_step_reports_divergence():
    model = fm()
    with pytest.raises(fmlib.TrainingDivergedError, match="lr="):
        for _ in range(5):
            fmlib.train_step(model, X * 100, Y, lr=1e12)


def test_an_optimizer_instance_is_not_shared_between_models():
    import keras

    opt = keras.optimizers.Adam(0.01)
    fmlib.fit(fm(), X, Y, optimizer=opt, num_epochs=1)
    with pytest.raises(ValueError, match="`optimizer`.*another model"):
        fmlib.fit(fm(), X, Y, optimizer=opt, num_epochs=1)


# ------------------------------------------------------------ Keras layers and models


def _keras(n_features=16, **kwargs):
    model = fmlib.build_fm_model(n_features, k=2, seed=0, **kwargs)
    model.compile(optimizer="adam", loss="mse")
    return model


def _fields(**kwargs):
    model = fmlib.build_fm_model(vocab_sizes=[3, 4], k=2, seed=0, **kwargs)
    model.compile(optimizer="adam", loss="mse")
    return model


IDS = np.array([[0, 1], [2, 3], [1, 0]])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"v_init_std": -1}, ValueError, "`v_init_std`"),
        ({"v_init_std": float("nan")}, ValueError, "`v_init_std`"),
        ({"v_init_std": "a"}, TypeError, "`v_init_std`"),
        ({"with_values": True}, ValueError, "`with_values=True`"),
        ({"with_values": "yes"}, TypeError, "`with_values`"),
        ({"sparse": "no"}, TypeError, "`sparse`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"seed": "x"}, TypeError, "`seed`"),
        ({"l2_w": -0.1}, ValueError, "`l2_w`"),
        ({"k": 0}, ValueError, "`k`"),
    ],
)
def test_build_fm_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fmlib.build_fm_model(16, **kwargs)


@pytest.mark.parametrize(
    "vocab_sizes, error",
    [
        (10, TypeError),
        ("abc", TypeError),
        ([], ValueError),
        ([3, 0], ValueError),
        ([3.5], ValueError),
    ],
)
def test_field_layer_vocab_sizes(vocab_sizes, error):
    with pytest.raises(error, match="`vocab_sizes`"):
        fmlib.FieldFMLayer(vocab_sizes)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fmlib.FMLayer(2)(X * np.nan), "`x`.*finite"),
        (
            lambda: fmlib.FMLayer(2)(tf.sparse.from_dense(tf.constant(X * np.nan))),
            "`x`.*finite",
        ),
        (lambda: _keras()(tf.SparseTensor([[0, 16]], [1.0], [1, 16])), "`x`.*outside"),
        (lambda: _keras()(tf.SparseTensor([[0, -1]], [1.0], [1, 16])), "`x`.*outside"),
        (
            lambda: _fields(with_values=True).predict(
                [IDS, np.full((3, 2), np.nan)], verbose=0
            ),
            "`values`",
        ),
        (
            lambda: _fields(with_values=True)(
                [tf.constant(IDS), tf.fill((3, 2), np.nan)]
            ),
            "`values`",
        ),
        (lambda: _fields()(tf.constant([[0, 4]])), "`ids`.*field 1"),
        (lambda: _fields()(tf.constant([[-1, 0]])), "`ids`.*field 0"),
    ],
)
def test_layers_check_their_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: _keras().fit(X, Y * np.nan, epochs=1, verbose=0), "`y`"),
        (
            lambda: _keras().fit(
                X, Y, epochs=1, verbose=0, validation_data=(X, Y * np.nan)
            ),
            r"`validation_data\[1\]`",
        ),
        (lambda: _keras().fit(X * np.nan, Y, epochs=1, verbose=0), "`x`"),
        (lambda: _fields().fit(IDS, [1.0, np.inf, 2.0], epochs=1, verbose=0), "`y`"),
        (lambda: _keras().predict(X[:0], verbose=0), "`x`.*0"),
        (lambda: _keras().predict(sp.csr_matrix((0, 16)), verbose=0), "`x`.*0"),
        (lambda: _fields().predict(IDS[:0], verbose=0), "`ids`.*0"),
        (lambda: _keras().predict(X * 1e39, verbose=0), "`x`.*float32"),
        (lambda: _keras().predict(X[:, :15], verbose=0), "`x`.*15"),
    ],
)
def test_fm_model_checks_x_and_y(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_fm_model_refuses_non_numeric_targets():
    with pytest.raises(TypeError, match="`y`"):
        _keras().evaluate(X, ["a"] * 7, verbose=0)


@pytest.mark.parametrize("fmt", ["csc", "dok", "lil", "coo"])
def test_fm_model_accepts_every_scipy_format(fmt):
    model = _keras()
    Xs = sp.csr_matrix(X).asformat(fmt)
    model.fit(Xs, Y, epochs=1, verbose=0, validation_data=(Xs, Y))
    np.testing.assert_allclose(
        model.predict(Xs, verbose=0), model.predict(X, verbose=0), rtol=1e-5
    )


def test_fm_model_sums_duplicate_sparse_entries_like_its_call():
    model = _keras(v_init_std=0.5)
    st = _duplicated([0, 3, 6])
    expected = model(tf.constant(X[[0, 3, 6]], tf.float32)).numpy()
    np.testing.assert_allclose(model(st).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(st, verbose=0), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "bad_ids, match", [([[0, 5]], "`ids`"), ([[-1, 0]], "`ids`"), ([[3, 0]], "`ids`")]
)
def test_ids_out_of_range_through_tf_data_is_one_clear_error(bad_ids, match):
    data = tf.data.Dataset.from_tensor_slices((np.r_[IDS, bad_ids], np.ones(4))).batch(
        4
    )
    with pytest.raises(ValueError, match=match) as info:
        _fields().fit(data, epochs=1, verbose=0)
    assert len(str(info.value)) < 300 and "Traceback" not in str(info.value)


def test_nan_values_through_tf_data_is_one_clear_error():
    data = tf.data.Dataset.from_tensor_slices((X * np.nan, Y)).batch(7)
    with pytest.raises(ValueError, match="`x`.*finite") as info:
        _keras(sparse=False).fit(data, epochs=1, verbose=0)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("lr", [1e12, 1e30])
def test_fm_model_fit_raises_on_divergence(lr):
    import keras

    model = fmlib.build_fm_model(16, k=2, seed=0, sparse=False)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    with pytest.raises(fmlib.TrainingDivergedError, match="lr="):
        model.fit(X * 100, Y, epochs=3, verbose=0)


def test_fm_model_flags_an_overflowing_validation_loss():
    import keras

    model = fmlib.build_fm_model(16, k=2, seed=0, sparse=False, v_init_std=0.0)
    model.compile(optimizer=keras.optimizers.SGD(1e-12), loss="mse")
    model.get_layer("fm_layer").w.assign(np.ones(16, np.float32))
    with pytest.raises(fmlib.TrainingDivergedError, match="val_loss"):
        model.fit(X, Y, epochs=1, verbose=0, validation_data=(X * 1e20, Y))


def test_a_keras_optimizer_is_not_shared_between_fm_models():
    first = _keras()
    first.fit(X, Y, epochs=1, verbose=0)
    second = fmlib.build_fm_model(16, k=2)
    second.compile(optimizer=first.optimizer, loss="mse")
    with pytest.raises(ValueError, match="`optimizer`"):
        second.fit(X, Y, epochs=1, verbose=0)


# ------------------------------------------------------------ FeatureEncoder and IndexMap

import pandas as pd  # noqa: E402


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"categorical": "user"}, "`categorical`"),
        ({"categorical": ["user"], "multi_hot": "genres"}, "`multi_hot`"),
        ({"numeric": "age"}, "`numeric`"),
        ({"implicit": "ui"}, "`implicit`"),
        ({"categorical": 3}, "`categorical`"),
    ],
)
def test_encoder_column_arguments_are_lists_not_strings(kwargs, match):
    with pytest.raises(TypeError, match=match):
        fmlib.FeatureEncoder(**kwargs)


@pytest.mark.parametrize(
    "fit_values, new_values",
    [
        (["1", "2"], [1, 2]),
        ([1, 2], ["1", "2"]),
        ([1.0, 2.0], ["a", "b"]),
        ([True, False], ["x", "y"]),
    ],
)
def test_category_kind_mismatch_between_fit_and_transform(fit_values, new_values):
    encoder = fmlib.FeatureEncoder(categorical=["user"]).fit(
        pd.DataFrame({"user": fit_values})
    )
    with pytest.raises(TypeError, match=r"`df\['user'\]`"):
        encoder.transform(pd.DataFrame({"user": new_values}))


def test_unseen_categories_of_the_right_kind_still_give_zero_rows():
    encoder = fmlib.FeatureEncoder(categorical=["user"]).fit(
        pd.DataFrame({"user": [1, 2]})
    )
    assert encoder.transform(pd.DataFrame({"user": [3, 2.0]})).toarray().tolist() == [
        [0, 0],
        [0, 1],
    ]


@pytest.mark.parametrize("values", [[1, "a"], ["1", 2, 3.0], [b"x", "x"]])
def test_mixed_kinds_of_categories_are_refused_at_fit(values):
    with pytest.raises(TypeError, match=r"`df\['user'\]`.*mixes"):
        fmlib.FeatureEncoder(categorical=["user"]).fit(pd.DataFrame({"user": values}))


@pytest.mark.parametrize(
    "frame",
    [pd.DataFrame({"user": []}), pd.DataFrame({"user": pd.Series([], dtype=int)})],
)
def test_fitting_on_an_empty_frame_is_an_error(frame):
    with pytest.raises(ValueError, match="`df`.*no rows"):
        fmlib.FeatureEncoder(categorical=["user"]).fit(frame)


@pytest.mark.parametrize("bad", ["Action", 3, None])
def test_multi_hot_cells_are_checked_on_every_row(bad):
    cells = [("a",)] * 1500 + [bad]
    with pytest.raises(ValueError, match="multi-hot column 'genres'"):
        fmlib.FeatureEncoder(multi_hot=["genres"]).fit(pd.DataFrame({"genres": cells}))


@pytest.mark.parametrize(
    "ids, error, match",
    [
        ("abc", TypeError, "`ids`.*string|`ids`.*str"),
        (b"ab", TypeError, "`ids`"),
        (5, TypeError, "`ids`"),
        ([1, "1"], TypeError, "`ids`.*mixes"),
    ],
)
def test_index_map_arguments(ids, error, match):
    with pytest.raises(error, match=match):
        fmlib.IndexMap(ids)


def test_index_map_refuses_values_of_another_kind():
    with pytest.raises(TypeError, match="`values`"):
        fmlib.IndexMap(["1", "2"]).index([1, 2])


# ------------------------------------------------------------ make_ratings


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"global_bias": float("nan")}, ValueError, "`global_bias`"),
        ({"global_bias": float("inf")}, ValueError, "`global_bias`"),
        ({"global_bias": "3.5"}, TypeError, "`global_bias`"),
        ({"density": "0.1"}, TypeError, "`density`"),
        ({"seed": "x"}, TypeError, "`seed`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"output": ["stars"]}, ValueError, "`output`"),
    ],
)
def test_make_ratings_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fmlib.make_ratings(20, 10, **kwargs)


def _within(seconds, call):
    """Run ``call`` in a thread; fail the test if it has not returned (or raised) in time."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((100, 100), {"n_ratings": 500, "popularity_skew": 60}),
        ((100, 100), {"n_ratings": 500, "activity_skew": 80}),
        ((100, 100), {"n_ratings": 2900, "popularity_skew": 20, "activity_skew": 20}),
    ],
)
def test_extreme_skews_return_distinct_pairs_quickly(args, kwargs):
    data = _within(20, lambda: fmlib.make_ratings(*args, **kwargs))
    assert len(data.ratings) == kwargs["n_ratings"]
    assert not data.ratings[["user", "item"]].duplicated().any()


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((100, 100), {"n_ratings": 500, "popularity_skew": 1e4}),
        ((100, 100), {"n_ratings": 200, "popularity_skew": 1e4, "activity_skew": 1e4}),
        (
            (20000, 20000),
            {"n_ratings": 200000, "popularity_skew": 60, "activity_skew": 60},
        ),
    ],
)
def test_infeasible_skews_are_an_error_not_a_hang(args, kwargs):
    with pytest.raises(ValueError, match="`n_ratings`.*skew|skew.*`n_ratings`"):
        _within(30, lambda: fmlib.make_ratings(*args, **kwargs))


# ------------------------------------------------------------ load_movielens: bounded waits, clear errors

import hashlib  # noqa: E402
import io  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import zipfile  # noqa: E402


class SilentServer:
    """127.0.0.1: accepts connections (or only queues them) and never sends a byte, or only headers."""

    def __init__(self, mode: str):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.conns = []
        if mode != "backlog":
            threading.Thread(target=self._serve, args=(mode,), daemon=True).start()

    def _serve(self, mode):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if mode == "headers":
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial"
                )

    def close(self):
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("mode", ["backlog", "accept", "headers"])
def test_a_server_that_never_answers_times_out(mode, tmp_path):
    server = SilentServer(mode)
    try:
        with pytest.raises(fmlib.MovieLensTimeout, match="0.5 s") as info:
            _within(
                10,
                lambda: fmlib.load_movielens(
                    "ml-100k", data_home=tmp_path, base_url=server.url, timeout=0.5
                ),
            )
    finally:
        server.close()
    assert isinstance(info.value, fmlib.MovieLensError) and "FMLIB_DATA" in str(
        info.value
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_closed_port_fails_fast(tmp_path):
    server = SilentServer("backlog")
    url = server.url
    server.close()
    with pytest.raises(fmlib.MovieLensError, match="FMLIB_DATA"):
        _within(
            5, lambda: fmlib.load_movielens("ml-100k", data_home=tmp_path, base_url=url)
        )


def _truncated_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ml-100k/u.data", "1\t1\t5\t0\n" * 5000)
    data = buffer.getvalue()
    return data[: len(data) // 2]


@pytest.mark.parametrize("upper", [False, True])
def test_a_truncated_zip_matching_its_own_sha256_is_a_clear_error(tmp_path, upper):
    data = _truncated_zip()
    (tmp_path / "ml-100k.zip").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(
        fmlib.MovieLensError, match="not a complete zip"
    ):  # uppercase accepted too
        fmlib.load_movielens(
            "ml-100k",
            data_home=tmp_path,
            zip_sha256=digest.upper() if upper else digest,
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"zip_sha256": "xyz"}, ValueError, "`zip_sha256`"),
        ({"zip_sha256": "0" * 63}, ValueError, "`zip_sha256`"),
        ({"zip_sha256": 5}, ValueError, "`zip_sha256`"),
        ({"name": ["ml-100k"]}, ValueError, "`name`"),
        ({"name": "ml-10m"}, ValueError, "`name`"),
        ({"download": "no"}, TypeError, "`download`"),
        ({"timeout": -1}, ValueError, "`timeout`"),
        ({"timeout": 0}, ValueError, "`timeout`"),
        ({"base_url": "ftp://example.org/"}, ValueError, "`base_url`"),
        ({"data_home": 3}, TypeError, "`data_home`"),
    ],
)
def test_load_movielens_arguments(kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match):
        fmlib.load_movielens(
            **({"data_home": tmp_path, "base_url": "http://127.0.0.1:9/"} | kwargs)
        )


def test_a_data_home_that_is_a_file(tmp_path, monkeypatch):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match="`data_home`.*is a file"):
        fmlib.load_movielens(data_home=path)
    with pytest.raises(ValueError, match="is a file"):
        fmlib.load_movielens(data_home=path / "below")
    monkeypatch.setenv("FMLIB_DATA", str(path))
    with pytest.raises(ValueError, match="FMLIB_DATA.*is a file"):
        fmlib.load_movielens()
