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
    python benchmarks/bench_ordinal.py --smoke      # seconds: 1 seed, 3 sweeps, 4000 ratings

Writes benchmarks/results/ordinal.json (with the provenance block of
``benchmarks/common.py``) and prints a table. ``--smoke`` runs fmlib only when myFM is
not installed, and writes to a temporary file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TQDM_DISABLE"] = "1"  # myFM's progress bars
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import fmlib  # noqa: E402

OUT = common.RESULTS / "ordinal.json"
RANK = 10
PUBLISHED = {"myfm_regression": 0.8833, "myfm_ordinal": 0.8808}
METHODS = ("fmlib_regression", "fmlib_ordinal", "myfm_regression", "myfm_ordinal")
myfm = None  # the peer library, imported in main()
rmse = common.rmse


def myfm_blocks(design):
    return [
        myfm.RelationBlock(b.index.astype(np.int64), sp.csr_matrix(b.data))
        for b in design.blocks
    ]


def run_fmlib(task, design, design_test, y, y_test, sweeps, seed, burn_in=0):
    with common.Timer() as t:
        bfm = fmlib.BayesianFM(
            k=RANK,
            num_sweeps=sweeps,
            burn_in=burn_in,
            task=task,
            groups=design.groups,
            seed=seed,
            keep_samples=False,
        )
        bfm.fit(design, y, X_test=design_test)
    seconds, cpu = t.seconds, t.cpu_seconds
    out = {
        "rmse": rmse(bfm.test_prediction_, y_test),
        "seconds_fit": seconds,
        "seconds_total": seconds,
        "seconds_per_sweep": seconds / sweeps,
        "cpu_seconds_fit": cpu,
        "cpu_seconds_per_sweep": cpu / sweeps,
    }
    if task == "ordinal":
        out["acceptance_rate"] = bfm.acceptance_rate_
        out["cutpoints_last"] = [
            bfm.trace_[f"cutpoint[{j}]"].iloc[-1] for j in (1, 2, 3, 4)
        ]
    return out


def run_myfm(task, design, design_test, y, y_test, sweeps, seed, burn_in=0):
    shapes = [s.stop - s.start for s in design.groups.values()]
    with common.Timer() as t:
        fm = _myfm_fit(task, design, y, shapes, sweeps, seed, burn_in)
    fitted, cpu = t.seconds, t.cpu_seconds
    with common.Timer() as t_predict:
        if task == "regression":
            pred = fm.predict(design_test.X, myfm_blocks(design_test))
        else:
            proba = fm.predict_proba(design_test.X, myfm_blocks(design_test))
            pred = 1 + proba @ np.arange(proba.shape[1])
    total = fitted + t_predict.seconds
    return {
        "rmse": rmse(pred, y_test),
        "seconds_fit": fitted,
        "seconds_total": total,
        "seconds_per_sweep": fitted / sweeps,
        "cpu_seconds_fit": cpu,
        "cpu_seconds_per_sweep": cpu / sweeps,
    }


def _myfm_fit(task, design, y, shapes, sweeps, seed, burn_in):
    if task == "regression":
        fm = myfm.MyFMRegressor(rank=RANK, random_seed=seed)
        fm.fit(
            design.X,
            y,
            X_rel=myfm_blocks(design),
            group_shapes=shapes,
            n_iter=sweeps,
            n_kept_samples=sweeps - burn_in,
        )
    else:
        fm = myfm.MyFMOrderedProbit(rank=RANK, random_seed=seed)
        fm.fit(
            design.X,
            y.astype(np.int64) - 1,
            X_rel=myfm_blocks(design),
            group_shapes=shapes,
            n_iter=sweeps,
            n_kept_samples=sweeps - burn_in,
        )
    return fm


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in (
        "rmse",
        "seconds_fit",
        "seconds_total",
        "seconds_per_sweep",
        "cpu_seconds_fit",
        "cpu_seconds_per_sweep",
    ):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        out[key] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
    return out


def main() -> None:
    global myfm
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sweeps", type=int, default=512)
    parser.add_argument("--fold", default="u1")
    parser.add_argument(
        "--burn-in",
        type=int,
        default=0,
        help="samples discarded by both libraries (myFM's protocol: 0)",
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)  # the code this process runs
    out_path = common.results_path(args, OUT)
    myfm = common.peer("myfm", args.smoke)
    if myfm is None:
        args.methods = [m for m in args.methods if m.startswith("fmlib")]
    if args.smoke:
        args.seeds, args.sweeps, args.burn_in = args.seeds[:1], 3, 0
    ml = common.movielens()
    train, test = common.fold_frames(ml, args.fold, side=False, smoke=args.smoke)
    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    with common.Timer() as t:
        design, design_test = fmlib.myfm_movielens_design(ml, train, test)
    print(f"{args.fold}: {design} (built in {t.seconds:.1f} s)", flush=True)
    for (
        method
    ) in args.methods:  # warm-up, not timed: numba compiles (or loads) its kernels
        lib, task = method.split("_")
        (run_fmlib if lib == "fmlib" else run_myfm)(
            task, design, design_test, y, y_test, 2, 0
        )
    runs = {m: [] for m in args.methods}
    for seed in args.seeds:
        for method in args.methods:  # interleaved: a busy spell hits every method alike
            lib, task = method.split("_")
            run = (run_fmlib if lib == "fmlib" else run_myfm)(
                task, design, design_test, y, y_test, args.sweeps, seed, args.burn_in
            )
            run["seed"] = seed
            runs[method].append(run)
            print(
                f"  seed {seed} {method:17s} RMSE {run['rmse']:.4f}  fit "
                f"{run['seconds_fit']:6.1f} s  total {run['seconds_total']:6.1f} s",
                flush=True,
            )
    result = {
        "protocol": {
            "fold": args.fold,
            "rank": RANK,
            "sweeps": args.sweeps,
            "kept_samples": args.sweeps - args.burn_in,
            "burn_in": args.burn_in,
            "clipped": False,
            "design": "fmlib.myfm_movielens_design (myFM's ml-100k-extended)",
            "columns": design.n_features,
            "groups": list(design.groups),
        },
        "published_myfm_u1_512": PUBLISHED,
        "seeds": args.seeds,
        "runs": runs,
        "summary": {m: summary(r) for m, r in runs.items()},
    }
    report(result)
    common.save_results(out_path, result, record, replace=True)


def report(r: dict) -> None:
    s = r["summary"]
    n = len(r["seeds"])
    print(
        f"\n{r['protocol']['fold']}, rank {RANK}, {r['protocol']['sweeps']} sweeps, "
        f"{n} seed(s): mean ± sd"
    )
    print(
        f"{'method':18s} {'RMSE':>17s} {'fit s':>13s} {'s/sweep':>15s} {'CPU s/sweep':>15s}"
    )
    for m in s:
        e = s[m]
        print(
            f"{m:18s} {e['rmse']['mean']:.4f} ± {e['rmse']['sd']:.4f}  "
            f"{e['seconds_fit']['mean']:6.1f} ± {e['seconds_fit']['sd']:4.1f}  "
            f"{e['seconds_per_sweep']['mean']:.4f} ± {e['seconds_per_sweep']['sd']:.4f}  "
            + (
                f"{e['cpu_seconds_per_sweep']['mean']:.4f} ± {e['cpu_seconds_per_sweep']['sd']:.4f}"
                if "cpu_seconds_per_sweep" in e
                else ""
            )
        )


if __name__ == "__main__":
    main()
