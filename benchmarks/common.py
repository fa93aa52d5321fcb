"""What every benchmark script shares: provenance, timing, peak memory, result files, RMSE, data.

One record of provenance per run (:func:`provenance`): the commit, whether the code the run
executes had uncommitted changes, the versions of Python and of the libraries, the CPU
count, the command line and the UTC times. :func:`save_results` writes it into the results
file as the block ``"provenance"`` (with the same keys in every file, :data:`PROVENANCE_KEYS`),
merging atomically: a temporary file in the same folder, then ``os.replace``, so that a run
that fails while writing leaves the previous file as it was.

Peak memory is measured one way, :func:`peak_rss_mib`: ``VmHWM`` from ``/proc/self/status``,
read *in the process whose peak it is* (a worker reports its own). ``getrusage``'s
``ru_maxrss`` is not used: for a process started by fork and exec it can carry the parent's
resident memory at the fork (Linux keeps the old address space's peak across ``exec``), so a
small worker of a large parent would report the parent's size.

``--smoke`` (:func:`add_smoke_arguments`): every script has a mode that runs in seconds, on
tiny sizes, without the peer libraries (myFM, Surprise, implicit), and writes to a temporary
file (or ``--out``) instead of ``benchmarks/results/``: it checks that the script still runs,
its numbers mean nothing. :func:`results_path` refuses to let a smoke run write a committed
results file.

Run the scripts from the repository root; they import this module as ``common`` (their own
folder is first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no lock (run one script per results file at a time)
    fcntl = None

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: The keys of every provenance record, in every results file.
PROVENANCE_KEYS = (
    "commit",  # git commit of the code run (full hash), None outside a checkout
    "dirty",  # True: the code run (DIRTY_PATHS) had uncommitted changes
    "command",  # the command line, as typed from the repository root
    "smoke",  # True for a --smoke run (its numbers mean nothing)
    "python",
    "versions",  # distribution -> version, for the libraries installed (CORE + PEERS)
    "cpu_count",  # os.cpu_count()
    "cpus_usable",  # CPUs this process may run on (its affinity), when known
    "machine",  # platform.machine()
    "started_utc",
    "finished_utc",  # filled by save_results
    "wall_seconds",  # started -> finished
    "load_average",  # os.getloadavg() when the results were saved (the machine is shared)
    "note",  # None for a record made by the run; else how it was made (recovered)
)
#: The code a benchmark executes: uncommitted changes here make a run "dirty".
DIRTY_PATHS = ("fmlib", "benchmarks/*.py", "book/tuning/*.py")
#: Distributions whose versions every record holds (when installed).
CORE = (
    "numpy",
    "scipy",
    "pandas",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "scikit-learn",
    "numba",
    "fmlib",
)
#: The libraries compared against; recorded when installed.
PEERS = ("myfm", "scikit-surprise", "implicit")


# --- provenance --------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, text=True, capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository this file is in; (None, None) outside a checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *DIRTY_PATHS)
    return commit, bool(status) if status is not None else None


def versions(names=CORE + PEERS) -> dict[str, str]:
    """Installed versions of ``names`` (read from the package metadata: nothing is imported)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "fmlib":  # run from the checkout without `pip install -e .`
                with contextlib.suppress(ImportError):
                    from fmlib.version import __version__

                    found[name] = __version__
    return found


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(argv: list[str] | None = None, smoke: bool = False) -> dict[str, Any]:
    """The record of this run, taken at its start (the commit is the code that runs).

    ``finished_utc``, ``wall_seconds`` and ``load_average`` are ``None`` until
    :func:`save_results` (or :func:`finish`) fills them.
    """
    commit, dirty = git_state()
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(ROOT)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    record = {
        "commit": commit,
        "dirty": dirty,
        "command": " ".join(["python", str(script), *argv[1:]]),
        "smoke": bool(smoke),
        "python": platform.python_version(),
        "versions": versions(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "machine": platform.machine(),
        "started_utc": utc_now(),
        "finished_utc": None,
        "wall_seconds": None,
        "load_average": None,
        "note": None,
        "_started": time.time(),
    }
    return record


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with the finishing time, the wall seconds and the load average."""
    out = {key: record.get(key) for key in PROVENANCE_KEYS}
    out["finished_utc"] = utc_now()
    if "_started" in record:
        out["wall_seconds"] = round(time.time() - record["_started"], 3)
    with contextlib.suppress(OSError, AttributeError):
        out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return out


# --- timing and memory -------------------------------------------------------------------
class Timer:
    """Wall and CPU seconds of a block: ``with Timer() as t: ...; t.seconds, t.cpu_seconds``.

    CPU seconds are this process's (all its threads: TensorFlow's add up in them), less
    disturbed than wall seconds by other work on a shared machine.
    """

    def __enter__(self) -> "Timer":
        self.seconds = self.cpu_seconds = None
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``VmHWM``), read in the process itself.

    Call it in the worker whose peak you want, not in its parent. Where ``/proc`` is missing
    (macOS) it falls back to ``ru_maxrss`` (bytes there), which is right for a process that
    was not forked from a large one.
    """
    value = _status_mib("VmHWM")
    if value is not None:
        return value
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def rss_mib() -> float | None:
    """This process's current resident memory in MiB (``VmRSS``); None without ``/proc``."""
    return _status_mib("VmRSS")


# --- results files -----------------------------------------------------------------------
def add_smoke_arguments(
    parser: argparse.ArgumentParser, default_out: Path | None
) -> None:
    """``--smoke`` and ``--out`` (default: the committed results file; a temporary file
    under ``--smoke``)."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long run on tiny sizes, without the peer libraries, "
        "written to a temporary file (or --out): checks the script runs",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results file (default {default_out.relative_to(ROOT) if default_out else 'none'}"
        "; under --smoke a temporary file)",
    )


def results_path(args: argparse.Namespace, default_out: Path) -> Path:
    """Where this run writes: ``--out``, else the committed file, else (smoke) a temp file.

    A smoke run never writes into ``benchmarks/results/``.
    """
    if args.out is not None:
        out = Path(args.out)
    elif getattr(args, "smoke", False):
        out = Path(tempfile.mkdtemp(prefix="fmlib-smoke-")) / default_out.name
    else:
        out = default_out
    if getattr(args, "smoke", False) and out.resolve().parent == RESULTS.resolve():
        raise SystemExit(f"--smoke does not write into {RESULTS}: give another --out")
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for read-modify-write of ``path`` by concurrent runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    with open(Path(tempfile.gettempdir()) / f"fmlib-bench.{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_results(path: Path) -> dict:
    """The results in ``path`` ({} when there is no file yet)."""
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and
    ``os.replace``: readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_results(
    path: Path,
    update: dict,
    record: dict,
    *,
    part: str | None = None,
    replace: bool = False,
    remove: tuple[str, ...] = (),
) -> dict:
    """Merge ``update`` into the results file ``path`` and record the run's provenance.

    The top-level keys of ``update`` replace those in the file; the others are kept
    (``replace=True``: the file holds ``update`` alone; ``remove``: top-level keys to drop,
    such as the run metadata of an older shape). ``"provenance"`` becomes this run's
    record (:func:`finish`); a script whose parts run apart passes ``part``, and the record
    is also kept under ``"provenance_by_part"[part]``, so every part says which commit and
    command produced it. Read-modify-write under a lock, written atomically
    (:func:`write_atomic`). Returns what was written.
    """

    def merge(results: dict) -> dict:
        results = {} if replace else results
        for key in remove:
            results.pop(key, None)
        results.update(update)
        return results

    return update_results(path, merge, record, part=part)


def update_results(
    path: Path, change, record: dict, *, part: str | None = None, quiet: bool = False
) -> dict:
    """The general form of :func:`save_results`: under the lock, ``change(results)`` gets
    the file's results (a dict, {} for a new file) and returns the new ones; the run's
    provenance is added and the file written atomically. Returns what was written."""
    path = Path(path)
    done = finish(record)
    with _locked(path):
        results = change(read_results(path))
        results["provenance"] = done
        if part is not None:
            results.setdefault("provenance_by_part", {})[part] = done
        write_atomic(path, json.dumps(results, indent=1, default=_json_default) + "\n")
    if not quiet:
        print(f"wrote {path}")
    return results


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- metrics -----------------------------------------------------------------------------
def rmse(y_hat, y, clip: tuple[float, float] | None = None) -> float:
    """Root mean squared error of ``y_hat`` against ``y`` (``clip``: predictions clipped
    to ``[low, high]`` first, as for star ratings)."""
    y_hat = np.asarray(y_hat, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if y_hat.shape != y.shape:
        raise ValueError(f"rmse: y_hat has {y_hat.size} values, y has {y.size}")
    if clip is not None:
        y_hat = np.clip(y_hat, *clip)
    return float(np.sqrt(np.mean((y_hat - y) ** 2)))


# --- data --------------------------------------------------------------------------------
#: Rows kept of a training (test) fold under --smoke.
SMOKE_TRAIN_ROWS, SMOKE_TEST_ROWS = 4000, 1000


def movielens():
    """MovieLens 100k (``FMLIB_DATA`` or a download)."""
    import fmlib

    return fmlib.load_movielens("ml-100k")


def fold_frames(
    ml, fold: str = "u1", *, side: bool = True, dates: bool = False, smoke: bool = False
):
    """(train, test) frames of a predefined fold, with the side features (``side``) and the
    rating's day (``dates``); under ``smoke`` their first rows only."""
    train, test = ml.split(fold)
    if side:
        train, test = (ml.with_side_features(d, dates=dates) for d in (train, test))
    if smoke:
        train, test = train.iloc[:SMOKE_TRAIN_ROWS], test.iloc[:SMOKE_TEST_ROWS]
    return train, test


def u1_relational(ml=None, smoke: bool = False):
    """The "+implicit" design of u1 as relation blocks (``fmlib.movielens_design``):
    (design, design_test, y, y_test)."""
    import fmlib

    train, test = fold_frames(
        ml if ml is not None else movielens(), "u1", dates=True, smoke=smoke
    )
    design, design_test = fmlib.movielens_design(train, test)
    return (
        design,
        design_test,
        train["rating"].to_numpy(float),
        test["rating"].to_numpy(float),
    )


def tuning_module():
    """``book/tuning/tune_movielens.py`` (the chapter "MovieLens 100k"'s protocol)."""
    path = str(ROOT / "book" / "tuning")
    if path not in sys.path:
        sys.path.insert(0, path)
    import tune_movielens

    return tune_movielens


def peer(name: str, smoke: bool):
    """Import a peer library; under ``smoke`` None when it is not installed (or when the
    environment sets ``FMLIB_BENCH_PEERS=0``, to try the smoke run as it is without them)."""
    if smoke and os.environ.get("FMLIB_BENCH_PEERS") == "0":
        print(f"--smoke: FMLIB_BENCH_PEERS=0, {name} left out")
        return None
    try:
        return __import__(name)
    except ImportError:
        if smoke:
            print(f"--smoke: {name} not installed, its part is left out")
            return None
        raise
