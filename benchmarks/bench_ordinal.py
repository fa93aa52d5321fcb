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


def run_fmlib(task, design, design_test, y, y_test, sweeps, seed, burn_in=0, rank=RANK):
    with common.Timer() as t:
        bfm = fmlib.BayesianFM(
            k=rank,
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


def run_myfm(task, design, design_test, y, y_test, sweeps, seed, burn_in=0, rank=RANK):
    shapes = [s.stop - s.start for s in design.groups.values()]
    with common.Timer() as t:
        fm = _myfm_fit(task, design, y, shapes, sweeps, seed, burn_in, rank)
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


def _myfm_fit(task, design, y, shapes, sweeps, seed, burn_in, rank=RANK):
    if task == "regression":
        fm = myfm.MyFMRegressor(rank=rank, random_seed=seed)
        fm.fit(
            design.X,
            y,
            X_rel=myfm_blocks(design),
            group_shapes=shapes,
            n_iter=sweeps,
            n_kept_samples=sweeps - burn_in,
        )
    else:
        fm = myfm.MyFMOrderedProbit(rank=rank, random_seed=seed)
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
    parser.add_argument(
        "--mode",
        choices=("protocol", "designs"),
        default="protocol",
        help="protocol: u1, regression and ordinal against myFM (ordinal.json); "
        "designs: the candidate designs on the five folds (ordinal_designs.json)",
    )
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS)
    parser.add_argument("--folds", nargs="+", default=list(FOLDS), choices=FOLDS)
    parser.add_argument("--libs", nargs="+", default=["fmlib", "myfm"])
    parser.add_argument(
        "--resume", action="store_true", help="designs: skip runs already in --out"
    )
    parser.add_argument(
        "--worker",
        type=int,
        nargs=2,
        default=(0, 1),
        metavar=("I", "N"),
        help="designs: run every N-th item from the I-th (N processes share one file)",
    )
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.mode == "designs":
        myfm = common.peer("myfm", args.smoke)
        designs_main(args)
        return
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


# --- designs: the five folds, candidate designs, both libraries ------------------------
OUT_DESIGNS = common.RESULTS / "ordinal_designs.json"
#: candidate designs: name -> (rank, time features added to myFM's protocol).
DESIGNS = {"myfm_k10": (10, False), "time_k10": (10, True), "time_k20": (20, True)}
FOLDS = ("u1", "u2", "u3", "u4", "u5")
#: bins of the days since the user's first training rating: 0, 1, 2-7, 8-30, 31-90, 91+.
DAY_EDGES = np.array([1, 2, 8, 31, 91])
SECONDS_PER_DAY = 86400


def time_features(train, frame) -> tuple[sp.csr_matrix, dict, list[str]]:
    """Two one-hot groups from the rating's own timestamp and the training ratings only.

    ``since_first``: the days since the user's first training rating, binned at
    ``DAY_EDGES``; ``progress``: the decile of the share of the user's training ratings
    made before this one (where the rating falls in the user's history).
    """
    users = np.union1d(train["user"].to_numpy(), frame["user"].to_numpy())
    ut = np.searchsorted(users, train["user"].to_numpy())
    key = np.sort(ut.astype(np.int64) * 2**32 + train["timestamp"].to_numpy())
    count = np.bincount(ut, minlength=users.size)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    first = np.full(users.size, np.iinfo(np.int64).max)
    np.minimum.at(first, ut, train["timestamp"].to_numpy().astype(np.int64))
    u = np.searchsorted(users, frame["user"].to_numpy())
    t = frame["timestamp"].to_numpy().astype(np.int64)
    known = count[u] > 0
    days = np.where(known, (t - np.where(known, first[u], 0)) // SECONDS_PER_DAY, 0)
    since = np.searchsorted(DAY_EDGES, np.maximum(days, 0), side="right")
    before = np.searchsorted(key, u.astype(np.int64) * 2**32 + t) - start[u]
    share = np.where(known, before / np.maximum(count[u], 1), 0.0)
    progress = np.minimum((share * 10).astype(np.int64), 9)
    n = since.size
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([since, DAY_EDGES.size + 1 + progress])
    width = DAY_EDGES.size + 1 + 10
    T = sp.csr_matrix((np.ones(2 * n), (rows, cols)), shape=(n, width))
    names = [f"since_first={b}" for b in range(DAY_EDGES.size + 1)]
    names += [f"progress={d}" for d in range(10)]
    widths = {"since_first": DAY_EDGES.size + 1, "progress": 10}
    return T, widths, names


def with_time_features(design, train, frame):
    """``design`` with the :func:`time_features` of ``frame`` appended to its main
    block, each a prior group of its own (the relation blocks' groups shift right)."""
    T, widths, names = time_features(train, frame)
    n0, extra = design.X.shape[1], T.shape[1]
    groups, start = {}, n0
    for name, g in design.groups.items():
        if g.stop <= n0:
            groups[name] = g
        else:
            groups[name] = slice(g.start + extra, g.stop + extra)
    for name, w in widths.items():
        groups[name] = slice(start, start + w)
        start += w
    groups = dict(sorted(groups.items(), key=lambda item: item[1].start))
    fn = design.feature_names
    names = fn[:n0] + names + fn[n0:]
    X = sp.hstack([design.X, T], format="csr")
    return fmlib.RelationalDesign(X, design.blocks, groups=groups, feature_names=names)


def design_items(folds, seeds, designs):
    """The runs in the order they are done: seed by seed, design by design (in the
    order given), every fold; so that a cut-short run has whole five-fold means for
    its first seeds and designs."""
    return [(f, s, d) for s in seeds for d in designs for f in folds]


def designs_main(args) -> None:
    record = common.provenance(smoke=args.smoke)
    out_path = common.results_path(args, OUT_DESIGNS)
    libs = [m for m in ("fmlib", "myfm") if m in args.libs]
    if myfm is None:
        libs = ["fmlib"]
    if args.smoke:
        args.seeds, args.sweeps, args.folds = args.seeds[:1], 3, args.folds[:2]
    ml = common.movielens()
    done = set()
    if args.resume:
        for run in common.read_results(out_path).get("runs", []):
            done.add(
                (run["fold"], run["seed"], run["design"], run["lib"], run["sweeps"])
            )
    items = design_items(args.folds, args.seeds, args.designs)
    items = items[args.worker[0] :: args.worker[1]]
    cache = {}
    for fold, seed, name in items:
        if fold not in cache:  # the five folds' designs: a few MB each
            train, test = common.fold_frames(ml, fold, side=False, smoke=args.smoke)
            base = fmlib.myfm_movielens_design(ml, train, test)
            timed = tuple(
                with_time_features(d, train, f) for d, f in zip(base, (train, test))
            )
            cache[fold] = (base, timed, train["rating"].to_numpy(float), test["rating"])
        base, timed, y, y_test = cache[fold]
        rank, timef = DESIGNS[name]
        design, design_test = timed if timef else base
        for lib in libs:
            if (fold, seed, name, lib, args.sweeps) in done:
                continue
            run = (run_fmlib if lib == "fmlib" else run_myfm)(
                "ordinal",
                design,
                design_test,
                y,
                y_test.to_numpy(float),
                args.sweeps,
                seed,
                0,
                rank,
            )
            run.update(fold=fold, seed=seed, design=name, lib=lib, rank=rank)
            run.update(sweeps=args.sweeps, columns=design.n_features)
            print(
                f"  {fold} seed {seed} {name:9s} {lib:6s} RMSE {run['rmse']:.4f}  "
                f"fit {run['seconds_fit']:6.1f} s",
                flush=True,
            )

            def add(results, run=run):
                results.setdefault("runs", []).append(run)
                results["designs"] = {
                    d: {"rank": r, "time_features": tf}
                    for d, (r, tf) in DESIGNS.items()
                }
                results["protocol"] = DESIGNS_PROTOCOL
                results["summary"] = designs_summary(results["runs"])
                return results

            common.update_results(out_path, add, record, quiet=True)
    report_designs(common.read_results(out_path))
    print(f"wrote {out_path}")


DESIGNS_PROTOCOL = (
    "MovieLens 100k, folds u1-u5, task ordinal (ordered probit), every sweep kept "
    "(no burn-in), expected rating not clipped; myfm_*: fmlib.myfm_movielens_design; "
    "time_*: plus since_first and progress (bench_ordinal.time_features) in the main "
    "block; the design is chosen on u2-u5, u1 reported as the held-out fold"
)


def designs_summary(runs: list[dict]) -> dict:
    """Per library, design and number of sweeps (key ``lib/design/sweeps``): the RMSE's
    mean and sd over the seeds on every fold; the mean over u1-u5 (``five_fold``) and
    over u2-u5 (``u2_u5``, where the design is chosen) of every seed that finished those
    folds, then their mean and sd over those seeds."""
    out = {}
    for key in sorted({(r["lib"], r["design"], r["sweeps"]) for r in runs}):
        mine = [r for r in runs if (r["lib"], r["design"], r["sweeps"]) == key]
        folds = {
            f: _mean_sd([r["rmse"] for r in mine if r["fold"] == f])
            for f in sorted({r["fold"] for r in mine})
        }
        entry = {"by_fold": folds}
        for name, wanted in (("five_fold", FOLDS), ("u2_u5", FOLDS[1:])):
            means = []
            for s in sorted({r["seed"] for r in mine}):
                v = [r["rmse"] for r in mine if r["seed"] == s and r["fold"] in wanted]
                if len(v) == len(wanted):
                    means.append(statistics.fmean(v))
            entry[name] = _mean_sd(means) if means else None
        out["/".join(map(str, key))] = entry
    return out


def _mean_sd(v: list[float]) -> dict:
    return {
        "mean": statistics.fmean(v),
        "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
        "n": len(v),
    }


def report_designs(r: dict) -> None:
    print("\nRMSE mean ± sd over seeds (n seeds); five-fold: over per-seed means")
    for key, e in r.get("summary", {}).items():
        cells = "  ".join(
            f"{f} {v['mean']:.4f}±{v['sd']:.4f}({v['n']})"
            for f, v in e["by_fold"].items()
        )
        five = e["five_fold"]
        tail = (
            f"  5-fold {five['mean']:.4f}±{five['sd']:.4f}({five['n']})" if five else ""
        )
        print(f"{key:20s} {cells}{tail}")


if __name__ == "__main__":
    main()
