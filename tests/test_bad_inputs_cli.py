"""Command lines and files (issue #31): flags checked before any process starts (one line per
error, exit code 2), divergence advice quoting the user's rate, libFM files that are not text
reported with the file and the line; never a raw trace."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fmlib
from fmlib.interop.cli import main as cli_main


def _launcher(args, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "fmlib.distributed", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return done, run_dir


@pytest.mark.parametrize(
    "args, errors",
    [
        (["--workers", "0"], ["--workers"]),
        (["--timeout", "-5"], ["--timeout"]),
        (["--timeout", "nan"], ["--timeout"]),
        (["--timeout", "0"], ["--timeout"]),
        (["--k", "0"], ["--k"]),
        (["--lr", "nan"], ["--lr"]),
        (["--lr", "-0.1"], ["--lr"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--batch-size", "-1"], ["--batch-size"]),
        (["--ps", "-1"], ["--ps"]),
        (["--users", "0"], ["--users"]),
        (["--init-std", "inf"], ["--init-std"]),
        (["--shards", "0"], ["--shards"]),
        (
            ["--workers", "0", "--k", "0", "--timeout", "nan"],
            ["--workers", "--k", "--timeout"],
        ),
        (["--train", "x.tfrecord"], ["--train needs --n-features"]),
    ],
)
def test_launcher_flags_checked_before_any_process(tmp_path, args, errors):
    done, run_dir = _launcher(args, tmp_path)
    assert done.returncode == 2, done.stderr
    # (TensorFlow's own start-up lines, when it prints them, are not ours)
    lines = [
        line for line in done.stderr.strip().splitlines() if "fmlib.distributed" in line
    ]
    assert "Traceback" not in done.stderr
    assert len(lines) == len(errors), lines  # one line per error
    assert all("error:" in line for line in lines)
    for flag in errors:  # each error on its own line
        assert sum(f"error: {flag} " in line + " " for line in lines) == 1, (
            flag,
            lines,
        )
    assert list(run_dir.iterdir()) == []  # no process was started


@pytest.mark.parametrize(
    "args, flag",
    [(["--k", "0"], "--k"), (["--lr", "nan"], "--lr"), (["--epochs", "0"], "--epochs")],
)
def test_training_process_flags(args, flag):
    done = subprocess.run(
        [sys.executable, "-m", "fmlib.distributed.task", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr
    )


# ------------------------------------------------------------------ the libFM command line


def _write(tmp_path, scale=1.0):
    rng = np.random.default_rng(0)
    X = (rng.random((40, 6)) < 0.5) * 1.0
    y = X @ rng.normal(size=6) * scale
    fmlib.save_libfm(tmp_path / "train.libfm", X, y)
    return tmp_path / "train.libfm"


@pytest.mark.parametrize("method, rate", [("sgd", "1e30"), ("adam", "3e+25")])
def test_cli_divergence_quotes_the_users_rate(tmp_path, capsys, method, rate):
    train = _write(tmp_path, 1e3)
    code = cli_main(
        [
            "-task",
            "r",
            "-train",
            str(train),
            "-method",
            method,
            "-learn_rate",
            rate,
            "-iter",
            "3",
            "-dim",
            "1,1,2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"lr={float(rate)}" in err and "lr=0.01" not in err


def test_cli_out_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    train = _write(tmp_path)
    out = tmp_path / "p.txt"
    out.write_text("previous\n")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    code = cli_main(
        [
            "-task",
            "r",
            "-train",
            str(train),
            "-test",
            str(train),
            "-method",
            "als",
            "-iter",
            "2",
            "-dim",
            "1,1,2",
            "-out",
            str(out),
        ]
    )
    monkeypatch.undo()
    assert code == 1
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.txt", "train.libfm"]


# ------------------------------------------------------------------ libFM files


@pytest.mark.parametrize(
    "content, line, match",
    [
        ("1 0:1\n".encode("utf-16"), 1, "UTF-8|UTF-16"),
        ("1 0:1\n2 1:1\n".encode("utf-16-le"), 1, "NUL|UTF-16"),
        (b"1 0:1\n\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", 2, "UTF-8|binary"),
        (b"1 0:1\n2 10000000000000000000000000:1\n", 2, "index"),
        (b"1 0:1\n2 1:1e400\n", 2, "finite"),
        (b"1 0:1\n2 -3:1\n", 2, "index"),
    ],
)
def test_load_libfm_bad_files(tmp_path, content, line, match):
    path = tmp_path / "bad.libfm"
    path.write_bytes(content)
    with pytest.raises(
        fmlib.LibFMFormatError, match=rf"bad.libfm, line {line}: .*({match})"
    ):
        fmlib.load_libfm(path)


def test_load_libfm_comment_lines(tmp_path):
    path = tmp_path / "c.libfm"
    path.write_text(
        "# made by hand\n1 0:0.5 2:2\n  # indented comment\n-1 1:1 # trailing\n"
    )
    X, y = fmlib.load_libfm(path)
    np.testing.assert_array_equal(y, [1.0, -1.0])
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 2], [0, 1, 0]])


@pytest.mark.parametrize("setup", ["dir", "missing"])
def test_save_libfm_bad_targets(tmp_path, setup):
    path = tmp_path if setup == "dir" else tmp_path / "no" / "f.libfm"
    with pytest.raises(OSError, match="`path`"):
        fmlib.save_libfm(path, np.eye(2), [1.0, 2.0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"workers": 0}, ValueError, "`workers`"),
        ({"ps": -1}, ValueError, "`ps`"),
        ({"timeout": float("nan")}, ValueError, "`timeout`"),
        ({"timeout": -1.0}, ValueError, "`timeout`"),
        ({"timeout": 0}, ValueError, "`timeout`"),
        ({"workers": 1.5}, TypeError, "`workers`"),
    ],
)
def test_launch_arguments_checked_before_any_process(tmp_path, kwargs, error, match):
    from fmlib.distributed import launch

    with pytest.raises(error, match=match):
        launch([], tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()
