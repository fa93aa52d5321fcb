"""benchmarks/common.py, and every benchmark script's --smoke run.

The unit tests check the shared module against hand values and injected failures; the smoke
tests run each script as a user would (``python benchmarks/<script>.py --smoke``) in a
subprocess, writing to a temporary file, and check that the committed results are untouched
and that what the script wrote carries the provenance block.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import common  # noqa: E402

SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py")
# Scripts whose smoke run reads MovieLens 100k (the others generate their data).
NEEDS_MOVIELENS = {
    "bench_input.py",
    "bench_family.py",
    "bench_libraries.py",
    "bench_paper.py",
    "bench_ranking.py",
    "bench_relational.py",
    "bench_relational_chunks.py",
    "bench_relational_scale.py",
    "bench_solvers.py",
    "bench_sparse.py",
    "bench_ordinal.py",
    "bench_variational.py",
}
# Scripts that print their result and write no results file.
NO_RESULTS_FILE = {"profile_sampler_memory.py"}
# Committed results written before benchmarks/common.py whose provenance cannot be recovered
# from the file itself (no commit recorded): the next run of their script adds it.
LACKING_PROVENANCE = {
    "distributed.json",
    "family.json",
    "input.json",
    "libraries.json",
    "pairwise.json",
    "paper.json",
    "ranking.json",
    "ranking_first_grid.json",
    "scale.json",
    "synthetic.json",
}
# Seconds per script: a guard against a hang, not a budget. A smoke run takes 5-22 CPU
# seconds (most of it TensorFlow's import, once per process); on the 2-core machine shared
# with other jobs (load average 10) the slowest took 160 s of wall time.
SMOKE_TIMEOUT = 360
SMOKE_JOBS = int(os.environ.get("BENCH_SMOKE_JOBS", "2"))  # smoke runs at a time


# --- rmse ----------------------------------------------------------------------------------
def test_rmse_hand_values():
    assert common.rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(
        math.sqrt(4 / 3)
    )
    assert common.rmse(np.array([[3.0], [4.0]]), [1.0, 2.0]) == pytest.approx(
        2.0
    )  # (n, 1)
    # clipped to the star range first: 0 -> 1 and 6.5 -> 5
    assert common.rmse([0.0, 6.5], [1.0, 4.0], clip=(1, 5)) == pytest.approx(
        math.sqrt(0.5)
    )


def test_rmse_rejects_different_lengths():
    with pytest.raises(ValueError, match="rmse: y_hat has 2 values, y has 3"):
        common.rmse([1.0, 2.0], [1.0, 2.0, 3.0])


# --- provenance ----------------------------------------------------------------------------
def test_provenance_has_every_key():
    record = common.finish(
        common.provenance(["benchmarks/bench_x.py", "--smoke"], smoke=True)
    )
    assert tuple(record) == common.PROVENANCE_KEYS
    assert record["command"] == "python benchmarks/bench_x.py --smoke"
    assert record["smoke"] is True
    assert record["commit"] is None or len(record["commit"]) == 40
    assert record["dirty"] in (None, True, False)
    assert {"numpy", "scipy"} <= set(record["versions"])
    assert record["cpu_count"] == os.cpu_count()
    assert record["finished_utc"] >= record["started_utc"]
    assert record["wall_seconds"] >= 0


def test_provenance_reads_this_checkout():
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True
    )
    if commit.returncode != 0:
        pytest.skip("not a git checkout")
    assert common.git_state()[0] == commit.stdout.strip()


# --- results files ---------------------------------------------------------------------------
def test_save_results_merges_parts(tmp_path):
    path = tmp_path / "r.json"
    first = common.provenance(["benchmarks/b.py", "--part", "a"])
    common.save_results(path, {"a": [1, 2], "old": 0}, first, part="a")
    second = common.provenance(["benchmarks/b.py", "--part", "b"])
    common.save_results(
        path, {"b": {"x": np.float64(0.5)}}, second, part="b", remove=("old",)
    )
    results = json.loads(path.read_text())
    assert (
        results["a"] == [1, 2] and results["b"] == {"x": 0.5} and "old" not in results
    )
    assert results["provenance"]["command"] == "python benchmarks/b.py --part b"
    assert {p: r["command"][-1] for p, r in results["provenance_by_part"].items()} == {
        "a": "a",
        "b": "b",
    }
    common.save_results(path, {"c": 1}, second, replace=True)
    assert set(json.loads(path.read_text())) == {"c", "provenance"}


class FailingHandle:
    """A file that writes the first half of what it is given, then fails (a full disk)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise OSError("No space left on device (injected)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.mark.parametrize("failure", ["mid-write", "replace", "unserialisable"])
def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "results.json"
    record = common.provenance(["benchmarks/b.py"])
    common.save_results(path, {"rows": [1, 2, 3]}, record)
    before = path.read_bytes()
    update = {"rows": list(range(10_000))}
    if failure == "mid-write":
        fdopen = os.fdopen
        monkeypatch.setattr(
            common.os, "fdopen", lambda *a, **k: FailingHandle(fdopen(*a, **k))
        )
        expected = OSError
    elif failure == "replace":

        def replace(src, dst):
            raise OSError("injected")

        monkeypatch.setattr(common.os, "replace", replace)
        expected = OSError
    else:
        update = {"rows": object()}
        expected = TypeError
    with pytest.raises(expected):
        common.save_results(path, update, record)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [
        "results.json"
    ]  # no temporary file left


def test_smoke_never_writes_committed_results(tmp_path):
    import argparse

    args = argparse.Namespace(smoke=True, out=None)
    out = common.results_path(args, common.RESULTS / "x.json")
    assert out.parent != common.RESULTS and out.name == "x.json"
    with pytest.raises(SystemExit, match="does not write into"):
        common.results_path(
            argparse.Namespace(smoke=True, out=common.RESULTS / "x.json"),
            common.RESULTS / "x.json",
        )
    assert (
        common.results_path(
            argparse.Namespace(smoke=False, out=None), common.RESULTS / "x.json"
        )
        == common.RESULTS / "x.json"
    )


# --- timing and memory ---------------------------------------------------------------------
def test_timer_measures_wall_and_cpu():
    with common.Timer() as t:
        time.sleep(0.05)
    assert 0.04 < t.seconds < 5 and 0 <= t.cpu_seconds < t.seconds


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_of_a_small_worker_of_a_large_parent():
    """A worker started by a parent holding ~400 MiB reports its own peak, not the parent's
    (``ru_maxrss`` of a forked-and-exec'd child can carry the parent's memory)."""
    big = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this process
    assert common.peak_rss_mib() > 400
    code = "import sys; sys.path.insert(0, sys.argv[1]); import common; print(common.peak_rss_mib())"
    child = subprocess.run(
        [sys.executable, "-c", code, str(BENCHMARKS)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(child.stdout) < 200, child.stdout
    del big


# --- every script -----------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_uses_common(script):
    tree = ast.parse((BENCHMARKS / script).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "common" in imported
    assert "--smoke" in (BENCHMARKS / script).read_text()


def _digest(folder: Path) -> dict:
    return {
        p.name: hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("*"))
    }


def _smoke(script: str, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``python benchmarks/<script> --smoke [--out out]`` from the repository root."""
    command = [sys.executable, str(BENCHMARKS / script), "--smoke"]
    if script not in NO_RESULTS_FILE:
        command += ["--out", str(out)]
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        TQDM_DISABLE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    started = time.perf_counter()
    run = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
    )
    return run, time.perf_counter() - started


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """Every script's smoke run, started at once on SMOKE_JOBS threads (each a subprocess
    that mostly waits for TensorFlow's import): script -> (future, its --out path), and
    under None the digests of benchmarks/results/ taken before any started."""
    try:
        request.getfixturevalue("movielens_or_skip")
        scripts = SCRIPTS
    except (
        pytest.skip.Exception
    ):  # no MovieLens: those scripts' tests skip with the message
        scripts = [s for s in SCRIPTS if s not in NEEDS_MOVIELENS]
    committed = _digest(common.RESULTS)
    folder = tmp_path_factory.mktemp("smoke")
    pool = ThreadPoolExecutor(max_workers=SMOKE_JOBS)
    runs = {
        s: (pool.submit(_smoke, s, folder / f"{s}.json"), folder / f"{s}.json")
        for s in scripts
    }
    runs[None] = committed
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run(script, smoke_runs, request):
    """``python benchmarks/<script> --smoke`` runs in seconds, and writes its results (to a
    temporary file) with the provenance block."""
    if script in NEEDS_MOVIELENS:
        request.getfixturevalue("movielens_or_skip")
    future, out = smoke_runs[script]
    run, seconds = future.result()
    assert run.returncode == 0, (
        f"{script} --smoke failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    print(f"{script} --smoke: {seconds:.1f} s")
    if script in NO_RESULTS_FILE:
        record = json.loads(run.stdout.splitlines()[0])  # its first line
    else:
        results = json.loads(out.read_text())
        record = results["provenance"]
        for part, by_part in results.get("provenance_by_part", {}).items():
            assert tuple(by_part) == common.PROVENANCE_KEYS, part
    assert tuple(record) == common.PROVENANCE_KEYS
    assert record["smoke"] is True
    assert record["command"].startswith(f"python benchmarks/{script} --smoke")
    assert record["note"] is None


def test_smoke_runs_left_committed_results_alone(smoke_runs):
    """Every smoke run wrote elsewhere: benchmarks/results/ is byte for byte as before."""
    for script, run in smoke_runs.items():
        if script is not None:
            run[0].result()
    assert _digest(common.RESULTS) == smoke_runs[None]


def test_committed_results_carry_provenance():
    """Every committed results file has the provenance block, or is listed as lacking it."""
    for path in sorted(common.RESULTS.glob("*.json")):
        results = json.loads(path.read_text())
        if path.name in LACKING_PROVENANCE:
            assert "provenance" not in results, (
                f"{path.name} has one now: update the list"
            )
            continue
        assert tuple(results["provenance"]) == common.PROVENANCE_KEYS, path.name
        for part, record in results.get("provenance_by_part", {}).items():
            assert tuple(record) == common.PROVENANCE_KEYS, (path.name, part)
