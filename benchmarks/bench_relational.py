"""Benchmark: relation blocks against the flat matrix and against myFM's blocks.

MovieLens 100k, fold u1, the "+implicit" design of ``bench_solvers.py`` (user, item, age
bucket, gender, occupation, release year one-hot; genres multi-hot; the movies the user
rated and the users who rated the movie, both scaled by 1/sqrt(count)) built by
``fmlib.movielens_design`` as two relation blocks (user and item), and the same matrix
flat (``design.to_csr()``). On the same process and data:

* sweep time of ``fmlib.BayesianFM`` (Gibbs) and of ``fmlib.fit(solver="als")``, flat
  and relational (median of the sweeps after the first; the flat matrix gets few sweeps,
  it takes seconds per sweep), in CPU seconds of the process and in wall seconds;
* sweep time of myFM 0.4.0 (``MyFMRegressor.fit`` with ``X_rel`` relation blocks, and
  flat): fit time / ``n_iter`` (set-up included);
* test RMSE after a few sweeps, flat and relational, same seed: the sweeps are the same
  coordinate updates in the same order with the same draws, so the RMSEs must agree to
  float noise; and the RMSE of 200 sweeps (burn-in 20) of BayesianFM and myFM on the
  blocks (predictions clipped to [1, 5]);
* memory: bytes of the design against the flat CSR (values, indices, index arrays).

Run from the repository root (about 3 minutes; longer on a busy machine):

    python benchmarks/bench_relational.py [--out benchmarks/results/relational.json]
    python benchmarks/bench_relational.py --smoke   # seconds: 4,000 rows of u1, 3 sweeps;
                                                    # myFM only if installed; a temp file

Writes benchmarks/results/relational.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import common  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import tensorflow as tf  # noqa: E402

import fmlib  # noqa: E402
from fmlib.solvers import coordinate  # noqa: E402
from fmlib.solvers import sweeper as relational_sweeper  # noqa: E402

fit_module = importlib.import_module(
    "fmlib.solvers.fit"
)  # where fit looks up als_sweeps
myfm = common.peer("myfm", "--smoke" in sys.argv)
OUT = common.RESULTS / "relational.json"
RANK, SEED, LAMBDA = 10, 0, 30.0
SWEEPS = {"flat": 3, "relational": 12}  # timed Gibbs / ALS sweeps
MYFM_SWEEPS = {"flat": 3, "relational": 50}
CHECK_SWEEPS, CHECK_BURN_IN = 3, 1  # the flat-vs-relational RMSE check
FULL_SWEEPS, FULL_BURN_IN = 200, 20


def smoke_settings() -> None:
    """--smoke: the fewest sweeps that still give a median after the first."""
    global CHECK_SWEEPS, CHECK_BURN_IN, FULL_SWEEPS, FULL_BURN_IN
    SWEEPS.update(flat=3, relational=3)
    MYFM_SWEEPS.update(flat=2, relational=2)
    CHECK_SWEEPS, CHECK_BURN_IN, FULL_SWEEPS, FULL_BURN_IN = 2, 1, 4, 2


def rmse(y_hat, y) -> float:
    return common.rmse(y_hat, y, clip=(1, 5))


def csr_bytes(X: sp.csr_matrix) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


def design_bytes(design) -> int:
    return csr_bytes(design.X) + sum(
        csr_bytes(b.data) + b.index.nbytes for b in design.blocks
    )


def stamp() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time of this process is what a sweep costs on a machine
    shared with other work; wall time is what it costs when the process has a core."""
    return time.perf_counter(), time.process_time()


def per_sweep(stamps: list[tuple[float, float]]) -> dict[str, float]:
    """Median wall and CPU seconds between consecutive stamps, the first interval left
    out (it includes warm-up)."""
    wall, cpu = (np.diff([s[j] for s in stamps])[1:] for j in (0, 1))
    return {"wall": float(np.median(wall)), "cpu": float(np.median(cpu))}


def bayesian_sweep_seconds(X, y, groups, sweeps: int) -> dict[str, float]:
    """Seconds per Gibbs sweep: the time between the refreshes that start the sweeps."""
    stamps = []
    classes = (coordinate.CoordinateSweeper, relational_sweeper.RelationalSweeper)
    originals = {cls: cls.refresh for cls in classes}

    def timed(original):
        def refresh(self):
            stamps.append(stamp())
            return original(self)

        return refresh

    for cls, original in originals.items():
        cls.refresh = timed(original)
    try:
        fmlib.BayesianFM(
            k=RANK, num_sweeps=sweeps, burn_in=sweeps - 1, groups=groups, seed=SEED
        ).fit(X, y)
        stamps.append(stamp())
    finally:
        for cls, original in originals.items():
            cls.refresh = original
    return per_sweep(stamps[1:])  # stamp 0: set-up; then one per sweep


def als_sweep_seconds(X, y, groups, sweeps: int) -> dict[str, float]:
    """Seconds per ALS sweep: ``fit`` one sweep at a time (a sweep keeps no state but
    the model, so this is the same run), set-up timed apart."""
    fm = fmlib.FactorizationMachine(
        X.shape[1], k=RANK, init_std=0.1, seed=SEED, dtype=tf.float64
    )
    fm.w0.assign(y.mean())
    stamps = []
    original = fit_module.als_sweeps

    def timed_sweeps(*args, **kwargs):
        sweep = original(*args, **kwargs)

        def timed():
            stamps.append(stamp())
            return sweep()

        return timed

    fit_module.als_sweeps = timed_sweeps
    try:
        fmlib.fit(
            fm,
            X,
            y,
            solver="als",
            num_epochs=sweeps,
            lambda_w=LAMBDA,
            lambda_v=LAMBDA,
            groups=groups,
        )
        stamps.append(stamp())
    finally:
        fit_module.als_sweeps = original
    return per_sweep(stamps)


def myfm_fit(X, rel, y, group_shapes, sweeps, kept):
    """myFM's fit; (model, {"wall", "cpu"} seconds per sweep, set-up included)."""
    start = stamp()
    fm = myfm.MyFMRegressor(rank=RANK, random_seed=SEED).fit(
        X, y, X_rel=rel, n_iter=sweeps, n_kept_samples=kept, group_shapes=group_shapes
    )
    end = stamp()
    return fm, {
        "wall": (end[0] - start[0]) / sweeps,
        "cpu": (end[1] - start[1]) / sweeps,
    }


def myfm_blocks(design):
    return [
        myfm.RelationBlock(b.index.astype(np.int64), sp.csr_matrix(b.data))
        for b in design.blocks
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(
        smoke=args.smoke
    )  # the code this process runs: read first
    out_path = common.results_path(args, OUT)
    if args.smoke:
        smoke_settings()
    ml = common.movielens()
    train, test = common.fold_frames(ml, "u1", dates=True, smoke=args.smoke)
    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    start = time.perf_counter()
    design, design_test = fmlib.movielens_design(train, test)
    build = time.perf_counter() - start
    start = time.perf_counter()
    X, X_test = design.to_csr(), design_test.to_csr()
    flatten = time.perf_counter() - start
    groups = design.groups
    shapes = [g.stop - g.start for g in groups.values()]
    out = {
        "rows": design.n_rows,
        "columns": design.n_features,
        "nnz_flat_per_row": X.nnz / X.shape[0],
        "nnz_stored": design.nnz,
        "nnz_flat": X.nnz,
        "bytes_design": design_bytes(design),
        "bytes_flat": csr_bytes(X),
        "seconds_build_design": build,
        "seconds_flatten": flatten,
    }
    print(f"u1: {design}", flush=True)

    # --- sweep times ------------------------------------------------------------------
    for name, data in (("relational", design), ("flat", X)):
        out[f"bayesian_{name}"] = bayesian_sweep_seconds(data, y, groups, SWEEPS[name])
        out[f"als_{name}"] = als_sweep_seconds(data, y, groups, SWEEPS[name])
        print(
            f"  {name}: BayesianFM {out[f'bayesian_{name}']}, ALS {out[f'als_{name}']}",
            flush=True,
        )
    empty = sp.csr_matrix((design.n_rows, 0))
    if myfm is not None:
        _, out["myfm_relational"] = myfm_fit(
            empty, myfm_blocks(design), y, shapes, MYFM_SWEEPS["relational"], 1
        )
        _, out["myfm_flat"] = myfm_fit(X, [], y, shapes, MYFM_SWEEPS["flat"], 1)
        print(
            f"  myFM: relational {out['myfm_relational']}, flat {out['myfm_flat']}",
            flush=True,
        )
    solvers = ("bayesian", "als", "myfm") if myfm is not None else ("bayesian", "als")
    for clock in ("cpu", "wall"):
        for solver in solvers:
            out[f"{solver}_flat_over_relational_{clock}"] = (
                out[f"{solver}_flat"][clock] / out[f"{solver}_relational"][clock]
            )
        if myfm is not None:
            out[f"bayesian_over_myfm_throughput_relational_{clock}"] = (
                out["myfm_relational"][clock] / out["bayesian_relational"][clock]
            )

    # --- the same sweeps: RMSE flat and relational ------------------------------------
    check = {}
    for name, data, data_test in (
        ("relational", design, design_test),
        ("flat", X, X_test),
    ):
        bfm = fmlib.BayesianFM(
            k=RANK,
            num_sweeps=CHECK_SWEEPS,
            burn_in=CHECK_BURN_IN,
            groups=groups,
            seed=SEED,
        ).fit(data, y)
        check[f"bayesian_{name}"] = rmse(bfm.predict(data_test), y_test)
        fm = fmlib.FactorizationMachine(
            X.shape[1], k=RANK, init_std=0.1, seed=SEED, dtype=tf.float64
        )
        fm.w0.assign(y.mean())
        fmlib.fit(
            fm,
            data,
            y,
            solver="als",
            num_epochs=CHECK_SWEEPS,
            lambda_w=LAMBDA,
            lambda_v=LAMBDA,
            groups=groups,
        )
        check[f"als_{name}"] = rmse(fm.predict(data_test), y_test)
    out["check"] = {"sweeps": CHECK_SWEEPS, "burn_in": CHECK_BURN_IN, **check}
    print(f"  RMSE after {CHECK_SWEEPS} sweeps: {check}", flush=True)

    # --- 200 sweeps on the blocks -----------------------------------------------------
    start = time.perf_counter()
    bfm = fmlib.BayesianFM(
        k=RANK, num_sweeps=FULL_SWEEPS, burn_in=FULL_BURN_IN, groups=groups, seed=SEED
    ).fit(design, y)
    full = {
        "bayesian_relational": rmse(bfm.predict(design_test), y_test),
        "bayesian_relational_seconds": time.perf_counter() - start,
    }
    if myfm is not None:
        fm, _ = myfm_fit(
            empty,
            myfm_blocks(design),
            y,
            shapes,
            FULL_SWEEPS,
            FULL_SWEEPS - FULL_BURN_IN,
        )
        full["myfm_relational"] = rmse(
            fm.predict(
                sp.csr_matrix((design_test.n_rows, 0)), X_rel=myfm_blocks(design_test)
            ),
            y_test,
        )
    out["full"] = {"sweeps": FULL_SWEEPS, "burn_in": FULL_BURN_IN, **full}
    print(f"  RMSE after {FULL_SWEEPS} sweeps: {full}", flush=True)

    out.update(
        machine=record["machine"],
        commit=(record["commit"] or "")[:7],
        rank=RANK,
        seed=SEED,
        als_lambda=LAMBDA,
        sweeps_timed=SWEEPS,
        myfm_sweeps_timed=MYFM_SWEEPS,
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    common.save_results(out_path, out, record, replace=True)
    report(out)


def report(r: dict) -> None:
    print(
        f"\nMovieLens 100k u1, +implicit design: {r['rows']:,} ratings, "
        f"{r['columns']:,} columns, {r['nnz_flat_per_row']:.1f} non-zeros per flat "
        "row; "
        f"the blocks store {r['nnz_stored']:,} non-zeros for {r['nnz_flat']:,} "
        f"({r['bytes_design'] / 2**20:.1f} MiB against "
        f"{r['bytes_flat'] / 2**20:.1f} MiB)"
    )
    print("seconds per sweep, CPU (wall)")
    print(f"{'solver':<11} {'flat':>16} {'blocks':>16} {'flat/blocks':>16}")
    for solver, label in (
        ("bayesian", "BayesianFM"),
        ("als", "fmlib ALS"),
        ("myfm", "myFM"),
    ):
        if f"{solver}_flat" not in r:  # --smoke without myFM
            continue
        flat, rel = r[f"{solver}_flat"], r[f"{solver}_relational"]
        cells = [f"{t['cpu']:.3f} ({t['wall']:.3f})" for t in (flat, rel)]
        ratio = (
            f"{r[f'{solver}_flat_over_relational_cpu']:.1f} "
            f"({r[f'{solver}_flat_over_relational_wall']:.1f})"
        )
        print(f"{label:<11} {cells[0]:>16} {cells[1]:>16} {ratio:>16}")
    if "myfm_flat" in r:
        print(
            "BayesianFM / myFM throughput on relation blocks: CPU "
            f"{r['bayesian_over_myfm_throughput_relational_cpu']:.2f}, wall "
            f"{r['bayesian_over_myfm_throughput_relational_wall']:.2f}"
        )


if __name__ == "__main__":
    main()
