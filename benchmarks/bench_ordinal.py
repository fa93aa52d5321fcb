"""Benchmark: ordinal ratings (ordered probit) against myFM on myFM's own MovieLens protocol.

MovieLens 100k, fold u1, myFM's "ml-100k-extended" design rebuilt by
``fmlib.myfm_movielens_design`` (day of the rating one-hot; user block: user, age bins,
occupation, zip's first character, the movies the user rated scaled by 1/sqrt(count);
item block: item, release-year bins, genres, the users who rated it scaled likewise;
implicit sets from the training fold), rank 10, 512 sweeps, every sample kept (no
burn-in), predictions not clipped: myFM's published u1 numbers are regression 0.8833 and
ordered probit 0.8808 (examples/ml-100k-extended.ipynb of myFM 0.4.0).

In one process, on the same matrices, for each seed: ``fmlib.BayesianFM`` with
``task="regression"`` and ``task="ordinal"`` (test predictions accumulated during the
sweeps, ``keep_samples=False``), and myFM 0.4.0's ``MyFMRegressor`` and
``MyFMOrderedProbit`` (relation blocks; fit, then predict from its 512 kept samples).
Test RMSE of the (expected) rating, and seconds: fit (fmlib: with the test predictions)
and fit + predict, and per sweep. Mean and standard deviation over the seeds.

Run from the repository root (about 10 minutes on two idle cores; longer on a busy
machine):

    python benchmarks/bench_ordinal.py [--seeds 0 1 2] [--sweeps 512] [--out PATH]
    python benchmarks/bench_ordinal.py --smoke      # seconds: 1 seed, 3 sweeps, no file

Writes benchmarks/results/ordinal.json (with the commit, whether the tree was dirty,
versions, CPU count and time) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TQDM_DISABLE"] = "1"            # myFM's progress bars
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ordinal.json"

import myfm  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import fmlib  # noqa: E402

RANK = 10
PUBLISHED = {"myfm_regression": 0.8833, "myfm_ordinal": 0.8808}
METHODS = ("fmlib_regression", "fmlib_ordinal", "myfm_regression", "myfm_ordinal")


def rmse(y_hat, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_hat) - y) ** 2)))


def provenance() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()
    import tensorflow as tf
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "numba": numba.__version__,
                     "tensorflow": tf.__version__, "myfm": myfm.__version__,
                     "fmlib": fmlib.__version__},
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def myfm_blocks(design):
    return [myfm.RelationBlock(b.index.astype(np.int64), sp.csr_matrix(b.data))
            for b in design.blocks]


def run_fmlib(task, design, design_test, y, y_test, sweeps, seed, burn_in=0):
    start, cpu = time.perf_counter(), time.process_time()
    bfm = fmlib.BayesianFM(k=RANK, num_sweeps=sweeps, burn_in=burn_in, task=task,
                           groups=design.groups, seed=seed, keep_samples=False)
    bfm.fit(design, y, X_test=design_test)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    out = {"rmse": rmse(bfm.test_prediction_, y_test), "seconds_fit": seconds,
           "seconds_total": seconds, "seconds_per_sweep": seconds / sweeps,
           "cpu_seconds_fit": cpu, "cpu_seconds_per_sweep": cpu / sweeps}
    if task == "ordinal":
        out["acceptance_rate"] = bfm.acceptance_rate_
        out["cutpoints_last"] = [bfm.trace_[f"cutpoint[{j}]"].iloc[-1] for j in (1, 2, 3, 4)]
    return out


def run_myfm(task, design, design_test, y, y_test, sweeps, seed, burn_in=0):
    shapes = [s.stop - s.start for s in design.groups.values()]
    start, cpu = time.perf_counter(), time.process_time()
    if task == "regression":
        fm = myfm.MyFMRegressor(rank=RANK, random_seed=seed)
        fm.fit(design.X, y, X_rel=myfm_blocks(design), group_shapes=shapes,
               n_iter=sweeps, n_kept_samples=sweeps - burn_in)
    else:
        fm = myfm.MyFMOrderedProbit(rank=RANK, random_seed=seed)
        fm.fit(design.X, y.astype(np.int64) - 1, X_rel=myfm_blocks(design),
               group_shapes=shapes, n_iter=sweeps, n_kept_samples=sweeps - burn_in)
    fitted, cpu = time.perf_counter() - start, time.process_time() - cpu
    if task == "regression":
        pred = fm.predict(design_test.X, myfm_blocks(design_test))
    else:
        proba = fm.predict_proba(design_test.X, myfm_blocks(design_test))
        pred = 1 + proba @ np.arange(proba.shape[1])
    total = time.perf_counter() - start
    return {"rmse": rmse(pred, y_test), "seconds_fit": fitted, "seconds_total": total,
            "seconds_per_sweep": fitted / sweeps, "cpu_seconds_fit": cpu,
            "cpu_seconds_per_sweep": cpu / sweeps}


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in ("rmse", "seconds_fit", "seconds_total", "seconds_per_sweep",
                "cpu_seconds_fit", "cpu_seconds_per_sweep"):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        out[key] = {"mean": statistics.fmean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sweeps", type=int, default=512)
    parser.add_argument("--fold", default="u1")
    parser.add_argument("--burn-in", type=int, default=0,
                        help="samples discarded by both libraries (myFM's protocol: 0)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true",
                        help="1 seed, 3 sweeps, no results file unless --out")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.sweeps = args.seeds[:1], 3
    out_path = args.out if (args.out or args.smoke) else OUT
    meta = provenance()       # the code this process runs: read before the long runs
    ml = fmlib.load_movielens("ml-100k")
    train, test = ml.split(args.fold)
    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    start = time.perf_counter()
    design, design_test = fmlib.myfm_movielens_design(ml, train, test)
    print(f"{args.fold}: {design} (built in {time.perf_counter() - start:.1f} s)", flush=True)
    for method in args.methods:   # warm-up, not timed: numba compiles (or loads) its kernels
        lib, task = method.split("_")
        (run_fmlib if lib == "fmlib" else run_myfm)(task, design, design_test, y, y_test, 2, 0)
    runs = {m: [] for m in args.methods}
    for seed in args.seeds:
        for method in args.methods:   # interleaved: a busy spell hits every method alike
            lib, task = method.split("_")
            run = (run_fmlib if lib == "fmlib" else run_myfm)(
                task, design, design_test, y, y_test, args.sweeps, seed, args.burn_in)
            run["seed"] = seed
            runs[method].append(run)
            print(f"  seed {seed} {method:17s} RMSE {run['rmse']:.4f}  fit "
                  f"{run['seconds_fit']:6.1f} s  total {run['seconds_total']:6.1f} s",
                  flush=True)
    result = {
        "protocol": {"fold": args.fold, "rank": RANK, "sweeps": args.sweeps,
                     "kept_samples": args.sweeps - args.burn_in, "burn_in": args.burn_in,
                     "clipped": False,
                     "design": "fmlib.myfm_movielens_design (myFM's ml-100k-extended)",
                     "columns": design.n_features, "groups": list(design.groups)},
        "published_myfm_u1_512": PUBLISHED,
        "seeds": args.seeds,
        "runs": runs,
        "summary": {m: summary(r) for m, r in runs.items()},
        **meta,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_end": os.getloadavg(),
    }
    report(result)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, out_path)           # atomic: a reader never sees half a file
        print(f"wrote {out_path}")


def report(r: dict) -> None:
    s = r["summary"]
    n = len(r["seeds"])
    print(f"\n{r['protocol']['fold']}, rank {RANK}, {r['protocol']['sweeps']} sweeps, "
          f"{n} seed(s): mean ± sd")
    print(f"{'method':18s} {'RMSE':>17s} {'fit s':>13s} {'s/sweep':>15s} {'CPU s/sweep':>15s}")
    for m in s:
        e = s[m]
        print(f"{m:18s} {e['rmse']['mean']:.4f} ± {e['rmse']['sd']:.4f}  "
              f"{e['seconds_fit']['mean']:6.1f} ± {e['seconds_fit']['sd']:4.1f}  "
              f"{e['seconds_per_sweep']['mean']:.4f} ± {e['seconds_per_sweep']['sd']:.4f}  "
              + (f"{e['cpu_seconds_per_sweep']['mean']:.4f} ± {e['cpu_seconds_per_sweep']['sd']:.4f}"
                 if "cpu_seconds_per_sweep" in e else ""))


if __name__ == "__main__":
    main()
