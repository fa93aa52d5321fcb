"""Benchmark: cost against data size, synthetic ratings from 10^4 to 10^7.

For each size: generate the ratings with ``fmlib.make_ratings`` (k = 8, 7 age groups, 19
genres, stars), encode them with ``fmlib.FeatureEncoder`` (user, item, age group one-hot;
genres multi-hot), and train ``fmlib.fit`` (k = 8, Adam, batch 4,096) for 3 epochs. Reported:
generation time, encoding time, training time per epoch (median of epochs 2 and 3, so the
one-off graph tracing is left out), the number of non-zeros, rows per second, and the peak
resident memory of the process (``common.peak_rss_mib``, read in it). Each size runs in a fresh subprocess so that peak memory
belongs to that size alone; both cores are used. The fitted log-log slope of the epoch time
against the number of non-zeros (sizes >= 10^5) says how cost grows with data: 1 is linear.

    python benchmarks/bench_scale.py            # up to 10^7 ratings (a few minutes)
    python benchmarks/bench_scale.py --max 1e6  # quicker
    python benchmarks/bench_scale.py --smoke    # seconds: 2,000 ratings; a temporary file

Writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common
import numpy as np

CASES = [
    (10_000, 2_000, 500),
    (100_000, 10_000, 2_000),
    (1_000_000, 50_000, 10_000),
    (10_000_000, 200_000, 40_000),
]
SMOKE_CASES = [(2_000, 400, 100)]
K, BATCH, EPOCHS = 8, 4096, 3
OUT = common.RESULTS / "scale.json"


def one(n_ratings: int, n_users: int, n_items: int) -> dict:
    """Run one size in this process and return its measurements."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import fmlib

    start = time.perf_counter()
    data = fmlib.make_ratings(
        n_users,
        n_items,
        n_ratings=n_ratings,
        k=K,
        n_age_groups=7,
        n_genres=19,
        output="stars",
        seed=0,
    )
    generate = time.perf_counter() - start
    start = time.perf_counter()
    frame = data.ratings  # one row per rating, with its age group and genres
    X = fmlib.FeatureEncoder(
        categorical=["user", "item", "age_group"], multi_hot=["genres"]
    ).fit_transform(frame)
    y = frame["rating"].to_numpy(float)
    encode = time.perf_counter() - start
    fm = fmlib.FactorizationMachine(X.shape[1], k=K, seed=0)
    fm.w0.assign(y.mean())
    history = fmlib.fit(
        fm, X, y, num_epochs=EPOCHS, batch_size=BATCH, lr=0.01, lambda_v=1e-5, seed=0
    )
    epoch = statistics.median(history.attrs["epoch_seconds"][1:])
    return {
        "n_ratings": n_ratings,
        "n_users": n_users,
        "n_items": n_items,
        "n_features": X.shape[1],
        "nnz": int(X.nnz),
        "generate_s": generate,
        "encode_s": encode,
        "epoch_s": epoch,
        "rows_per_second": n_ratings / epoch,
        "final_train_rmse": float(np.sqrt(history["loss"].iloc[-1])),
        "peak_rss_mib": common.peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max", type=float, default=1e7, help="largest number of ratings"
    )
    parser.add_argument(
        "--one", type=int, nargs=3, help=argparse.SUPPRESS
    )  # internal: one size
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    record = common.provenance(smoke=args.smoke)
    out_path = common.results_path(args, OUT)
    rows = []
    print(
        f"{'ratings':>11} {'nnz':>12} {'generate s':>10} {'encode s':>9} {'s/epoch':>8} "
        f"{'rows/s':>10} {'peak RSS MiB':>12}"
    )
    for case in SMOKE_CASES if args.smoke else CASES:
        if case[0] > args.max:
            break
        out = subprocess.run(
            [sys.executable, __file__, "--one", *map(str, case)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['n_ratings']:>11,} {row['nnz']:>12,} {row['generate_s']:>10.2f} {row['encode_s']:>9.2f} "
            f"{row['epoch_s']:>8.3f} {row['rows_per_second']:>10,.0f} {row['peak_rss_mib']:>12,.0f}",
            flush=True,
        )
    fitted = [r for r in rows if r["n_ratings"] >= (100_000 if not args.smoke else 0)]
    slope = None
    if len(fitted) >= 2:
        slope = float(
            np.polyfit(
                np.log([r["nnz"] for r in fitted]),
                np.log([r["epoch_s"] for r in fitted]),
                1,
            )[0]
        )
        print(
            f"log-log slope of epoch time against non-zeros (>= 10^5 ratings): {slope:.2f}"
        )
    common.save_results(
        out_path,
        {
            "machine": record["machine"],
            "python": record["python"],
            "k": K,
            "batch_size": BATCH,
            "slope_epoch_vs_nnz": slope,
            "rows": rows,
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
