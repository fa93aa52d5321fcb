import json

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_loop

import fmlib


def _trained(task=None, dtype=tf.float32, pairwise="fast"):
    rng = np.random.default_rng(0)
    fm = fmlib.FactorizationMachine(7, k=3, dtype=dtype, pairwise=pairwise, task=task)
    fm.set_weights(w0=0.3, w=rng.normal(size=7), V=rng.normal(size=(7, 3)))
    return fm


X = sp.random(9, 7, density=0.4, random_state=1, format="csr")


@pytest.mark.parametrize(
    "task, dtype, pairwise",
    [
        (None, tf.float32, "fast"),
        ("classification", tf.float64, "naive"),
        ("regression", tf.float32, "fast"),
    ],
)
def test_save_load_round_trip(tmp_path, task, dtype, pairwise):
    fm = _trained(task, dtype, pairwise)
    path = fm.save(tmp_path / "fm.npz")
    restored = fmlib.FactorizationMachine.load(path)
    assert repr(restored) == repr(fm)
    for name, value in fm.get_weights().items():
        np.testing.assert_array_equal(restored.get_weights()[name], value)
    np.testing.assert_array_equal(restored.predict(X), fm.predict(X))
    with np.load(path, allow_pickle=False) as data:  # numpy alone reads it
        header = json.loads(str(data["header"]))
    assert (
        header["format"] == "fmlib.FactorizationMachine"
        and header["fmlib_version"] == fmlib.__version__
    )
    assert (header["n_features"], header["k"], header["task"]) == (7, 3, task)


def test_a_loaded_model_trains_on(tmp_path):
    fm = _trained("regression")
    restored = fmlib.FactorizationMachine.load(fm.save(tmp_path / "fm.npz"))
    history = fmlib.fit(restored, X, np.arange(9.0), num_epochs=2, batch_size=4)
    assert len(history) == 2 and restored.task == "regression"


def test_load_names_the_path_of_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no saved FactorizationMachine at '.*missing\.npz'"
    ):
        fmlib.FactorizationMachine.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not a model")
    with pytest.raises(
        ValueError, match=r"'.*notes\.npz' is not a FactorizationMachine saved by fmlib"
    ):
        fmlib.FactorizationMachine.load(text)
    good = _trained().save(tmp_path / "fm.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(open(good, "rb").read()[:200])
    with pytest.raises(
        ValueError, match=r"truncated\.npz' is not a FactorizationMachine"
    ):
        fmlib.FactorizationMachine.load(truncated)
    other = tmp_path / "other.npz"
    np.savez(other, w0=0.0, w=np.zeros(3), V=np.zeros((3, 2)))  # no header
    with pytest.raises(ValueError, match=r"other\.npz' is not a FactorizationMachine"):
        fmlib.FactorizationMachine.load(other)


def _rewrite(path, target, **changes):
    """Copy the saved model at ``path`` to ``target`` with header fields or arrays replaced."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(str(arrays.pop("header")))
    header.update({k: v for k, v in changes.items() if k not in arrays})
    arrays.update({k: v for k, v in changes.items() if k in arrays})
    np.savez(target, header=np.array(json.dumps(header)), **arrays)
    return target


def test_load_refuses_newer_formats_and_inconsistent_files(tmp_path):
    good = _trained().save(tmp_path / "fm.npz")
    with pytest.raises(
        ValueError, match=r"format version 2; this fmlib reads version 1"
    ):
        fmlib.FactorizationMachine.load(
            _rewrite(good, tmp_path / "v2.npz", format_version=2)
        )
    with pytest.raises(
        ValueError, match=r"wrong_k\.npz' is a corrupt .*`V` must have shape \(7, 4\)"
    ):
        fmlib.FactorizationMachine.load(_rewrite(good, tmp_path / "wrong_k.npz", k=4))
    with pytest.raises(
        ValueError, match=r"bad_task\.npz' is a corrupt .*`task` must be one of"
    ):
        fmlib.FactorizationMachine.load(
            _rewrite(good, tmp_path / "bad_task.npz", task="ranking")
        )


@pytest.mark.parametrize("task", [None, "classification"])
def test_exported_savedmodel_predicts_the_same(tmp_path, task):
    fm = _trained(task, tf.float64)
    served = tf.saved_model.load(fm.export(str(tmp_path / "export")))
    p = fm.get_weights()
    expected = fm_loop(X.toarray(), p["w0"], p["w"], p["V"])  # the definition, numpy
    dense = served.signatures["serving_default"](x=tf.constant(X.toarray()))
    np.testing.assert_allclose(dense["y_hat"].numpy(), expected, rtol=1e-10)
    coo = X.tocoo()
    sparse = served.signatures["serving_sparse"](
        indices=tf.constant(np.stack([coo.row, coo.col], 1), tf.int64),
        values=tf.constant(coo.data),
        dense_shape=tf.constant(coo.shape, tf.int64),
    )
    np.testing.assert_allclose(sparse["y_hat"].numpy(), expected, rtol=1e-10)
    if task == "classification":
        np.testing.assert_allclose(
            dense["probability"].numpy(), fm.predict_proba(X), rtol=1e-10
        )
    else:
        assert set(dense) == {"y_hat"}
    np.testing.assert_allclose(
        served.predict(tf.constant(X.toarray()))["y_hat"], fm.predict(X), rtol=1e-10
    )
