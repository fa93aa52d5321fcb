"""Benchmark: fmlib's solvers (Adam, ALS, Gibbs sampling) against myFM on MovieLens 100k.

A step table in the manner of myFM's MovieLens tutorial: four feature designs, each adding
blocks to the previous one,

1. "user+item": one-hot user and item;
2. "+side": + age bucket, gender, occupation, release year (one-hot) and genres (multi-hot);
3. "+implicit": + the movies the user rated and the users who rated the movie (both scaled
   by 1/sqrt(count), ``implicit=("user", "item"), implicit_items=("item", "user")``);
4. "+dates": + the day of the rating (one-hot).

For every design and fold (u1..u5), one ``fmlib.FeatureEncoder`` is fitted on the training
fold and gives the design matrices and the feature blocks (``encoder.groups_``); on them run

* "fmlib Adam": the chapter "MovieLens 100k"'s protocol, ``fit_with_validation`` from
  ``book/tuning/tune_movielens.py`` (k = 8, lambda_v = 1e-4, lr = 0.01, 10% of the training
  fold held out for early stopping; it fits its own encoder on the other 90%, as in the
  chapter);
* "fmlib ALS": ``fmlib.fit(solver="als")``, k = 10, init_std = 0.1, seed 0, w0 starting at
  the mean rating, up to 50 sweeps with early stopping (patience 3) on the same 10% held out
  (``validation_mask``); lambda_w = lambda_v = lambda chosen once per design from
  ``ALS_GRID`` (extended while the best value is at an end of it) by validation RMSE on
  u1's validation split (the test folds are never read for it);
* "fmlib BayesianFM": ``fmlib.BayesianFM(k=10, num_sweeps=200, burn_in=20, seed=0,
  groups=encoder.groups_)`` on the whole training fold;
* "myFM": ``myfm.MyFMRegressor(rank=10, random_seed=0).fit(X, y, n_iter=200,
  n_kept_samples=180, group_shapes=...)``, one prior per block of ``encoder.groups_``: the
  same kept samples as BayesianFM.

Reported per (design, method, fold): test RMSE of the raw predictions and of the predictions
clipped to [1, 5] (myFM's published MovieLens numbers clip), and seconds (training and
prediction; the shared encoding is timed separately). Then a throughput table on u1.base per
design: rows x sweeps / s of BayesianFM (median of the sweeps after the first, timed at
the start of every sweep), of ALS (median of ``epoch_seconds`` after the first sweep) and of
myFM (fit time / n_iter with few sweeps, setup included), and the ratios BayesianFM / myFM
(throughput) and ALS / BayesianFM (time per sweep).

The run is resumable: every (design, fold, method) is written to the JSON as soon as it is
done (a locked read-modify-write, so runs on other designs or folds may go on at the same
time) and entries already in it are skipped, so a long run can be stopped and continued. Run from the
repository root, after ``pip install -r benchmarks/requirements.txt``:

    python benchmarks/bench_solvers.py [--folds u1,...] [--designs user+item,+side,...]
        [--methods "fmlib Adam,fmlib ALS,fmlib BayesianFM,myFM"] [--no-throughput]
        [--redo "fmlib BayesianFM,throughput"]      # recompute these even if present

Cost on a 2 vCPU machine: about 10 min for user+item and +side on five folds; about 45 min
per implicit design and fold (BayesianFM 6-10 s per sweep there, myFM 2-3.5 s; ALS's lambda
grid about 10 min per design).
``--sweeps`` and ``--out`` are for smoke tests only (fewer Gibbs sweeps, another file).

    python benchmarks/bench_solvers.py --smoke   # seconds: "user+item" on 4,000 rows of u1,
                                                 # 4 sweeps, one ALS lambda; myFM only if
                                                 # installed; a temporary file

Writes benchmarks/results/solvers.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar

import common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import fmlib  # noqa: E402
from fmlib.solvers import coordinate  # noqa: E402

ROOT = common.ROOT
myfm = common.peer("myfm", "--smoke" in sys.argv)
tune_movielens = common.tuning_module()
fit_with_validation, validation_mask = (
    tune_movielens.fit_with_validation,
    tune_movielens.validation_mask,
)

BASE = ["user", "item"]
SIDE = ["age_bucket", "gender", "occupation", "release_year"]
IMPLICIT = dict(
    implicit=("user", "item"), implicit_items=("item", "user"), implicit_norm="sqrt"
)
DESIGNS = {
    "user+item": dict(categorical=BASE),
    "+side": dict(categorical=BASE + SIDE, multi_hot=["genres"]),
    "+implicit": dict(categorical=BASE + SIDE, multi_hot=["genres"], **IMPLICIT),
    "+dates": dict(categorical=BASE + SIDE + ["day"], multi_hot=["genres"], **IMPLICIT),
}
METHODS = ("fmlib Adam", "fmlib ALS", "fmlib BayesianFM", "myFM")
FOLDS = ("u1", "u2", "u3", "u4", "u5")
ADAM = dict(lambda_v=1e-4, lr=0.01)  # k = 8 etc.: tune_movielens.FIXED
RANK, N_SWEEPS, BURN_IN, SEED = 10, 200, 20, 0
ALS = dict(k=10, init_std=0.1, max_sweeps=50, patience=3)
ALS_GRID = (1.0, 3.0, 10.0, 30.0)
ALS_GRID_UP, ALS_GRID_DOWN = (
    (100.0, 300.0, 1000.0),
    (0.3, 0.1),
)  # only if the best is at an end
# sweeps per throughput measurement: (BayesianFM, ALS, myFM)
THROUGHPUT_SWEEPS = {
    "user+item": (20, 20, 50),
    "+side": (10, 10, 30),
    "+implicit": (5, 5, 10),
    "+dates": (5, 5, 10),
}
OUT = common.RESULTS / "solvers.json"
SMOKE = False


def smoke_settings() -> None:
    """--smoke: 4,000 rows of u1 (``common.fold_frames``), few sweeps and epochs."""
    global SMOKE, BURN_IN, ALS_GRID, ALS_GRID_UP, ALS_GRID_DOWN, THROUGHPUT_SWEEPS
    SMOKE, BURN_IN = True, 2
    ALS_GRID, ALS_GRID_UP, ALS_GRID_DOWN = (10.0,), (), ()
    ALS["max_sweeps"] = 3
    THROUGHPUT_SWEEPS = {design: (3, 3, 2) for design in THROUGHPUT_SWEEPS}
    tune_movielens.FIXED["max_epochs"] = 2


rmse = common.rmse


def scores(y_hat, y) -> dict:
    return {"rmse": rmse(y_hat, y), "rmse_clipped": rmse(np.clip(y_hat, 1.0, 5.0), y)}


def group_shapes(encoder) -> list[int]:
    """Sizes of the encoder's blocks in column order (myFM's ``group_shapes``)."""
    blocks = sorted(encoder.groups_.values(), key=lambda s: s.start)
    assert blocks[0].start == 0 and all(
        a.stop == b.start for a, b in zip(blocks, blocks[1:])
    )
    return [b.stop - b.start for b in blocks]


def code_version(record: dict) -> dict:
    """The commit (a star: with uncommitted changes), and a hash of the solver sources
    (another engineer may speed them up), kept with every entry."""
    commit = (record["commit"] or "")[:7] + ("*" if record["dirty"] else "")
    digest = hashlib.sha1()
    for name in ("coordinate.py", "mcmc.py", "als.py"):
        digest.update((ROOT / "fmlib" / "solvers" / name).read_bytes())
    return {"commit": commit, "solvers_sha1": digest.hexdigest()[:12]}


# --- state --------------------------------------------------------------------------------
SECTIONS = ("runs", "als_lambda", "throughput")


def load(path: Path) -> dict:
    state = common.read_results(path)
    for section in SECTIONS:
        state.setdefault(section, {})
    return state


def save(state: dict, path: Path, changed: tuple[str, str], record: dict) -> None:
    """Write ``state[section][key]`` for ``changed = (section, key)`` into the file.

    Read-modify-write under a lock (``common.update_results``): entries written meanwhile by
    another run of this script (another design or fold) are kept, and copied into ``state``.
    """

    def change(disk: dict) -> dict:
        for section in SECTIONS:
            disk.setdefault(section, {})
        section, key = changed
        disk[section][key] = state[section][key]
        for name in SECTIONS:
            state[name].update(
                {k: v for k, v in disk[name].items() if (name, k) != changed}
            )
        als = {
            **ALS,
            "grid": ALS_GRID,
            "grid_up": ALS_GRID_UP,
            "grid_down": ALS_GRID_DOWN,
        }
        disk.update(
            machine=record["machine"],
            sweeps=state["sweeps"],
            config={
                "designs": DESIGNS,
                "adam": ADAM,
                "als": als,
                "rank": RANK,
                "burn_in": BURN_IN,
                "seed": SEED,
            },
        )
        return disk

    common.update_results(path, change, record, quiet=True)


class Fold:
    """The training and test frames of one fold and, built on first use, the design matrices."""

    def __init__(self, ml, fold: str, design: str):
        self.fold, self.design = fold, design
        self.train, self.test = common.fold_frames(ml, fold, dates=True, smoke=SMOKE)
        self.y = self.train["rating"].to_numpy(float)
        self.y_test = self.test["rating"].to_numpy(float)
        self.val = validation_mask(self.train)
        self._built = False

    def build(self) -> "Fold":
        if not self._built:
            start = time.perf_counter()
            self.encoder = fmlib.FeatureEncoder(**DESIGNS[self.design])
            self.X = self.encoder.fit_transform(self.train)
            self.X_test = self.encoder.transform(self.test)
            self.encode_seconds = time.perf_counter() - start
            self._built = True
        return self


# --- the methods --------------------------------------------------------------------------
def run_adam(f: Fold, sweeps: int) -> dict:
    start = time.perf_counter()
    fm, encoder, history = fit_with_validation(
        f.train, DESIGNS[f.design], ADAM["lambda_v"], ADAM["lr"]
    )
    y_hat = fm.predict(encoder.transform(f.test))
    return {
        **scores(y_hat, f.y_test),
        "seconds": time.perf_counter() - start,
        "epochs": len(history),
        "best_epoch": history.attrs["best_epoch"],
    }


def als_model(f: Fold, lam: float, max_sweeps: int | None = None):
    """ALS on the 90% of the fold's matrix, early stopping on the 10% held out."""
    max_sweeps = ALS["max_sweeps"] if max_sweeps is None else max_sweeps
    fit_rows = ~f.val
    fm = fmlib.FactorizationMachine(
        f.X.shape[1], k=ALS["k"], init_std=ALS["init_std"], seed=SEED, dtype=tf.float64
    )
    fm.w0.assign(f.y[fit_rows].mean())
    history = fmlib.fit(
        fm,
        f.X[fit_rows],
        f.y[fit_rows],
        solver="als",
        num_epochs=max_sweeps,
        lambda_w=lam,
        lambda_v=lam,
        groups=f.encoder.groups_,
        validation_data=(f.X[f.val], f.y[f.val]),
        patience=ALS["patience"],
    )
    return fm, history


def choose_lambda(state: dict, ml, design: str, path: Path, record: dict) -> float:
    """lambda for ALS: the grid value with the lowest validation RMSE on u1's validation split.

    The grid is ``ALS_GRID``; while the best value is at its upper (lower) end, the next
    value of ``ALS_GRID_UP`` (``ALS_GRID_DOWN``) is tried too, so that the choice is not
    cut off by the grid.
    """
    entry = state["als_lambda"].setdefault(design, {"grid": {}})
    f = None
    grid, up, down = list(ALS_GRID), list(ALS_GRID_UP), list(ALS_GRID_DOWN)
    while True:
        for lam in grid:
            if str(lam) in entry["grid"]:
                continue
            f = f or Fold(ml, "u1", design).build()
            start = time.perf_counter()
            _, history = als_model(f, lam)
            best = history.attrs["best_epoch"]
            entry["grid"][str(lam)] = {
                "val_rmse": float(history.loc[best, "val_rmse"]),
                "best_sweep": int(best),
                "sweeps": len(history),
                "seconds": time.perf_counter() - start,
            }
            print(
                f"  ALS lambda grid, {design}, u1 validation: lambda={lam:g} val RMSE "
                f"{entry['grid'][str(lam)]['val_rmse']:.4f} (best sweep {best})",
                flush=True,
            )
            save(state, path, ("als_lambda", design), record)
        chosen = min(grid, key=lambda lam: entry["grid"][str(lam)]["val_rmse"])
        if chosen == max(grid) and up:
            grid.append(up.pop(0))
        elif chosen == min(grid) and down:
            grid.insert(0, down.pop(0))
        else:
            break
    entry["chosen"] = float(chosen)
    save(state, path, ("als_lambda", design), record)
    return entry["chosen"]


def run_als(f: Fold, lam: float) -> dict:
    start = time.perf_counter()
    fm, history = als_model(f.build(), lam)
    y_hat = fm.predict(f.X_test)
    seconds = history.attrs["epoch_seconds"]
    return {
        **scores(y_hat, f.y_test),
        "seconds": time.perf_counter() - start,
        "lambda": lam,
        "sweeps": len(history),
        "best_sweep": history.attrs["best_epoch"],
        "seconds_per_sweep": statistics.median(seconds[1:] or seconds),
    }


def run_bayesian(f: Fold, sweeps: int) -> dict:
    f.build()
    start = time.perf_counter()
    bfm = fmlib.BayesianFM(
        k=RANK, num_sweeps=sweeps, burn_in=BURN_IN, groups=f.encoder.groups_, seed=SEED
    ).fit(f.X, f.y)
    fit_seconds = time.perf_counter() - start
    y_hat = bfm.predict(f.X_test)
    return {
        **scores(y_hat, f.y_test),
        "seconds": time.perf_counter() - start,
        "fit_seconds": fit_seconds,
        "seconds_per_sweep": fit_seconds / sweeps,
        "sweeps": sweeps,
        "kept": sweeps - BURN_IN,
        "train_rmse_last": float(bfm.trace_["train_rmse"].iloc[-1]),
    }


def run_myfm(f: Fold, sweeps: int) -> dict:
    f.build()
    start = time.perf_counter()
    fm = myfm.MyFMRegressor(rank=RANK, random_seed=SEED).fit(
        f.X,
        f.y,
        n_iter=sweeps,
        n_kept_samples=sweeps - BURN_IN,
        group_shapes=group_shapes(f.encoder),
    )
    fit_seconds = time.perf_counter() - start
    y_hat = fm.predict(f.X_test)
    return {
        **scores(y_hat, f.y_test),
        "seconds": time.perf_counter() - start,
        "fit_seconds": fit_seconds,
        "seconds_per_sweep": fit_seconds / sweeps,
        "sweeps": sweeps,
        "kept": sweeps - BURN_IN,
    }


# --- throughput ---------------------------------------------------------------------------
def throughput(ml, design: str, lam: float) -> dict:
    f = Fold(ml, "u1", design).build()
    rows = f.X.shape[0]
    n_bfm, n_als, n_myfm = THROUGHPUT_SWEEPS[design]
    out = {"rows": rows, "columns": f.X.shape[1], "nnz_per_row": f.X.nnz / rows}

    # BayesianFM: CoordinateSweeper.refresh runs once at set-up and once at the start of every sweep
    stamps, original = [], coordinate.CoordinateSweeper.refresh

    def timed_refresh(self):
        stamps.append(time.perf_counter())
        return original(self)

    coordinate.CoordinateSweeper.refresh = timed_refresh
    try:
        fmlib.BayesianFM(
            k=RANK,
            num_sweeps=n_bfm,
            burn_in=n_bfm - 1,
            groups=f.encoder.groups_,
            seed=SEED,
        ).fit(f.X, f.y)
        stamps.append(time.perf_counter())
    finally:
        coordinate.CoordinateSweeper.refresh = original
    per_sweep = np.diff(stamps[1:])  # sweep 1 .. n_bfm (the last includes wrap-up)
    out["bayesian_seconds_per_sweep"] = float(np.median(per_sweep[1:]))
    out["bayesian_first_sweep_seconds"] = float(per_sweep[0])
    out["bayesian_rows_per_second"] = rows / out["bayesian_seconds_per_sweep"]

    fm = fmlib.FactorizationMachine(
        f.X.shape[1], k=ALS["k"], init_std=ALS["init_std"], seed=SEED, dtype=tf.float64
    )
    fm.w0.assign(f.y.mean())
    history = fmlib.fit(
        fm,
        f.X,
        f.y,
        solver="als",
        num_epochs=n_als,
        lambda_w=lam,
        lambda_v=lam,
        groups=f.encoder.groups_,
    )
    out["als_seconds_per_sweep"] = float(np.median(history.attrs["epoch_seconds"][1:]))
    out["als_rows_per_second"] = rows / out["als_seconds_per_sweep"]

    out["als_over_bayesian_time"] = (
        out["als_seconds_per_sweep"] / out["bayesian_seconds_per_sweep"]
    )
    out["sweeps_timed"] = {"bayesian": n_bfm, "als": n_als}
    if myfm is None:  # --smoke without myFM
        return out
    start = time.perf_counter()
    myfm.MyFMRegressor(rank=RANK, random_seed=SEED).fit(
        f.X, f.y, n_iter=n_myfm, n_kept_samples=1, group_shapes=group_shapes(f.encoder)
    )
    out["myfm_seconds_per_sweep"] = (time.perf_counter() - start) / n_myfm
    out["myfm_rows_per_second"] = rows / out["myfm_seconds_per_sweep"]
    out["bayesian_over_myfm_throughput"] = (
        out["bayesian_rows_per_second"] / out["myfm_rows_per_second"]
    )
    out["sweeps_timed"]["myfm"] = n_myfm
    return out


# --- tables -------------------------------------------------------------------------------
def report(state: dict) -> None:
    runs = state["runs"]
    print(
        "\nTest RMSE, predictions clipped to [1, 5] (raw in brackets); s = training + prediction"
    )
    print(
        f"{'design':<10} {'method':<17} {'n':>2} {'mean':>7} {'± std':>7} {'raw mean':>9} "
        + " ".join(f"{fold:>16}" for fold in FOLDS)
        + f" {'s/fold':>7}"
    )
    for design in DESIGNS:
        for method in METHODS:
            done = {
                fold: runs[k]
                for fold in FOLDS
                if (k := f"{design}|{fold}|{method}") in runs
            }
            if not done:
                continue
            clipped = [r["rmse_clipped"] for r in done.values()]
            raw = [r["rmse"] for r in done.values()]
            cells = " ".join(
                f"{done[fold]['rmse_clipped']:>7.4f} ({done[fold]['rmse']:.4f})"
                if fold in done
                else f"{'':>16}"
                for fold in FOLDS
            )
            std = f"{np.std(clipped):>7.4f}" if len(done) > 1 else f"{'':>7}"
            seconds = statistics.median(r["seconds"] for r in done.values())
            print(
                f"{design:<10} {method:<17} {len(done):>2} {np.mean(clipped):>7.4f} {std} "
                f"{np.mean(raw):>9.4f} {cells} {seconds:>7.1f}"
            )
    if state["als_lambda"]:
        print("\nALS lambda (u1 validation RMSE per grid value):")
        for design, entry in state["als_lambda"].items():
            grid = ", ".join(
                f"{lam}: {g['val_rmse']:.4f}" for lam, g in entry["grid"].items()
            )
            print(f"  {design:<10} chosen {entry.get('chosen', '?')}  ({grid})")
    if state["throughput"]:
        print("\nThroughput on u1.base (80,000 rows), rows x sweeps / s")
        print(
            f"{'design':<10} {'nnz/row':>7} {'BayesianFM':>11} {'s/sweep':>8} {'myFM':>10} {'s/sweep':>8} "
            f"{'ALS s/sweep':>11} {'BFM/myFM':>9} {'ALS/BFM time':>12}"
        )
        for design, t in state["throughput"].items():
            if "myfm_rows_per_second" not in t:  # --smoke without myFM
                print(
                    f"{design:<10} {t['nnz_per_row']:>7.1f} {t['bayesian_rows_per_second']:>11,.0f} "
                    f"{t['bayesian_seconds_per_sweep']:>8.3f} {'':>10} {'':>8} "
                    f"{t['als_seconds_per_sweep']:>11.3f}"
                )
                continue
            print(
                f"{design:<10} {t['nnz_per_row']:>7.1f} {t['bayesian_rows_per_second']:>11,.0f} "
                f"{t['bayesian_seconds_per_sweep']:>8.3f} {t['myfm_rows_per_second']:>10,.0f} "
                f"{t['myfm_seconds_per_sweep']:>8.3f} {t['als_seconds_per_sweep']:>11.3f} "
                f"{t['bayesian_over_myfm_throughput']:>9.2f} {t['als_over_bayesian_time']:>12.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default=",".join(FOLDS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--no-throughput", action="store_true", help="skip the throughput table"
    )
    parser.add_argument(
        "--redo",
        default="",
        help="methods (and/or 'throughput') to recompute for the "
        "chosen designs and folds even if present, e.g. after a change to the solvers",
    )
    parser.add_argument(
        "--sweeps", type=int, default=N_SWEEPS, help="Gibbs sweeps (smoke tests only)"
    )
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    args.out = common.results_path(args, OUT)
    if args.smoke:
        smoke_settings()
        args.folds, args.designs, args.sweeps = "u1", "user+item", 4
        if myfm is None:
            args.methods = ",".join(m for m in METHODS if m != "myFM")
    folds, designs, methods = (
        s.split(",") for s in (args.folds, args.designs, args.methods)
    )
    redo = [r for r in args.redo.split(",") if r]
    for name, given, known in (
        ("fold", folds, FOLDS),
        ("design", designs, DESIGNS),
        ("method", methods, METHODS),
        ("--redo entry", redo, METHODS + ("throughput",)),
    ):
        if unknown := [g for g in given if g not in known]:
            parser.error(f"unknown {name}(s) {unknown}; choose from {list(known)}")
    state = load(args.out)
    state.setdefault("sweeps", args.sweeps)
    if state["sweeps"] != args.sweeps:
        parser.error(
            f"{args.out} holds runs with {state['sweeps']} sweeps; use another --out"
        )
    ml = common.movielens()
    version = code_version(record)
    print(f"fmlib {version}", flush=True)
    for design in designs:
        lam = (
            choose_lambda(state, ml, design, args.out, record)
            if "fmlib ALS" in methods
            else None
        )
        for fold in folds:
            f = None
            for method in methods:
                key = f"{design}|{fold}|{method}"
                if method in redo:
                    state["runs"].pop(key, None)
                if key in state["runs"] and (
                    method != "fmlib ALS" or state["runs"][key]["lambda"] == lam
                ):
                    continue  # done (ALS: with the lambda chosen now)
                f = f or Fold(ml, fold, design)
                if method == "fmlib Adam":
                    out = run_adam(f, args.sweeps)
                elif method == "fmlib ALS":
                    out = run_als(f, lam)
                elif method == "fmlib BayesianFM":
                    out = run_bayesian(f, args.sweeps)
                else:
                    out = run_myfm(f, args.sweeps)
                if f._built:
                    out.update(
                        encode_seconds=f.encode_seconds,
                        nnz_per_row=f.X.nnz / f.X.shape[0],
                        columns=f.X.shape[1],
                    )
                state["runs"][key] = {
                    **out,
                    **version,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
                save(state, args.out, ("runs", key), record)
                print(
                    f"{design:<10} {fold} {method:<17} RMSE clipped {out['rmse_clipped']:.4f} "
                    f"raw {out['rmse']:.4f}  {out['seconds']:7.1f} s",
                    flush=True,
                )
        if "throughput" in redo:
            state["throughput"].pop(design, None)
        if not args.no_throughput and design not in state["throughput"]:
            lam_t = state["als_lambda"].get(design, {}).get("chosen", 10.0)
            state["throughput"][design] = {
                **throughput(ml, design, lam_t),
                "als_lambda": lam_t,
                **version,
            }
            save(state, args.out, ("throughput", design), record)
            t = state["throughput"][design]
            myfm_sweep = (
                f"{t['myfm_seconds_per_sweep']:.3f}"
                if "myfm_seconds_per_sweep" in t
                else "-"
            )
            print(
                f"{design:<10} throughput: BayesianFM {t['bayesian_seconds_per_sweep']:.3f} s/sweep, "
                f"myFM {myfm_sweep}, ALS {t['als_seconds_per_sweep']:.3f}",
                flush=True,
            )
    report(state)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
