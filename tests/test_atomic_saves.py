"""Nothing lost on a failed save; files written as text read back exactly (issue #31).

Every writer of the library is killed midway (a writer that raises after some bytes, a sync
that fails) and the previous file must still be there, whole; round trips are bit-exact.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

import fmlib


def _fm(seed, dtype=tf.float64):
    return fmlib.FactorizationMachine(6, k=3, seed=seed, dtype=dtype, init_std=0.7)


class Boom(OSError):
    pass


def _partial_savez(file, *args, **kwargs):
    """A writer that fails after some bytes (as on a full disk)."""
    file.write(b"PK\x03\x04 only the start of a zip file")
    raise Boom(28, "No space left on device")


def test_failed_save_keeps_the_previous_model(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    before = _fm(0)
    before.save(path)
    monkeypatch.setattr(np, "savez", _partial_savez)
    with pytest.raises(Boom):
        _fm(1).save(path)
    monkeypatch.undo()
    again = fmlib.FactorizationMachine.load(path)
    for name, value in before.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[name], value)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left


def test_interrupted_save_keeps_the_previous_model(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    _fm(0).save(path)
    data = path.read_bytes()

    def interrupted(file, *args, **kwargs):
        file.write(b"x" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fm(1).save(path)
    assert path.read_bytes() == data


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_save_load_is_bit_exact(tmp_path, dtype):
    fm = _fm(3, dtype)
    fm.save(tmp_path / "m.npz")
    back = fmlib.FactorizationMachine.load(tmp_path / "m.npz")
    for name, value in fm.get_weights().items():
        assert back.get_weights()[name].tobytes() == np.asarray(value).tobytes()


def test_failed_export_keeps_the_previous_export(tmp_path, monkeypatch):
    path = tmp_path / "served"
    _fm(0).export(path)
    x = tf.constant(np.random.default_rng(0).random((4, 6)))
    before = (
        tf.saved_model.load(str(path))
        .signatures["serving_default"](x=x)["y_hat"]
        .numpy()
    )
    real_save = tf.saved_model.save

    def half_save(module, where, **kwargs):
        real_save(module, where, **kwargs)
        for name in os.listdir(where):  # then lose part of it, and fail
            target = os.path.join(where, name)
            if os.path.isfile(target):
                os.truncate(target, 3)
        raise Boom(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", half_save)
    with pytest.raises(OSError):
        _fm(1).export(path)
    monkeypatch.undo()
    after = (
        tf.saved_model.load(str(path))
        .signatures["serving_default"](x=x)["y_hat"]
        .numpy()
    )
    np.testing.assert_array_equal(after, before)
    assert sorted(os.listdir(tmp_path)) == ["served"]


def test_export_replaces_a_previous_export(tmp_path):
    path = tmp_path / "served"
    _fm(0).export(path)
    new = _fm(1)
    new.export(path)
    x = np.random.default_rng(0).random((4, 6))
    got = tf.saved_model.load(str(path)).signatures["serving_default"](
        x=tf.constant(x)
    )["y_hat"]
    np.testing.assert_allclose(got.numpy(), new.predict(x).ravel(), rtol=1e-12)


@pytest.mark.parametrize(
    "setup, error, match",
    [
        ("file", NotADirectoryError, "`path`.*is a file"),
        ("missing_folder", FileNotFoundError, "`path`.*does not exist"),
    ],
)
def test_export_onto_a_file_or_missing_folder(tmp_path, setup, error, match):
    path = tmp_path / "target"
    if setup == "file":
        path.write_text("keep me")
    else:
        path = tmp_path / "nowhere" / "target"
    with pytest.raises(error, match=match):
        _fm(0).export(path)
    if setup == "file":
        assert path.read_text() == "keep me"


def test_save_onto_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="`path`"):
        _fm(0).save(tmp_path)


# ------------------------------------------------------------------ libFM files


def _random_doubles(rng, size):
    """Finite float64 of every magnitude (random bit patterns), not only short decimals."""
    values = rng.integers(0, 2**64, size=size, dtype=np.uint64).view(np.float64)
    values = values[np.isfinite(values) & (values != 0)]
    return values


def test_libfm_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(7)
    rows, cols = 40, 25
    X = sp.random(rows, cols, density=0.3, random_state=1, format="csr")
    X.data = _random_doubles(rng, 4 * X.nnz)[: X.nnz]
    y = _random_doubles(rng, 4 * rows)[:rows]
    path = fmlib.save_libfm(tmp_path / "d.libfm", X, y)
    X2, y2 = fmlib.load_libfm(path, n_features=cols)
    assert struct.pack(f"<{rows}d", *y2) == struct.pack(f"<{rows}d", *y)
    X.sort_indices()
    np.testing.assert_array_equal(X2.indptr, X.indptr)
    np.testing.assert_array_equal(X2.indices, X.indices)
    assert X2.data.tobytes() == X.data.tobytes()


@pytest.mark.parametrize(
    "value", [0.1, 1 / 3, 2 / 3 * 1e-300, 123456789.123456789, 5e-324]
)
def test_libfm_values_that_need_17_digits(tmp_path, value):
    path = fmlib.save_libfm(tmp_path / "d.libfm", np.array([[value, 0.0]]), [value])
    X2, y2 = fmlib.load_libfm(path, n_features=2)
    assert X2[0, 0] == value and y2[0] == value


def test_save_libfm_leaves_the_callers_matrix(tmp_path):
    X = sp.csr_matrix(
        (np.array([1.0, 2.0, 0.0]), np.array([1, 0, 2]), np.array([0, 3])), shape=(1, 3)
    )
    before = (X.data.copy(), X.indices.copy())
    fmlib.save_libfm(tmp_path / "d.libfm", X, [1.0])
    np.testing.assert_array_equal(X.data, before[0])
    np.testing.assert_array_equal(X.indices, before[1])


def test_failed_save_libfm_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "d.libfm"
    path.write_text("1 0:1\n")

    def no_space(fd):
        raise Boom(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)  # every byte written, the sync fails
    with pytest.raises(Boom):
        fmlib.save_libfm(path, np.eye(50), np.arange(50.0))
    monkeypatch.undo()
    assert path.read_text() == "1 0:1\n"
    assert sorted(os.listdir(tmp_path)) == ["d.libfm"]


def test_save_libfm_interrupted_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "d.libfm"
    path.write_text("1 0:1\n")
    import fmlib.fileio as fileio

    calls = {"n": 0}
    real = fileio.format_float

    def dies_after_some_values(value):
        calls["n"] += 1
        if calls["n"] > 30:
            raise KeyboardInterrupt
        return real(value)

    monkeypatch.setattr(
        "fmlib.interop.libfm_files.format_float", dies_after_some_values
    )
    with pytest.raises(KeyboardInterrupt):
        fmlib.save_libfm(path, np.ones((100, 3)), np.ones(100))
    assert path.read_text() == "1 0:1\n"


# ------------------------------------------------------------------ TFRecord files


def test_failed_write_examples_keeps_the_previous_file(tmp_path, monkeypatch):
    from fmlib.distributed import records

    path = tmp_path / "train.tfrecord"
    X = np.eye(6)
    records.write_examples(path, X, np.arange(6.0))
    before = path.read_bytes()
    real = tf.io.TFRecordWriter

    class DiesAfterSomeRows:
        """A TFRecord writer interrupted (Ctrl-C) at its fourth record."""

        def __init__(self, target):
            self.writer, self.n = real(target), 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.writer.close()
            return False

        def write(self, record):
            self.n += 1
            if self.n > 3:
                raise KeyboardInterrupt
            self.writer.write(record)

    monkeypatch.setattr(tf.io, "TFRecordWriter", DiesAfterSomeRows)
    with pytest.raises(KeyboardInterrupt):
        records.write_examples(path, 2 * X, np.arange(6.0))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["train.tfrecord"]
