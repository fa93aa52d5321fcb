import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_loop

import fmlib


def weights(n, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(), rng.normal(size=n), rng.normal(0, 0.5, (n, k))


def test_fm_layer_equals_fmlib_and_the_reference_dense_and_sparse():
    n, k = 12, 3
    w0, w, V = weights(n, k)
    X = sp.random(9, n, density=0.4, random_state=1, format="csr")
    model = fmlib.build_fm_model(n, k=k, sparse=True)
    model.get_layer("fm_layer").set_weights([np.float32(w0), w, V])
    dense_model = fmlib.build_fm_model(n, k=k, sparse=False)
    dense_model.get_layer("fm_layer").set_weights([np.float32(w0), w, V])
    fm = fmlib.FactorizationMachine(n, k=k)
    fm.set_weights(w0=w0, w=w, V=V)
    expected = fm_loop(X.toarray(), w0, w, V)
    assert len(np.unique(np.round(expected, 4))) == 9  # distinct rows
    for out in (
        model.predict(X, verbose=0),
        model(fmlib.to_sparse_tensor(X)).numpy(),
        dense_model.predict(X.toarray(), verbose=0),
    ):
        assert out.shape == (9, 1)
        np.testing.assert_allclose(out[:, 0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fm.predict(X), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("with_values", [False, True])
def test_field_layer_equals_the_fm_on_one_hot_fields(with_values):
    vocab = [4, 6, 3]
    n, k = sum(vocab), 2
    w0, w, V = weights(n, k, seed=2)
    rng = np.random.default_rng(3)
    ids = np.stack([rng.integers(0, v, 8) for v in vocab], axis=1)
    values = rng.uniform(0.5, 2.0, ids.shape) if with_values else np.ones(ids.shape)
    X = np.zeros((8, n))  # the one-hot matrix, by hand
    for f, offset in enumerate([0, 4, 10]):
        X[np.arange(8), offset + ids[:, f]] = values[:, f]
    model = fmlib.build_fm_model(vocab_sizes=vocab, k=k, with_values=with_values)
    model.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    out = model.predict([ids, values] if with_values else ids, verbose=0)
    np.testing.assert_allclose(out[:, 0], fm_loop(X, w0, w, V), rtol=1e-4, atol=1e-4)


def test_keras_file_round_trip_and_config(tmp_path):
    for model, x in [
        (
            fmlib.build_fm_model(7, k=3, l2_w=1e-3, l2_v=1e-2, seed=1),
            sp.random(5, 7, density=0.5, random_state=0, format="csr"),
        ),
        (
            fmlib.build_fm_model(vocab_sizes=[3, 4], k=2, seed=1),
            np.array([[0, 1], [2, 3]]),
        ),
    ]:
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, np.arange(x.shape[0], dtype=float), epochs=2, verbose=0)
        path = tmp_path / f"{model.layers[-1].name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded, fmlib.FMModel)
        # recompiled on loading (FMModel overrides compile), with the optimizer's state
        assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
        np.testing.assert_array_equal(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )
        assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
        # a layer rebuilt from its config has the same settings and trains
        clone = type(model.layers[-1]).from_config(model.layers[-1].get_config())
        assert clone.get_config() == model.layers[-1].get_config()
    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.compile(optimizer="adam", loss="mse")
    history = rebuilt.fit(x, np.array([1.0, 2.0]), epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def planted(output="continuous", seed=0):
    data = fmlib.make_ratings(
        200,
        150,
        n_ratings=12_000,
        k=3,
        noise=0.2,
        output=output,
        global_bias=0.0 if output == "binary" else 3.5,
        seed=seed,
    )
    r = data.ratings
    ids = r[["user", "item"]].to_numpy()
    return ids, r["rating"].to_numpy().astype("float32")


def test_fm_beats_a_linear_model_on_planted_interactions():
    ids, y = planted()
    train, val = slice(0, 10_000), slice(10_000, None)
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    import pandas as pd

    X = enc.fit_transform(pd.DataFrame(ids, columns=["user", "item"]))
    fm = fmlib.build_fm_model(enc.n_features_, k=3, seed=0)
    fm.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    fm_hist = fm.fit(
        X[train],
        y[train],
        validation_data=(X[val], y[val]),
        epochs=20,
        batch_size=256,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    inputs = keras.Input(shape=(enc.n_features_,), sparse=True)
    linear = keras.Model(inputs, keras.layers.Dense(1)(inputs))  # w0 + w only
    linear.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    lin_hist = linear.fit(
        X[train],
        y[train],
        validation_data=(X[val], y[val]),
        epochs=20,
        batch_size=256,
        verbose=0,
    )
    fm_val, lin_val = (
        min(fm_hist.history["val_loss"]),
        min(lin_hist.history["val_loss"]),
    )
    assert fm_val < 0.6 * lin_val, (fm_val, lin_val)


def test_field_model_learns_from_tf_data_with_early_stopping():
    ids, y = planted(seed=1)
    train = (
        tf.data.Dataset.from_tensor_slices((ids[:10_000], y[:10_000]))
        .shuffle(10_000, seed=0)
        .batch(256)
    )
    val = tf.data.Dataset.from_tensor_slices((ids[10_000:], y[10_000:])).batch(1024)
    model = fmlib.build_fm_model(vocab_sizes=[200, 150], k=3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(
        train, validation_data=val, epochs=60, verbose=0, callbacks=[stop]
    )
    assert len(history.history["loss"]) < 60  # it stopped early
    baseline = float(np.mean((y[10_000:] - y[:10_000].mean()) ** 2))
    assert min(history.history["val_loss"]) < 0.3 * baseline
    assert model.evaluate(val, verbose=0) == pytest.approx(
        min(history.history["val_loss"]), rel=1e-4
    )


def test_classification_learns_with_logits():
    data = fmlib.make_ratings(
        200,
        150,
        n_ratings=20_000,
        k=3,
        noise=0.2,
        output="binary",
        global_bias=0.0,
        seed=2,
    )
    ids = data.ratings[["user", "item"]].to_numpy()
    y = data.ratings["rating"].to_numpy().astype("float32")
    train, val = slice(0, 16_000), slice(16_000, None)
    model = fmlib.build_fm_model(
        vocab_sizes=[200, 150], k=3, task="classification", l2_w=1e-4, l2_v=1e-4, seed=0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
    )
    history = model.fit(
        ids[train],
        y[train],
        validation_data=(ids[val], y[val]),
        epochs=15,
        batch_size=256,
        verbose=0,
    )
    # the best possible AUC: ranking by the true (noise-free) scores
    best = keras.metrics.AUC(from_logits=True)
    best.update_state(y[val], data.score[val])
    bayes = float(best.result())
    assert 0.3 < y.mean() < 0.7 and bayes > 0.7
    assert history.history["val_auc"][-1] > 0.5 + 0.7 * (bayes - 0.5)


def test_bad_input_is_a_clear_value_error():
    dense = fmlib.build_fm_model(5, k=2, sparse=False)
    with pytest.raises(
        ValueError,
        match=r"`x` has 4 feature columns, but the model expects n_features=5",
    ):
        dense.predict(np.ones((2, 4)), verbose=0)
    with pytest.raises(ValueError, match=r"`x` must be finite"):
        dense.predict(np.full((2, 5), np.nan), verbose=0)
    with pytest.raises(ValueError, match=r"`x` must be 2-D"):
        dense.predict(np.ones(5), verbose=0)
    fields = fmlib.build_fm_model(vocab_sizes=[3, 4], k=2)
    fields.compile(optimizer="adam", loss="mse")
    with pytest.raises(
        ValueError, match=r"`ids` of field 1 must be in \[0, 4\); got 4"
    ):
        fields.predict(np.array([[0, 4]]), verbose=0)
    with pytest.raises(
        ValueError, match=r"`ids` of field 0 must be in \[0, 3\); got -1"
    ):
        fields.fit(np.array([[-1, 0]]), np.array([1.0]), verbose=0)
    with pytest.raises(ValueError, match=r"`ids` must be integers; got dtype float64"):
        fields.predict(np.array([[0.5, 1.0]]), verbose=0)
    with pytest.raises(
        ValueError, match=r"`ids` must have shape \(batch, 2\); got \(2, 3\)"
    ):
        fields.predict(np.zeros((2, 3), dtype=int), verbose=0)
    layer = fmlib.FieldFMLayer([3, 4], k=2)
    with pytest.raises(
        ValueError,
        match=r"`ids` must have shape \(batch, 2\) for 2 fields; got \(2, 3\)",
    ):
        layer(np.zeros((2, 3), dtype="int64"))
    with pytest.raises(ValueError, match=r"FMLayer input must have shape \(batch, n\)"):
        fmlib.FMLayer(k=2)(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 1; got 0"):
        fmlib.FMLayer(k=0)
    with pytest.raises(ValueError, match=r"`vocab_sizes` must be a non-empty list"):
        fmlib.FieldFMLayer([3, 0])
    with pytest.raises(ValueError, match=r"give exactly one of"):
        fmlib.build_fm_model(5, vocab_sizes=[2])


def _field_ids_and_weights():
    ids = np.array([[0, 1], [2, 3], [1, 0], [2, 2]])
    w0, w, V = weights(7, 2, seed=4)
    one_hot = np.zeros((4, 7))
    one_hot[np.arange(4), ids[:, 0]] = 1
    one_hot[np.arange(4), 3 + ids[:, 1]] = 1
    return ids, (w0, w, V), fm_loop(one_hot, w0, w, V)


def test_a_classifier_can_output_probabilities():
    ids, (w0, w, V), logits = _field_ids_and_weights()
    model = fmlib.build_fm_model(
        vocab_sizes=[3, 4], k=2, task="classification", from_logits=False
    )
    model.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    np.testing.assert_allclose(
        model.predict(ids, verbose=0)[:, 0], 1 / (1 + np.exp(-logits)), rtol=1e-5
    )
    assert (model.task, model.from_logits) == ("classification", False)
    with pytest.raises(
        ValueError,
        match=r"`from_logits=False` \(a sigmoid output\) is for task='classification'",
    ):
        fmlib.build_fm_model(vocab_sizes=[3, 4], from_logits=False)
    with pytest.raises(
        ValueError,
        match=r"`task` must be one of \('regression', 'classification'\); got 'rank'",
    ):
        fmlib.build_fm_model(vocab_sizes=[3, 4], task="rank")


@pytest.mark.parametrize("from_logits", [True, False])
def test_compile_without_a_loss_uses_the_task_defaults(from_logits):
    ids, (w0, w, V), logits = _field_ids_and_weights()
    y = np.array([1.0, 0.0, 0.0, 1.0])
    model = fmlib.build_fm_model(
        vocab_sizes=[3, 4], k=2, task="classification", from_logits=from_logits
    )
    model.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    model.compile(optimizer="adam")
    got = model.evaluate(ids, y, verbose=0, return_dict=True)
    p = 1 / (1 + np.exp(-logits))
    assert set(got) == {"loss", "auc", "accuracy"}
    assert got["loss"] == pytest.approx(
        -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-4
    )
    assert got["accuracy"] == pytest.approx(np.mean((logits > 0) == (y > 0.5)))
    regression = fmlib.build_fm_model(vocab_sizes=[3, 4], k=2)
    regression.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    regression.compile(optimizer="adam")
    got = regression.evaluate(ids, y, verbose=0, return_dict=True)
    mse = np.mean((logits - y) ** 2)
    assert got == pytest.approx({"loss": mse, "rmse": np.sqrt(mse)}, rel=1e-4)
    regression = fmlib.build_fm_model(vocab_sizes=[3, 4], k=2)
    regression.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    regression.compile(
        optimizer="adam", loss="mae"
    )  # a loss given: Keras as usual, no metrics
    assert regression.evaluate(ids, y, verbose=0) == pytest.approx(
        np.mean(np.abs(logits - y)), rel=1e-4
    )


def test_w0_init_starts_the_bias_at_the_mean_and_survives_saving(tmp_path):
    dense = fmlib.build_fm_model(5, k=2, sparse=False, w0_init=3.5)
    np.testing.assert_allclose(
        dense.predict(np.zeros((3, 5)), verbose=0)[:, 0], [3.5] * 3
    )
    field = fmlib.build_fm_model(
        vocab_sizes=[3, 4],
        k=2,
        w0_init=-1.25,
        task="classification",
        from_logits=False,
        seed=0,
    )
    assert float(field.get_layer("field_fm_layer").w0.numpy()) == -1.25
    path = str(tmp_path / "classifier.keras")
    field.save(path)
    restored = keras.saving.load_model(path)
    assert (type(restored).__name__, restored.task, restored.from_logits) == (
        "FMModel",
        "classification",
        False,
    )
    ids = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(
        restored.predict(ids, verbose=0), field.predict(ids, verbose=0)
    )
    assert (
        restored.get_layer("field_fm_layer").get_config()["w0_initializer"]["config"][
            "value"
        ]
        == -1.25
    )
    with pytest.raises(TypeError, match=r"`w0_init` must be a number; got str"):
        fmlib.build_fm_model(5, w0_init="mean")
