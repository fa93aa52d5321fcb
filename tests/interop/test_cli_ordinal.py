"""``python -m fmlib -task o``: ordinal regression through fmlib.BayesianFM(task="ordinal").

References: BayesianFM run directly with the settings the flags stand for (the mapping), the
expected rating recomputed from the class probabilities by its definition, and the flat
file a relation stands for (the relation run must equal the flattened run, same seed)."""

import numpy as np
import pytest

from fmlib.interop.cli import main
from fmlib.interop.libfm_relations import save_libfm_relation
from fmlib.solvers.mcmc import BayesianFM


def _write(path, X, y):
    lines = [
        f"{t:g} " + " ".join(f"{j}:{v:g}" for j, v in enumerate(row) if v)
        for row, t in zip(X, y)
    ]
    path.write_text("\n".join(lines) + "\n")


def _ratings(N=120, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((N, 10))
    X[np.arange(N), rng.integers(0, 4, N)] = 1.0
    X[np.arange(N), 4 + rng.integers(0, 6, N)] = 1.0
    score = X[:, :4] @ [1.5, -1.5, 0.5, 0.0] + rng.normal(0, 0.3, N)
    y = np.digitize(score, [-0.75, 0.25, 1.0]) + 1.0  # ratings 1..4
    return X, y


FLAGS = ["-task", "o", "-method", "mcmc", "-dim", "1,1,2", "-iter", "30", "-seed", "5"]


def test_ordinal_cli_is_the_ordinal_bayesian_fm(tmp_path, monkeypatch, capsys):
    X, y = _ratings()
    _write(tmp_path / "train.libfm", X[30:], y[30:])
    _write(tmp_path / "test.libfm", X[:30], y[:30])
    monkeypatch.chdir(tmp_path)
    argv = FLAGS + ["-train", "train.libfm", "-test", "test.libfm", "-out", "p.txt"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 30 and lines[-1].startswith("#Iter= 29\tTrain=")
    p = np.loadtxt("p.txt")
    bfm = BayesianFM(
        k=2, num_sweeps=30, burn_in=0, task="ordinal", init_std=0.1, seed=5,
        keep_samples=False,
    ).fit(X[30:], y[30:], X[:30], y[:30])  # fmt: skip
    np.testing.assert_allclose(p, bfm.test_prediction_, rtol=1e-8)
    # the expected rating by its definition: sum_j P(class j) * class_j
    np.testing.assert_allclose(p, bfm.test_proba_ @ np.array([1, 2, 3, 4.0]), rtol=1e-8)
    test_rmse = float(lines[-1].split("Test=")[1])
    assert test_rmse == pytest.approx(np.sqrt(np.mean((p - y[:30]) ** 2)), rel=1e-5)
    # the model learned the ordering: better than predicting the mean rating
    assert test_rmse < np.std(y[:30])


def test_ordinal_cli_relation_equals_the_flat_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    X, y = _ratings(seed=1)
    B = (rng.random((4, 5)) < 0.5) * 1.0  # per "user" side features
    users = X[:, :4].argmax(1)
    save_libfm_relation(tmp_path / "user", B, users[30:], users[:30])
    _write(tmp_path / "train.libfm", X[30:], y[30:])
    _write(tmp_path / "test.libfm", X[:30], y[:30])
    flat = np.hstack([X, B[users]])
    _write(tmp_path / "flat_train.libfm", flat[30:], y[30:])
    _write(tmp_path / "flat_test.libfm", flat[:30], y[:30])
    (tmp_path / "meta.txt").write_text("\n".join(["0"] * 10 + ["1"] * 5) + "\n")
    monkeypatch.chdir(tmp_path)
    rel = ["-train", "train.libfm", "-test", "test.libfm", "-relation", "user"]
    assert main(FLAGS + rel + ["-out", "rel.txt"]) == 0
    flat_files = ["-train", "flat_train.libfm", "-test", "flat_test.libfm"]
    assert main(FLAGS + flat_files + ["-meta", "meta.txt", "-out", "flat.txt"]) == 0
    np.testing.assert_allclose(np.loadtxt("rel.txt"), np.loadtxt("flat.txt"), rtol=1e-7)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-method", "als"], "-task o (ordinal) works with -method mcmc"),
        (["-dim", "0,1,2"], "-dim must be '1,1,k' with k >= 1 for -task o"),
        (["-rlog", "r.txt"], "-task o takes neither"),
    ],
)
def test_ordinal_bad_flags_exit_2(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-task", "o", "-train", "t"] + flags)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
