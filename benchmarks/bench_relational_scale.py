"""Benchmark: gradient training on relation blocks, at scale and against flat.

Two parts, each under about 10 minutes on the 2-core machine:

* ``--part scale``: synthetic ratings with a per-user implicit block
  (``fmlib.data.relational_synthetic.make_relational_ratings``: main block user + item
  one-hot, user block = the items the user rated scaled by 1/sqrt(|N(u)|), about 60
  items per user on average) at 10^5, 10^6 and 10^7 ratings. For each size and solver
  (SGD and Adam through ``fmlib.fit(updates="sparse")`` on the blocks, Adam also with
  batches in chunks of 16 ratings of one user, ``fmlib.BlockChunks``, and one
  ``fmlib.BayesianFM`` Gibbs sweep on the blocks) one fresh subprocess generates the
  data, trains (3 epochs; 2 sweeps; the sampler also on the training ratings ordered
  by user, "mcmc-by-user"), and reports the epoch (sweep) time, the peak
  resident memory of the process (``common.peak_rss_mib``: VmHWM read in the worker, so
  every size and solver has its own peak), its resident memory after the imports and before training, and the
  RMSE on 1% of the ratings held out. The sweep time is the fit time less the set-up
  (schedule, sampler state, first refresh; timed alone after the fit), over 2. The
  fitted slope of log(epoch seconds) against log(ratings) is 1 for linear growth.
* ``--part movielens``: MovieLens 100k u1, the "+implicit" design of
  ``fmlib.movielens_design`` (user and item relation blocks) and the same features flat
  (``design.to_csr()``): seconds per SGD and Adam epoch at several batch sizes, for
  ``updates="sparse"`` and ``updates="dense"``, on both layouts in the same process (the
  same seed gives the same batches, so the weights agree to float rounding; the test
  RMSE of both is reported).

The machine is shared with other work: compare the ratios measured in one process, not
the absolute seconds.

    python benchmarks/bench_relational_scale.py --part scale
    python benchmarks/bench_relational_scale.py --part movielens
    python benchmarks/bench_relational_scale.py --smoke   # seconds: both parts, 3,000
                                                          # ratings with Adam in chunks and
                                                          # MCMC by user, 4,000 rows of u1;
                                                          # a temporary file

Writes benchmarks/results/relational_scale.json (each part updates its own key and its
record in ``provenance_by_part``) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import common  # noqa: E402
import numpy as np  # noqa: E402

OUT = common.RESULTS / "relational_scale.json"
K, SEED = 8, 0
SIZES = (10**5, 10**6, 10**7)
SCALE_BATCH = 4096
EPOCHS = 3  # per size; the median epoch is reported
GRADIENT = {  # solver -> fit arguments (row-sparse steps, occurrence penalty)
    "sgd": dict(optimizer="sgd", lr=0.5, lambda_w=1e-4, lambda_v=1e-4),
    "adam": dict(optimizer="adam", lr=0.01, lambda_w=1e-4, lambda_v=1e-4),
    "adam-chunks": dict(optimizer="adam", lr=0.01, lambda_w=1e-4, lambda_v=1e-4),
}
# solver -> fmlib.BlockChunks arguments: batches in chunks of one user's ratings
CHUNKS = {"adam-chunks": ("user", 16)}
ADDRESS_SPACE_CAP = 7 * 2**30  # per worker: TF maps ~1 GiB more than it uses
# "mcmc-by-user": the same sampler on the training ratings ordered by user, as rating
# files usually are (MovieLens's are); "mcmc" keeps the generator's random order
SOLVERS = ("sgd", "adam", "adam-chunks", "mcmc", "mcmc-by-user")
ML_BATCHES = (256, 1024, 4096, 16384)
ML_EPOCHS = 3  # the first includes tracing: the median of the others is reported
ML_RUNS = (("sgd", 0.05), ("adam", 0.01))  # optimizer, lr
SMOKE = False


def smoke_settings() -> None:
    """--smoke: tiny sizes, two of the solvers, one batch size."""
    global SMOKE, SIZES, SCALE_BATCH, EPOCHS, ML_BATCHES, ML_EPOCHS, ML_RUNS
    SMOKE, SIZES, SCALE_BATCH, EPOCHS = True, (3000,), 256, 2
    ML_BATCHES, ML_EPOCHS, ML_RUNS = (256,), 2, (("adam", 0.01),)


SMOKE_SOLVERS = ("adam-chunks", "mcmc-by-user")
peak_rss_mib = common.peak_rss_mib
rss_mib = common.rss_mib


def rmse(y_hat, y) -> float:
    return common.rmse(y_hat, y)


# --- scale: one subprocess per (size, solver) --------------------------------------
def step_nnz(design, batch_size: int, chunks=None, n_batches: int = 50) -> dict:
    """Mean distinct users per batch and the non-zeros a step reads, flat / on blocks,
    over the first batches of a random permutation, or of ``chunks``'s order (a
    ``fmlib.BlockChunks``): what a step's cost follows."""
    rng = np.random.default_rng(SEED)
    if chunks is None:
        order = rng.permutation(design.n_rows)
    else:
        order = chunks.permutation(design, rng)
    block = design.blocks[0]
    sizes = np.diff(block.data.indptr)
    users, flat, blocks = [], 0, 0
    for b in range(min(n_batches, design.n_rows // batch_size)):
        at = order[b * batch_size : (b + 1) * batch_size]
        U = np.unique(block.index[at])
        users.append(U.size)
        main = np.diff(design.X.indptr)[at].sum()
        flat += main + sizes[block.index[at]].sum()
        blocks += main + sizes[U].sum()
    return {
        "distinct_users_per_batch": float(np.mean(users)),
        "step_nnz_flat_over_blocks": float(flat / blocks),
    }


def commit() -> str:
    """The commit this worker's code is from (a star: with uncommitted changes)."""
    sha, dirty = common.git_state()
    return (sha or "")[:7] + ("*" if dirty else "")


def worker(size: int, solver: str) -> dict:
    """Generate ``size`` ratings, train one epoch (sweep), report time and memory."""
    import fmlib
    from fmlib.data.relational_synthetic import make_relational_ratings

    rss_import = rss_mib()
    start = time.perf_counter()
    data = make_relational_ratings(size, k=4, seed=SEED)
    design, y = data.design, data.y
    generate = time.perf_counter() - start
    held = max(1000, size // 100)  # the pairs are in random order: the last 1% held out
    test = design[-held:]
    y_train, y_test = y[:-held], y[-held:]
    out = {
        "size": size,
        "solver": solver,
        "commit": commit(),
        "users": design.blocks[0].data.shape[0],
        "columns": design.n_features,
        "mean_implicit": float(np.diff(design.blocks[0].data.indptr).mean()),
        "nnz_stored": design.nnz,
        "nnz_flat": design.flat_nnz,
        "generate_seconds": generate,
    }
    chunks = fmlib.BlockChunks(*CHUNKS[solver]) if solver in CHUNKS else None
    out.update(step_nnz(design, SCALE_BATCH, chunks))
    if solver == "mcmc-by-user":  # one copy of the training ratings, as the slice is
        order = np.argsort(design.blocks[0].index[:-held], kind="stable")
        train, y_train = design[order], y_train[order]
    else:
        train = design[:-held]
    del data, design  # the slice is a copy: drop the full design before converting
    if not solver.startswith("mcmc"):
        train = train.astype(np.float32)  # what the model trains in (no copy in fit)
    out["rss_after_import_mib"] = rss_import
    out["rss_before_training_mib"] = rss_mib()  # + the training data
    if solver.startswith("mcmc"):
        cpu = time.process_time()
        start = time.perf_counter()
        bfm = fmlib.BayesianFM(k=K, num_sweeps=2, burn_in=1, seed=SEED)
        bfm.fit(train, y_train)
        fit_seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        out["test_rmse"] = rmse(bfm.predict(test), y_test)
        out["peak_rss_mib"] = peak_rss_mib()  # before the set-up is timed alone
        from fmlib.solvers.sweeper import make_sweeper

        n = train.n_features
        start = time.perf_counter()  # schedule, state and first refresh, as in fit
        make_sweeper(train, y_train, 0.0, np.zeros(n), np.zeros((n, K)))
        out["setup_seconds"] = time.perf_counter() - start
        out["fit_seconds"] = fit_seconds
        out["seconds"] = (fit_seconds - out["setup_seconds"]) / 2
        out["cpu_seconds"] = cpu / 2
        out["note"] = "seconds: (fit time - set-up time) / 2 sweeps; cpu: fit / 2"
    else:
        fm = fmlib.FactorizationMachine(train.n_features, k=K, seed=SEED, init_std=0.1)
        fm.w0.assign(float(y_train.mean()))
        kwargs = dict(GRADIENT[solver], batch_size=SCALE_BATCH, updates="sparse")
        if chunks is not None:
            kwargs["shuffle"] = chunks
        fmlib.fit(
            fm,
            train[: 2 * SCALE_BATCH],
            y_train[: 2 * SCALE_BATCH],
            num_epochs=1,
            **kwargs,
        )  # traces the compiled epoch once
        fm.w0.assign(float(y_train.mean()))
        cpu = time.process_time()
        history = fmlib.fit(fm, train, y_train, num_epochs=EPOCHS, seed=SEED, **kwargs)
        out["seconds"] = float(np.median(history.attrs["epoch_seconds"]))
        out["cpu_seconds"] = (time.process_time() - cpu) / EPOCHS
        out["train_loss"] = history["loss"].round(4).tolist()
        out["test_rmse"] = rmse(fm.predict(test), y_test)
    out["noise"] = 0.3
    out.setdefault("peak_rss_mib", peak_rss_mib())
    return out


def cap_memory() -> None:
    """Runs in each worker before it starts: a hard cap on its address space, so that a
    run that needs far more than the target fails with MemoryError instead of taking
    the shared machine's memory (the MCMC sweeper at 10^7 ratings would)."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def run_scale(sizes, solvers, earlier: list) -> dict:
    """Run the workers; the runs of ``earlier`` for other solvers or sizes are kept."""
    runs = [r for r in earlier if r["solver"] not in solvers or r["size"] not in sizes]
    for size in sizes:
        for solver in solvers:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", solver, "--size", str(size)]
                + (["--smoke"] if SMOKE else []),
                capture_output=True,
                text=True,
                preexec_fn=cap_memory,
            )
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-12:]
                result = {"size": size, "solver": solver, "failed": " | ".join(tail)}
            else:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)
            runs.append(result)
    if SMOKE and any("failed" in r for r in runs):  # a full run records it and goes on
        raise SystemExit(
            f"--smoke: a worker failed: {[r for r in runs if 'failed' in r]}"
        )
    runs.sort(key=lambda r: (r["size"], SOLVERS.index(r["solver"])))
    slopes, last = {}, {}
    for solver in SOLVERS:
        ok = [r for r in runs if r["solver"] == solver and "seconds" in r]
        if len(ok) >= 2:
            a, b = ok[-2:]
            last[solver] = float(
                np.log(b["seconds"] / a["seconds"]) / np.log(b["size"] / a["size"])
            )
            slopes[solver] = float(
                np.polyfit(
                    np.log([r["size"] for r in ok]),
                    np.log([r["seconds"] for r in ok]),
                    1,
                )[0]
            )
    return {
        "k": K,
        "address_space_cap_gib": ADDRESS_SPACE_CAP / 2**30,
        "batch_size": SCALE_BATCH,
        "gradient": GRADIENT,
        "chunks": {name: list(args) for name, args in CHUNKS.items()},
        "runs": runs,
        "slope_log_seconds_vs_log_ratings": slopes,
        "slope_between_the_two_largest_sizes": last,
    }


def print_scale(r: dict) -> None:
    print(
        f"\nsynthetic, k = {r['k']}, batch {r['batch_size']} (SGD/Adam: median of "
        f"{EPOCHS} epochs, row-sparse; MCMC: one Gibbs sweep)"
    )
    print(
        f"{'ratings':>11} {'solver':>12} {'users':>8} {'implicit':>8} {'flat nnz':>14} "
        f"{'seconds':>8} {'peak MiB':>9} {'RMSE':>6}"
    )
    for run in r["runs"]:
        if "failed" in run:
            print(f"{run['size']:>11,} {run['solver']:>12}  failed: {run['failed']}")
            continue
        print(
            f"{run['size']:>11,} {run['solver']:>12} {run['users']:>8,} "
            f"{run['mean_implicit']:>8.1f} {run['nnz_flat']:>14,} "
            f"{run['seconds']:>8.1f} {run['peak_rss_mib']:>9.0f} "
            f"{run['test_rmse']:>6.3f}"
        )
    print(
        "slope between the two largest sizes:",
        {k: round(v, 2) for k, v in r["slope_between_the_two_largest_sizes"].items()},
    )
    print(
        "slope of log(seconds) vs log(ratings):",
        {k: round(v, 2) for k, v in r["slope_log_seconds_vs_log_ratings"].items()},
    )


# --- MovieLens: blocks against flat, in one process --------------------------------
def run_movielens() -> dict:
    import fmlib

    design, design_test, y, y_test = common.u1_relational(smoke=SMOKE)
    flat = design.to_csr().astype(np.float32)
    flat_test = design_test.to_csr()
    rows = []
    for updates in ("sparse", "dense"):
        for optimizer, lr in ML_RUNS:
            for batch in ML_BATCHES:
                row = {"updates": updates, "optimizer": optimizer, "batch_size": batch}
                weights = []
                for name, X, X_test in (
                    ("blocks", design, design_test),
                    ("flat", flat, flat_test),
                ):
                    fm = fmlib.FactorizationMachine(
                        design.n_features, k=10, seed=SEED, init_std=0.1
                    )
                    fm.w0.assign(float(y.mean()))
                    history = fmlib.fit(
                        fm,
                        X,
                        y,
                        num_epochs=ML_EPOCHS,
                        batch_size=batch,
                        optimizer=optimizer,
                        lr=lr,
                        updates=updates,
                        lambda_w=1e-4,
                        lambda_v=1e-4,
                        seed=SEED,
                    )
                    row[f"{name}_seconds"] = float(
                        np.median(history.attrs["epoch_seconds"][1:])
                    )
                    row[f"{name}_rmse"] = rmse(
                        np.clip(fm.predict(X_test), 1, 5), y_test
                    )
                    weights.append(fm.V.numpy())
                row["flat_over_blocks"] = row["flat_seconds"] / row["blocks_seconds"]
                row["max_abs_V_difference"] = float(
                    np.abs(weights[0] - weights[1]).max()
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
    users = design.blocks[0].data.shape[0]
    items = design.blocks[1].data.shape[0]
    return {
        "ratings": design.n_rows,
        "users": users,
        "items": items,
        "nnz_stored": design.nnz,
        "nnz_flat": design.flat_nnz,
        "k": 10,
        "epochs": ML_EPOCHS,
        "rows": rows,
    }


def print_movielens(r: dict) -> None:
    print(
        f"\nMovieLens 100k u1 +implicit: {r['ratings']:,} ratings, {r['users']} users, "
        f"{r['items']} movies; {r['nnz_stored']:,} non-zeros stored, "
        f"{r['nnz_flat']:,} flat; k = {r['k']}"
    )
    print(
        f"{'updates':>7} {'opt':>5} {'batch':>6} {'blocks s':>9} {'flat s':>8} "
        f"{'flat/blocks':>11} {'RMSE blocks':>11} {'RMSE flat':>9}"
    )
    for row in r["rows"]:
        print(
            f"{row['updates']:>7} {row['optimizer']:>5} {row['batch_size']:>6} "
            f"{row['blocks_seconds']:>9.3f} {row['flat_seconds']:>8.3f} "
            f"{row['flat_over_blocks']:>11.1f} {row['blocks_rmse']:>11.4f} "
            f"{row['flat_rmse']:>9.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("scale", "movielens"))
    parser.add_argument("--sizes", type=float, nargs="+", default=SIZES)
    parser.add_argument(
        "--solvers",
        nargs="+",
        choices=SOLVERS,
        default=SOLVERS,
        help="rerun these only (the other runs in the JSON are kept)",
    )
    parser.add_argument("--worker", choices=SOLVERS)
    parser.add_argument("--size", type=int)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.smoke:
        smoke_settings()
    if args.worker:
        print(json.dumps(worker(args.size, args.worker)))
        return
    if args.part is None and not args.smoke:
        parser.error("give --part scale or --part movielens")
    out = common.results_path(args, OUT)
    for part in (args.part,) if args.part else ("scale", "movielens"):
        record = common.provenance(smoke=args.smoke)
        if part == "scale":
            earlier = common.read_results(out).get("scale", {}).get("runs", [])
            sizes = SIZES if args.smoke else [int(s) for s in args.sizes]
            solvers = SMOKE_SOLVERS if args.smoke else tuple(args.solvers)
            result = run_scale(sizes, solvers, earlier)
            print_scale(result)
        else:
            result = run_movielens()
            print_movielens(result)
        # "environment": the run metadata before common.py, now in "provenance"
        common.save_results(
            out, {part: result}, record, part=part, remove=("environment",)
        )


if __name__ == "__main__":
    main()
