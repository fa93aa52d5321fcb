"""The FM family (fmlib.family) against independent numpy references.

References are written here from the papers' equations with plain loops: Rendle (2010)
eq. (5) for higher orders, Juan et al. (2016) eq. (4) for FFM, Guo et al. (2017) for DeepFM.
"""

import itertools

import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_loop

import fmlib
from fmlib.family import anova_dp


def eq5_term(X, P, order):
    """Rendle eq. (5), one order l: sum over i_1 < ... < i_l of prod x * sum_f prod v."""
    X = np.asarray(X, float)
    n, out = X.shape[1], np.zeros(len(X))
    for r in range(len(X)):
        for idx in itertools.combinations(range(n), order):
            x_prod = np.prod([X[r, i] for i in idx])
            out[r] += x_prod * sum(
                np.prod([P[i, f] for i in idx]) for f in range(P.shape[1])
            )
    return out


def random_rows(batch=6, n=7, density=0.6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, n)) * (rng.random((batch, n)) < density)


# --- the ANOVA kernel


@pytest.mark.parametrize("order", [2, 3, 4])
def test_fast_and_dp_equal_the_naive_subset_sum_and_eq5(order):
    X = random_rows(seed=order)
    P = np.random.default_rng(10 + order).normal(size=(7, 3))
    expected = eq5_term(X, P, order)
    assert len(np.unique(np.round(expected, 6))) == len(X)  # distinct rows
    np.testing.assert_allclose(fmlib.anova_naive(X, P, order), expected, rtol=1e-10)
    np.testing.assert_allclose(anova_dp(X, P, order), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        fmlib.anova_fast(X, P, order).numpy(), expected, rtol=1e-10, atol=1e-12
    )
    Xs = sp.csr_matrix(X)  # sparse: same values
    np.testing.assert_allclose(
        fmlib.anova_fast(Xs, P, order).numpy(), expected, rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        fmlib.anova_fast(X, P.astype("float32"), order).numpy(),
        expected,
        rtol=1e-4,
        atol=1e-4,
    )


def test_anova_order_two_is_rendles_pairwise_term_and_edge_orders():
    X, P = random_rows(seed=5), np.random.default_rng(6).normal(size=(7, 2))
    np.testing.assert_allclose(
        fmlib.anova_fast(X, P, 2).numpy(),
        fmlib.pairwise_naive(X, P).numpy(),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        fmlib.anova_fast(X, P, 1).numpy(), (X @ P).sum(1), rtol=1e-10
    )
    np.testing.assert_array_equal(
        fmlib.anova_naive(X[:, :3], P[:3], 4), np.zeros(len(X))
    )
    np.testing.assert_allclose(
        fmlib.anova_fast(X[:, :3], P[:3], 4).numpy(), 0, atol=1e-12
    )


# --- the higher-order layer


def test_order_two_layer_equals_fm_layer_and_factorization_machine():
    n, k = 9, 3
    rng = np.random.default_rng(1)
    w0, w, V = rng.normal(), rng.normal(size=n), rng.normal(0, 0.5, (n, k))
    X = sp.random(8, n, density=0.4, random_state=2, format="csr")
    hofm = fmlib.build_higher_order_fm_model(n, order=2, k=k)
    hofm.get_layer("hofm_layer").set_weights([np.float32(w0), w, V])
    fm_model = fmlib.build_fm_model(n, k=k)
    fm_model.get_layer("fm_layer").set_weights([np.float32(w0), w, V])
    fm = fmlib.FactorizationMachine(n, k=k)
    fm.set_weights(w0=w0, w=w, V=V)
    out = hofm.predict(X, verbose=0)[:, 0]
    assert len(hofm.get_layer("hofm_layer").weights) == 3  # w0, w, V only
    np.testing.assert_allclose(
        out, fm_model.predict(X, verbose=0)[:, 0], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(out, fm.predict(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        out, fm_loop(X.toarray(), w0, w, V), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("sparse", [True, False])
def test_order_four_layer_equals_eq5_with_one_matrix_per_order(sparse):
    n, k = 6, 2
    rng = np.random.default_rng(3)
    w0, w = rng.normal(), rng.normal(size=n)
    Ps = [rng.normal(0, 0.7, (n, k)) for _ in range(3)]  # orders 2, 3, 4
    X = random_rows(batch=5, n=n, seed=4)
    model = fmlib.build_higher_order_fm_model(n, order=4, k=k, sparse=sparse)
    layer = model.get_layer("hofm_layer")
    assert [v.name for v in layer.weights] == ["w0", "w", "V", "P3", "P4"]
    layer.set_weights([np.float32(w0), w, *Ps])
    expected = w0 + X @ w + sum(eq5_term(X, P, t) for t, P in zip((2, 3, 4), Ps))
    x = sp.csr_matrix(X) if sparse else X
    np.testing.assert_allclose(
        model.predict(x, verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        layer(tf.constant(X, tf.float32)).numpy()[:, 0], expected, rtol=1e-4, atol=1e-4
    )


def test_order_three_model_learns_a_planted_three_way_interaction():
    """y depends only on x_a x_b x_c: the order-3 FM fits it, the FM cannot."""
    rng = np.random.default_rng(0)
    X = (rng.random((3000, 8)) < 0.5).astype("float32")
    y = (3.0 * X[:, 0] * X[:, 1] * X[:, 2] - 2.0 * X[:, 3] * X[:, 4] * X[:, 5]).astype(
        "float32"
    )
    losses = {}
    for order in (2, 3):
        keras.utils.set_random_seed(0)
        model = fmlib.build_higher_order_fm_model(
            8, order=order, k=4, sparse=False, v_init_std=0.3, seed=0
        )
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        model.fit(X[:2500], y[:2500], epochs=30, batch_size=250, verbose=0)
        losses[order] = model.evaluate(X[2500:], y[2500:], verbose=0)
    assert losses[3] < 0.05 and losses[3] < 0.2 * losses[2], losses


# --- field-aware FM


def ffm_loop(ids, values, vocab, w0, w, V):
    """Juan et al. eq. (4) + bias and linear terms: a double loop over fields f < g."""
    offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]])
    out = np.zeros(len(ids))
    for r in range(len(ids)):
        rows = offsets + ids[r]
        out[r] = w0 + sum(w[rows[f]] * values[r, f] for f in range(len(vocab)))
        for f in range(len(vocab)):
            for g in range(f + 1, len(vocab)):
                out[r] += (
                    np.dot(V[rows[f], g], V[rows[g], f]) * values[r, f] * values[r, g]
                )
    return out


@pytest.mark.parametrize("with_values", [False, True])
def test_ffm_equals_the_double_loop(with_values):
    vocab, k = [4, 5, 3, 2], 3
    n, F = sum(vocab), len(vocab)
    rng = np.random.default_rng(7)
    w0, w, V = rng.normal(), rng.normal(size=n), rng.normal(0, 0.5, (n, F, k))
    ids = np.stack([rng.integers(0, v, 10) for v in vocab], axis=1)
    values = rng.uniform(0.5, 2, ids.shape) if with_values else np.ones(ids.shape)
    model = fmlib.build_ffm_model(vocab, k=k, with_values=with_values)
    model.get_layer("ffm_layer").set_weights([np.float32(w0), w, V])
    out = model.predict([ids, values] if with_values else ids, verbose=0)[:, 0]
    expected = ffm_loop(ids, values, vocab, w0, w, V)
    assert len(np.unique(np.round(expected, 5))) >= len(np.unique(ids, axis=0)) > 5
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_ffm_with_one_vector_for_all_fields_is_the_fm():
    """V[i, g] = v_i for every g turns eq. (4) into Rendle's pairwise term."""
    vocab, k = [3, 4, 2], 2
    n = sum(vocab)
    rng = np.random.default_rng(8)
    w0, w, V = rng.normal(), rng.normal(size=n), rng.normal(size=(n, k))
    ids = np.stack([rng.integers(0, v, 7) for v in vocab], axis=1)
    ffm = fmlib.build_ffm_model(vocab, k=k)
    ffm.get_layer("ffm_layer").set_weights(
        [np.float32(w0), w, np.repeat(V[:, None], 3, 1)]
    )
    fm = fmlib.build_fm_model(vocab_sizes=vocab, k=k)
    fm.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    np.testing.assert_allclose(
        ffm.predict(ids, verbose=0), fm.predict(ids, verbose=0), rtol=1e-5, atol=1e-5
    )


# --- DeepFM


def deepfm_setup(vocab, k, hidden, seed=0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    n = sum(vocab)
    w0, w, V = rng.normal(), rng.normal(size=n), rng.normal(0, 0.5, (n, k))
    ids = np.stack([rng.integers(0, v, 9) for v in vocab], axis=1)
    model = fmlib.build_deepfm_model(vocab, k=k, hidden_units=hidden, seed=seed)
    model.get_layer("embedding").set_weights([np.float32(w0), w, V])
    return model, ids, (w0, w, V)


def one_hot(ids, vocab):
    X = np.zeros((len(ids), sum(vocab)))
    offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]])
    for f in range(len(vocab)):
        X[np.arange(len(ids)), offsets[f] + ids[:, f]] = 1.0
    return X


def test_deepfm_with_the_deep_part_zeroed_is_the_fm():
    vocab, k = [5, 4, 3], 3
    model, ids, (w0, w, V) = deepfm_setup(vocab, k, hidden=[8, 4])
    out = model.get_layer("deep_output")
    out.set_weights([np.zeros_like(a) for a in out.get_weights()])
    fm = fmlib.build_fm_model(vocab_sizes=vocab, k=k)
    fm.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    expected = fm_loop(one_hot(ids, vocab), w0, w, V)
    assert len(np.unique(np.round(expected, 5))) >= len(np.unique(ids, axis=0)) > 5
    np.testing.assert_allclose(
        model.predict(ids, verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        fm.predict(ids, verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-4
    )


def test_deepfm_is_the_fm_plus_an_mlp_on_the_shared_embeddings():
    vocab, k = [5, 4, 3], 2
    model, ids, (w0, w, V) = deepfm_setup(vocab, k, hidden=[6], seed=1)
    offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]])
    e = V[ids + offsets]  # (batch, F, k)
    W1, b1 = model.get_layer("deep_0").get_weights()
    W2, b2 = model.get_layer("deep_output").get_weights()
    mlp = np.maximum(e.reshape(len(ids), -1) @ W1 + b1, 0) @ W2 + b2
    expected = fm_loop(one_hot(ids, vocab), w0, w, V) + mlp[:, 0]
    np.testing.assert_allclose(
        model.predict(ids, verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-4
    )
    # one table: a gradient step on the deep part's loss moves the FM's V
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(ids)[:, 0] ** 2)
    grads = dict(
        zip(
            [v.path for v in model.trainable_variables],
            tape.gradient(loss, model.trainable_variables),
        )
    )
    assert len([p for p in grads if p.endswith("/V")]) == 1


# --- saving and configs


def family_models():
    ids = np.array([[0, 1, 2], [2, 3, 0], [1, 0, 1], [0, 2, 2]])
    X = sp.random(4, 6, density=0.5, random_state=0, format="csr")
    return [
        (fmlib.build_higher_order_fm_model(6, order=3, k=2, l2_v=1e-3, seed=1), X),
        (fmlib.build_ffm_model([3, 4, 3], k=2, l2_w=1e-3, seed=1), ids),
        (
            fmlib.build_deepfm_model(
                [3, 4, 3],
                k=2,
                hidden_units=[4],
                dropout=0.1,
                task="classification",
                from_logits=False,
                seed=1,
            ),
            ids,
        ),
    ]


def test_keras_file_round_trip_and_layer_configs(tmp_path):
    for model, x in family_models():
        y = np.array([1.0, 0.0, 1.0, 0.0])
        model.compile(optimizer="adam")  # the task's loss
        model.fit(x, y, epochs=2, verbose=0)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model) and loaded.task == model.task
        np.testing.assert_array_equal(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )
        for layer in model.layers:
            if layer.__module__.startswith("fmlib"):
                clone = type(layer).from_config(layer.get_config())
                assert clone.get_config() == layer.get_config()
                assert loaded.get_layer(layer.name).get_config() == layer.get_config()


def test_parameter_counts_follow_the_papers():
    n, vocab, k = 10, [4, 6], 3
    hofm = fmlib.build_higher_order_fm_model(n, order=3, k=k)
    assert hofm.count_params() == 1 + n + 2 * n * k  # w0, w, P2, P3
    ffm = fmlib.build_ffm_model(vocab, k=k)
    assert ffm.count_params() == 1 + n + n * len(vocab) * k  # a vector per field
    deep = fmlib.build_deepfm_model(vocab, k=k, hidden_units=[5])
    assert deep.count_params() == (1 + n + n * k) + (2 * k * 5 + 5) + (5 + 1)


# --- bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: fmlib.build_higher_order_fm_model(5, order=1),
            ValueError,
            "`order` must be >= 2",
        ),
        (
            lambda: fmlib.build_higher_order_fm_model(5, order=3.0),
            TypeError,
            "`order` must be an integer",
        ),
        (
            lambda: fmlib.build_higher_order_fm_model(5, order=True),
            TypeError,
            "`order`",
        ),
        (
            lambda: fmlib.build_higher_order_fm_model(0),
            ValueError,
            "`n_features` must be >= 1",
        ),
        (
            lambda: fmlib.build_higher_order_fm_model(5, k=0),
            ValueError,
            "`k` must be an integer >= 1",
        ),
        (
            lambda: fmlib.build_higher_order_fm_model(
                5, task="regression", from_logits=False
            ),
            ValueError,
            "from_logits",
        ),
        (lambda: fmlib.build_ffm_model([3, 0]), ValueError, "`vocab_sizes`"),
        (lambda: fmlib.build_ffm_model("34"), TypeError, "`vocab_sizes`"),
        (lambda: fmlib.build_ffm_model([3], l2_v=-1), ValueError, "`l2_v`"),
        (
            lambda: fmlib.build_deepfm_model([3, 4], dropout=1.0),
            ValueError,
            "`dropout`",
        ),
        (
            lambda: fmlib.build_deepfm_model([3, 4], hidden_units=64),
            TypeError,
            "`hidden_units`",
        ),
        (
            lambda: fmlib.build_deepfm_model([3, 4], hidden_units=[0]),
            ValueError,
            "hidden_units",
        ),
        (
            lambda: fmlib.build_deepfm_model([3, 4], task="ranking"),
            ValueError,
            "`task`",
        ),
        (
            lambda: fmlib.anova_naive(np.ones((2, 3)), np.ones((4, 2)), 2),
            ValueError,
            "`X`",
        ),
        (
            lambda: fmlib.anova_fast(np.ones((2, 3)), np.ones(3), 2),
            ValueError,
            "`P` must be",
        ),
        (
            lambda: fmlib.anova_fast(np.ones((2, 3)), np.ones((3, 2)), 0),
            ValueError,
            "`order`",
        ),
        (
            lambda: anova_dp(np.ones((2, 3)), np.array([[1.0], [np.nan], [0]]), 2),
            ValueError,
            "`P`",
        ),
    ],
)
def test_bad_arguments_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_data_is_a_value_error_naming_the_input():
    hofm = fmlib.build_higher_order_fm_model(4, order=3, k=2, sparse=False)
    with pytest.raises(ValueError, match="`x`.*4"):
        hofm.predict(np.ones((3, 5)), verbose=0)
    with pytest.raises(ValueError, match="`x`.*NaN"):
        hofm.predict(np.array([[1.0, np.nan, 0, 0], [0, 0, 0, 1]]), verbose=0)
    for model in (
        fmlib.build_ffm_model([3, 4], k=2),
        fmlib.build_deepfm_model([3, 4], k=2, hidden_units=[2]),
    ):
        with pytest.raises(
            ValueError, match="`ids` of field 1 must be in \\[0, 4\\); got 4"
        ):
            model.predict(np.array([[0, 1], [2, 4]]), verbose=0)
        with pytest.raises(ValueError, match="`ids` must be integers"):
            model.predict(np.array([[0.0, 1.0], [1.0, 2.0]]), verbose=0)
        with pytest.raises(ValueError, match="`ids` must have shape \\(batch, 2\\)"):
            model.predict(np.array([[0, 1, 2], [1, 2, 0]]), verbose=0)
        with pytest.raises(ValueError, match="`y`"):
            model.fit(np.array([[0, 1], [1, 2]]), np.array([1.0, np.nan]), verbose=0)
    layer = fmlib.FieldAwareFMLayer([3, 4], k=2)
    with pytest.raises(ValueError, match="`ids` must have shape \\(batch, 2\\)"):
        layer(np.zeros((2, 3), dtype="int64"))
