"""fmlib.interop.cli (``python -m fmlib``): libFM's flags, files and output.

The algorithms themselves are tested against numpy references in test_libfm_solvers.py;
here: that the command line runs them with the flags' meaning, writes libFM's files, and
answers help, bad flags and bad files without importing TensorFlow.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from fmlib.interop.cli import main
from fmlib.interop.libfm_model import read_libfm_model, write_libfm_model
from fmlib.interop.libfm_relations import save_libfm_relation
from fmlib.solvers import libfm as L

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(path, X, y):
    lines = [
        f"{t:g} " + " ".join(f"{j}:{v:g}" for j, v in enumerate(row) if v)
        for row, t in zip(X, y)
    ]
    path.write_text("\n".join(lines) + "\n")


def _files(tmp_path, N=80, n=10, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((N, n))
    X[np.arange(N), rng.integers(0, 4, N)] = 1.0  # "user" one-hot
    X[np.arange(N), 4 + rng.integers(0, n - 5, N)] = 1.0  # "item" one-hot
    X[:, -1] = 0.0  # a feature only in test
    y = np.clip(np.round(3 + X[:, :4] @ [1, -1, 0.5, 0] + rng.normal(0, 0.5, N)), 1, 5)
    X_test = X[:20].copy()
    X_test[:5, -1] = 1.0
    _write(tmp_path / "train.libfm", X[20:], y[20:])
    _write(tmp_path / "test.libfm", X_test, y[:20])
    _write(tmp_path / "val.libfm", X[:10], y[:10])
    _files.validation = (X[:10], y[:10])
    return X[20:], y[20:], X_test, y[:20]


def _engine(
    method, X, y, Xt, seed, k=3, iters=4, reg=(0, 0, 0), lr=0.1, Xv=None, yv=None
):
    """The same run driven through fmlib.solvers.libfm directly."""
    n = Xt.shape[1]
    rows, test = L.as_rows(X, n), L.as_rows(Xt, n)
    p = L.init_params(n, k, 0.1, seed, method)
    lo_hi = (y.min(), y.max())
    if method == "sgd":
        for _ in range(iters):
            L.sgd_epoch(rows, y, p, lr, reg, 0, lo_hi)
        return np.clip(L.predict(test, p), *lo_hi), p
    if method == "sgda":
        s = L.SGDA(rows, y, L.as_rows(Xv, n), yv, p, learn_rate=lr, target_range=lo_hi)
        for _ in range(iters):
            s.epoch()
        return np.clip(L.predict(test, p), *lo_hi), p
    c = L.CoordinateLearner(
        rows, y, test, p, regular=reg, sample=method == "mcmc", target_range=lo_hi
    )
    for _ in range(iters):
        c.sweep()
    pred = c.test_sum / iters if method == "mcmc" else c.test_this
    return np.clip(pred, *lo_hi), p


@pytest.mark.parametrize(
    "method, flags, reg",
    [
        ("sgd", ["-learn_rate", "0.05", "-regular", "0,0.01,0.02"], (0, 0.01, 0.02)),
        ("sgda", ["-learn_rate", "0.05", "-validation", "val.libfm"], (0, 0, 0)),
        ("als", ["-regular", "0.5,1,2"], (0.5, 1, 2)),
        ("mcmc", [], (0, 0, 0)),
    ],
)
def test_cli_runs_libfms_algorithm(tmp_path, monkeypatch, capsys, method, flags, reg):
    X, y, Xt, yt = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "-task",
                "r",
                "-train",
                "train.libfm",
                "-test",
                "test.libfm",
                "-dim",
                "1,1,3",
                "-iter",
                "4",
                "-method",
                method,
                "-seed",
                "7",
                "-out",
                "p.txt",
            ]
            + flags
        )
        == 0
    )
    lr = 0.05 if method in ("sgd", "sgda") else 0.1
    expected, _ = _engine(
        method,
        X,
        y,
        Xt,
        7,
        reg=reg,
        lr=lr,
        Xv=_files.validation[0],
        yv=_files.validation[1],
    )
    np.testing.assert_allclose(np.loadtxt("p.txt"), expected, rtol=1e-8)
    lines = capsys.readouterr().out.splitlines()
    iters = [l for l in lines if l.startswith("#Iter=")]
    assert (
        len(iters) == 4
        and iters[0].startswith("#Iter=  0\tTrain=")
        and "\tTest=" in iters[0]
    )
    if method in ("sgd", "sgda"):
        assert lines[-1].startswith("Final\tTrain=")


def test_cli_save_and_load_model(tmp_path, monkeypatch):
    X, y, Xt, yt = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    base = [
        "-task",
        "r",
        "-train",
        "train.libfm",
        "-test",
        "test.libfm",
        "-dim",
        "1,1,3",
        "-method",
        "sgd",
        "-learn_rate",
        "0.05",
        "-seed",
        "2",
    ]
    assert main(base + ["-iter", "3", "-save_model", "m.txt", "-out", "p.txt"]) == 0
    params = read_libfm_model("m.txt")
    assert params.V.shape == (10, 3)
    # -out is the saved model's prediction by the definition of the FM, clipped
    pair = 0.5 * ((Xt @ params.V) ** 2 - (Xt**2) @ (params.V**2)).sum(1)
    y_hat = params.w0[0] + Xt @ params.w + pair
    np.testing.assert_allclose(
        np.loadtxt("p.txt"), np.clip(y_hat, y.min(), y.max()), rtol=1e-8
    )
    # 3 iterations, saved, then 2 more from the file = 5 iterations in one go
    assert main(base + ["-iter", "2", "-load_model", "m.txt", "-out", "q.txt"]) == 0
    assert main(base + ["-iter", "5", "-out", "r.txt"]) == 0
    np.testing.assert_allclose(np.loadtxt("q.txt"), np.loadtxt("r.txt"), rtol=1e-8)


def test_cli_rlog_has_libfms_columns(tmp_path, monkeypatch):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    common = [
        "-task",
        "r",
        "-train",
        "train.libfm",
        "-test",
        "test.libfm",
        "-dim",
        "1,1,2",
        "-iter",
        "3",
        "-seed",
        "1",
    ]
    assert main(common + ["-method", "mcmc", "-rlog", "mcmc.log"]) == 0
    header, *rows = (tmp_path / "mcmc.log").read_text().splitlines()
    assert header.split("\t") == [
        "rmse",
        "mae",
        "time_pred",
        "time_learn",
        "time_learn2",
        "time_learn4",
        "alpha",
        "rmse_mcmc_this",
        "rmse_mcmc_all",
        "rmse_mcmc_all_but5",
        "wmu[0]",
        "wlambda[0]",
        "vmu[0,0]",
        "vlambda[0,0]",
        "vmu[0,1]",
        "vlambda[0,1]",
    ]
    assert len(rows) == 3 and rows[0].split("\t")[2] == "nan"
    assert main(common + ["-method", "sgd", "-rlog", "sgd.log"]) == 0
    header, *rows = (tmp_path / "sgd.log").read_text().splitlines()
    assert (
        header.split("\t")
        == [
            "rmse",
            "mae",
            "time_pred",
            "time_learn",
            "time_learn2",
            "time_learn4",
            "rmse_train",
        ]
        and len(rows) == 3
    )


def test_cli_relation_equals_flat_files(tmp_path, monkeypatch):
    """-relation stands for the flat matrix: the same run on the flattened files (with
    the relation's columns in their own -meta group, as libFM groups them)."""
    rng = np.random.default_rng(3)
    X, y, Xt, yt = _files(tmp_path)
    B = (rng.random((4, 6)) < 0.5) * 0.5  # per "user": exact in float32
    u_train, u_test = X[:, :4].argmax(1), Xt[:, :4].argmax(1)
    save_libfm_relation(tmp_path / "user", B, u_train, u_test)
    _write(tmp_path / "flat_train.libfm", np.hstack([X, B[u_train]]), y)
    _write(tmp_path / "flat_test.libfm", np.hstack([Xt, B[u_test]]), yt)
    (tmp_path / "meta.txt").write_text("\n".join(["0"] * 10 + ["1"] * 6) + "\n")
    monkeypatch.chdir(tmp_path)
    for method in ("als", "mcmc"):
        flags = [
            "-task",
            "r",
            "-dim",
            "1,1,2",
            "-iter",
            "3",
            "-seed",
            "4",
            "-method",
            method,
            "-regular",
            "0,1,1",
        ]
        assert (
            main(
                flags
                + [
                    "-train",
                    "train.libfm",
                    "-test",
                    "test.libfm",
                    "-relation",
                    "user",
                    "-out",
                    "rel.txt",
                ]
            )
            == 0
        )
        assert (
            main(
                flags
                + [
                    "-train",
                    "flat_train.libfm",
                    "-test",
                    "flat_test.libfm",
                    "-meta",
                    "meta.txt",
                    "-out",
                    "flat.txt",
                ]
            )
            == 0
        )
        np.testing.assert_allclose(
            np.loadtxt("rel.txt"), np.loadtxt("flat.txt"), rtol=1e-9
        )


def test_cli_classification_sgd_writes_probabilities(tmp_path, monkeypatch, capsys):
    X, y, Xt, yt = _files(tmp_path)
    _write(tmp_path / "c_train.libfm", X, np.where(y > 3, 1, 0))
    _write(tmp_path / "c_test.libfm", Xt, np.where(yt > 3, 1, -1))
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "-task",
                "c",
                "-train",
                "c_train.libfm",
                "-test",
                "c_test.libfm",
                "-method",
                "sgd",
                "-iter",
                "3",
                "-out",
                "p.txt",
                "-seed",
                "1",
            ]
        )
        == 0
    )
    p = np.loadtxt("p.txt")
    assert p.shape == (20,) and np.all((p > 0) & (p < 1))
    acc = float(capsys.readouterr().out.splitlines()[-1].split("Test=")[1])
    assert acc == pytest.approx(np.mean((p >= 0.5) == (yt > 3)))


def _in_subprocess(tmp_path, argv):
    """Run main(argv) in a fresh interpreter; returns (exit code, whether TF and numba were
    imported, stderr)."""
    code = (
        "import sys\nfrom fmlib.interop.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, 'tensorflow' in sys.modules, 'numba' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    code, tf, numba = done.stdout.split()[-3:]
    return int(code), tf == "True", numba == "True", done.stderr


def test_help_bad_flags_and_bad_files_do_not_import_tensorflow(tmp_path):
    (tmp_path / "bad.libfm").write_text("1 0:1\n2 0:1 x\n")
    code, tf, numba, _ = _in_subprocess(tmp_path, ["--help"])
    assert (code, tf, numba) == (0, False, False)
    code, tf, numba, err = _in_subprocess(
        tmp_path, ["-task", "r", "-train", "t", "-dim", "2"]
    )
    assert (code, tf, numba) == (2, False, False) and "-dim must be" in err
    code, tf, numba, err = _in_subprocess(
        tmp_path, ["-task", "r", "-train", "bad.libfm"]
    )
    assert (code, tf, numba) == (1, False, False)
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("python -m fmlib: error: bad.libfm, line 2:")
    )


def test_libfm_methods_train_without_tensorflow(tmp_path):
    _files(tmp_path)
    code, tf, numba, err = _in_subprocess(
        tmp_path,
        [
            "-task",
            "r",
            "-train",
            "train.libfm",
            "-test",
            "test.libfm",
            "-iter",
            "2",
            "-method",
            "mcmc",
            "-out",
            "p.txt",
        ],
    )
    assert (code, tf, numba) == (0, False, True), err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-method", "sgda"], "-method sgda learns its regularisation on -validation"),
        (["-method", "sgd", "-relation", "r"], "-relation works with als and mcmc"),
        (
            ["-method", "mcmc", "-save_model", "m"],
            "-save_model works with sgd, sgda and als",
        ),
        (["-dim", "1,1"], "-dim must be 'k0,k1,k'"),
        (
            ["-method", "adam", "-dim", "0,1,8"],
            "-dim must be '1,1,k' with k >= 1 for -method adam",
        ),
        (["-regular", "1,2"], "-regular must be 'r' or 'r0,r1,r2'"),
        (["-regular", "a"], "-regular must be comma-separated numbers"),
        (["-learn_rate", "0"], "-learn_rate must be one number > 0"),
        (["-out", "p.txt"], "-out writes the test predictions"),
        (["-iter", "0"], "-iter must be >= 1"),
    ],
)
def test_bad_flags_exit_2(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-task", "r", "-train", "t"] + flags)
    err = capsys.readouterr().err
    assert (
        exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    )


def test_load_model_of_wrong_shape_is_exit_1(tmp_path, monkeypatch, capsys):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    write_libfm_model("m.txt", L.Params(np.zeros(1), np.zeros(10), np.zeros((10, 2))))
    assert (
        main(
            [
                "-task",
                "r",
                "-train",
                "train.libfm",
                "-test",
                "test.libfm",
                "-method",
                "als",
                "-dim",
                "1,1,3",
                "-load_model",
                "m.txt",
            ]
        )
        == 1
    )
    assert "m.txt has k=2" in capsys.readouterr().err


def test_help_lists_the_differences(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert (
        "differences from libFM" in text
        and "-relation" in text
        and "exit codes" in text
    )
