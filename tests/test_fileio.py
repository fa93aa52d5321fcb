"""fmlib.fileio: a failed write leaves the previous file; floats as text read back exactly."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from fmlib import fileio


class Boom(RuntimeError):
    pass


def test_atomic_write_replaces_on_success(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with fileio.atomic_write(path) as handle:
        handle.write("new")
        assert path.read_text() == "old"  # nothing visible before the end
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left


@pytest.mark.parametrize("mode, payload", [("w", "x" * 10_000), ("wb", b"\0" * 10_000)])
def test_a_failure_midway_keeps_the_previous_file(tmp_path, mode, payload):
    path = tmp_path / "f"
    path.write_bytes(b"previous contents")
    with pytest.raises(Boom):
        with fileio.atomic_write(path, mode) as handle:
            handle.write(payload[:5000])
            raise Boom
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["f"]


def test_keyboard_interrupt_keeps_the_previous_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_write(path) as handle:
            handle.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["f"]


def test_permissions_of_the_replaced_file_are_kept(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, 0o640)
    fileio.write_text(path, "new")
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "target, error, match",
    [
        ("is_a_dir", IsADirectoryError, "`path`.*directory"),
        ("missing/f", FileNotFoundError, "`path`.*does not exist"),
        (12, TypeError, "`path`"),
        ("", ValueError, "`path`"),
    ],
)
def test_bad_targets(tmp_path, target, error, match):
    (tmp_path / "is_a_dir").mkdir()
    target = str(tmp_path / target) if isinstance(target, str) and target else target
    with pytest.raises(error, match=match):
        fileio.write_text(target, "x")


def test_unwritable_folder(tmp_path, monkeypatch):
    """A folder the process may not write to (faked through ``os.access``, since root, as
    tests often run, may write anywhere) is a PermissionError naming the argument."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        fileio.os,
        "access",
        lambda path, mode: (
            False if str(path) == str(folder) else real_access(path, mode)
        ),
    )
    with pytest.raises(PermissionError, match="`path`.*not writable"):
        fileio.write_text(folder / "f", "x")
    assert not (folder / "f").exists()


def test_atomic_directory_swaps_and_keeps_the_old_one_on_failure(tmp_path):
    path = tmp_path / "model"
    with fileio.atomic_directory(path) as tmp:
        (tmp_path / tmp / "a").write_text("1")
    assert os.listdir(path) == ["a"]
    with pytest.raises(Boom):
        with fileio.atomic_directory(path) as tmp:
            (tmp_path / tmp / "b").write_text("2")
            raise Boom
    assert os.listdir(path) == ["a"]
    with fileio.atomic_directory(path) as tmp:
        (tmp_path / tmp / "c").write_text("3")
    assert os.listdir(path) == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_atomic_directory_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="`path`.*is a file"):
        with fileio.atomic_directory(tmp_path / "f"):
            pass
    assert (tmp_path / "f").read_text() == "x"


def _random_doubles(rng, size):
    """Any finite float64: random bit patterns (all exponents, subnormals), not only nice ones."""
    bits = rng.integers(0, 2**64, size=size, dtype=np.uint64)
    values = bits.view(np.float64)
    return values[np.isfinite(values)]


def test_format_float_round_trips_every_float64_exactly():
    rng = np.random.default_rng(0)
    values = np.r_[
        _random_doubles(rng, 20_000),
        0.1,
        1 / 3,
        5e-324,
        np.finfo(np.float64).max,
        -0.0,
        2.0**53 + 2,
        np.float32(0.1),
    ]
    for value in values:
        text = fileio.format_float(value)
        assert struct.pack("<d", float(text)) == struct.pack("<d", float(value)), (
            value,
            text,
        )


@pytest.mark.parametrize(
    "value, text", [(1.0, "1"), (-3.0, "-3"), (0.5, "0.5"), (1e25, "1e+25")]
)
def test_format_float_short_forms(value, text):
    assert fileio.format_float(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_format_float_refuses_non_finite(value):
    with pytest.raises(ValueError, match="finite"):
        fileio.format_float(value)


def test_atomic_path_for_writers_that_need_a_name(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(Boom):
        with fileio.atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half")
            raise Boom
    assert path.read_bytes() == b"old"
    with fileio.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.bin"]
