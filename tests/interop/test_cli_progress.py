"""``python -m fmlib`` prints its progress while it runs, and starts light.

Progress: every method's ``#Iter=`` lines are read from a running ``python -m fmlib``
process (a run far too long to have ended) before it ends; ``BayesianFM.fit``'s
``on_sweep`` (what ``-task o`` prints through) is called during the sampling, once per
sweep, with the trace's row. Start-up: ``python -m fmlib --help`` and a bad flag answer
without importing TensorFlow or numba (``-X importtime`` lists every module imported),
and the libFM methods' start hides numba's optional modules only while numba starts.
"""

import os
import subprocess
import sys
import threading
import time
from queue import Empty, Queue

import numpy as np
import pytest

from fmlib.interop.numba_start import HIDDEN, lean_numba
from fmlib.solvers.mcmc import BayesianFM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _write(path, X, y):
    lines = [
        f"{t:g} " + " ".join(f"{j}:{v:g}" for j, v in enumerate(row) if v)
        for row, t in zip(X, y)
    ]
    path.write_text("\n".join(lines) + "\n")


def _files(tmp_path, N=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((N, 8))
    X[np.arange(N), rng.integers(0, 4, N)] = 1.0
    X[np.arange(N), 4 + rng.integers(0, 4, N)] = 1.0
    y = np.clip(np.round(3 + X[:, :4] @ [1, -1, 0.5, 0] + rng.normal(0, 0.5, N)), 1, 5)
    _write(tmp_path / "train.libfm", X[20:], y[20:])
    _write(tmp_path / "test.libfm", X[:20], y[:20])
    _write(tmp_path / "val.libfm", X[:10], y[:10])


def _python(args, cwd):
    """Run ``python *args`` in ``cwd``; the finished process, its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _first_lines(tmp_path, flags, n_iter_lines=2, timeout=240):
    """Start ``python -m fmlib`` with a run of a million iterations, read its stdout until
    ``n_iter_lines`` ``#Iter=`` lines have come, and return (the lines read, whether the
    process was still running then). The process is killed afterwards."""
    cmd = [
        sys.executable,
        "-m",
        "fmlib",
        "-train",
        "train.libfm",
        "-test",
        "test.libfm",
    ]
    proc = subprocess.Popen(
        cmd + flags + ["-iter", "1000000", "-dim", "1,1,2", "-seed", "3"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    queue = Queue()
    reader = threading.Thread(
        target=lambda: [queue.put(l) for l in iter(proc.stdout.readline, "")],
        daemon=True,
    )
    reader.start()
    lines, deadline = [], time.monotonic() + timeout
    try:
        while sum(l.startswith("#Iter=") for l in lines) < n_iter_lines:
            try:  # a run that prints only at its end fails here, at the deadline
                line = queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except Empty:
                break
            lines.append(line.rstrip("\n"))
        running = proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=30)
        proc.stdout.close()
    return lines, running


@pytest.mark.parametrize(
    "flags",
    [
        ["-task", "r", "-method", "sgd", "-learn_rate", "0.01"],
        ["-task", "r", "-method", "sgda", "-learn_rate", "0.01", "-validation", "val.libfm"],
        ["-task", "r", "-method", "als", "-regular", "0,1,1"],
        ["-task", "r", "-method", "mcmc"],
        ["-task", "r", "-method", "mcmc", "-verbosity", "1"],
        ["-task", "c", "-method", "sgd", "-learn_rate", "0.01"],
        ["-task", "o", "-method", "mcmc"],
    ],
    ids=["sgd", "sgda", "als", "mcmc", "mcmc-verbosity", "sgd-classification", "ordinal"],
)  # fmt: skip
def test_every_method_prints_its_lines_while_it_runs(tmp_path, flags):
    _files(tmp_path)
    lines, running = _first_lines(tmp_path, flags)
    iters = [l for l in lines if l.startswith("#Iter=")]
    assert running, f"the process ended before its second line: {lines}"
    assert [l.split("\t")[0] for l in iters] == ["#Iter=  0", "#Iter=  1"], lines
    assert all("\tTrain=" in l and "\tTest=" in l for l in iters), lines
    assert lines[0].startswith("fmlib: 40 training rows, 8 features"), lines
    if "-verbosity" in flags:  # the model's settings, before the first iteration
        assert lines[1].startswith("num_attributes=8\tnum_groups=1"), lines


def test_on_sweep_is_called_during_the_sampling_with_the_trace_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = np.round(np.clip(X @ [1.0, -1.0, 0.5, 0.0] + 3, 1, 5))
    seen = []
    BayesianFM(k=2, num_sweeps=6, task="ordinal", seed=1).fit(
        X, y, X[:10], y[:10], on_sweep=seen.append
    )

    class Stop(Exception):
        pass

    def stop_at_third(row):
        if row["sweep"] == 3:
            raise Stop

    bfm = BayesianFM(k=2, num_sweeps=6, task="ordinal", seed=1)
    with pytest.raises(Stop):  # called as the sweeps run, not after the last one
        bfm.fit(X, y, X[:10], y[:10], on_sweep=stop_at_third)
    reference = BayesianFM(k=2, num_sweeps=6, task="ordinal", seed=1)
    trace = reference.fit(X, y, X[:10], y[:10]).trace_
    assert [row["sweep"] for row in seen] == [1, 2, 3, 4, 5, 6]
    for row, (sweep, expected) in zip(seen, trace.iterrows()):
        assert row["sweep"] == sweep
        np.testing.assert_allclose(
            [row[c] for c in trace.columns], expected.to_numpy(), equal_nan=True
        )
    with pytest.raises(TypeError, match="`on_sweep` must be callable"):
        BayesianFM(k=2, num_sweeps=2).fit(X, y, on_sweep="print")


def _imported(tmp_path, args):
    """(exit code, the module names ``python -X importtime -m fmlib args`` imported)."""
    done = _python(["-X", "importtime", "-m", "fmlib", *args], tmp_path)
    names = {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done.returncode, names


def test_help_and_bad_flags_answer_without_tensorflow_or_numba(tmp_path):
    for args, code in (
        (["--help"], 0),
        (["-task", "r", "-train", "t.libfm", "-method", "sgx"], 2),
        (["-task", "r", "-train", "t.libfm", "-dim", "2"], 2),
    ):
        returncode, names = _imported(tmp_path, args)
        assert returncode == code, args
        assert "fmlib.interop.cli" in names  # the listing is complete enough to judge
        heavy = {"tensorflow", "numba", "scipy", "keras"} & names
        assert not heavy, (args, heavy)


def test_lean_numba_hides_the_optional_modules_only_inside_the_block(tmp_path):
    code = (
        "import sys, importlib, gc\n"
        "from fmlib.interop.numba_start import lean_numba, HIDDEN\n"
        "with lean_numba():\n"
        "    inside_gc = gc.isenabled()\n"
        "    try:\n"
        "        import cffi\n"
        "        inside = 'imported'\n"
        "    except ImportError:\n"
        "        inside = 'hidden'\n"
        "import cffi\n"
        "print(inside, inside_gc, gc.isenabled(), 'cffi' in sys.modules)\n"
    )
    done = _python(["-c", code], tmp_path)
    assert done.stdout.split() == ["hidden", "False", "True", "True"], done.stderr
    # a module imported already stays usable inside the block
    import scipy.linalg  # noqa: F401

    with lean_numba():
        import scipy.linalg as again

        assert again.__name__ == "scipy.linalg"
    assert set(HIDDEN) >= {"scipy", "cffi", "coverage"}


def test_libfm_run_does_not_import_the_hidden_modules(tmp_path):
    _files(tmp_path)
    argv = [
        "fmlib",
        "-task",
        "r",
        "-method",
        "sgd",
        "-learn_rate",
        "0.01",
        "-iter",
        "2",
    ]
    argv += ["-train", "train.libfm", "-test", "test.libfm", "-out", "p.txt"]
    code = (
        f"import sys\nsys.argv = {argv!r}\nfrom fmlib.__main__ import run\n"
        "code = run()\nprint(code, *(m in sys.modules for m in "
        "('numba', 'scipy.linalg', 'cffi', 'tensorflow')))"
    )
    done = _python(["-c", code], tmp_path)
    assert done.stdout.split()[-5:] == ["0", "True", "False", "False", "False"], (
        done.stdout[-500:] + done.stderr[-2000:]
    )
    assert np.loadtxt(tmp_path / "p.txt").shape == (20,)


def test_main_called_from_python_leaves_numba_its_optional_modules(tmp_path):
    """The lean start is for ``python -m fmlib``'s own process only: ``main`` called from
    Python (as a notebook does) imports numba as usual, so numba finds BLAS (for
    ``np.dot`` in compiled code) and the optional modules stay importable."""
    _files(tmp_path)
    argv = ["-task", "r", "-method", "sgd", "-learn_rate", "0.01", "-iter", "2"]
    argv += ["-train", "train.libfm", "-test", "test.libfm"]
    code = (
        "import sys, gc\nfrom fmlib.interop.cli import main\n"
        f"code = main({argv!r})\n"
        "import numba.np.arraymath as arraymath\nimport cffi\n"
        "print(code, arraymath._HAVE_BLAS, gc.isenabled())"
    )
    done = _python(["-c", code], tmp_path)
    assert done.stdout.split()[-3:] == ["0", "True", "True"], (
        done.stdout[-500:] + done.stderr[-2000:]
    )
