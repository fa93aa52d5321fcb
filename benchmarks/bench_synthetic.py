"""Benchmark: time and memory of fmlib.make_ratings from 10^4 to 10^7 ratings, on one core.

Target (issue "fmlib data"): 10 million ratings in under 30 s and under 4 GiB on one core.

    python benchmarks/bench_synthetic.py            # full table, up to 10^7
    python benchmarks/bench_synthetic.py --max 1e6  # quicker
    python benchmarks/bench_synthetic.py --smoke    # seconds: 10^3 ratings, a temporary file

Prints a table and writes benchmarks/results/synthetic.json. Memory is the peak of
the generator's own allocations (tracemalloc, which numpy reports to) and the
process's peak resident set size (``common.peak_rss_mib``; with ``import fmlib`` alone).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
os.environ.setdefault("OMP_NUM_THREADS", "1")

import common  # noqa: E402

from fmlib import make_ratings  # noqa: E402

# Shapes like a large rating data set: users and items grow with the number of ratings.
CASES = [
    (10_000, 2_000, 500),
    (100_000, 10_000, 2_000),
    (1_000_000, 50_000, 10_000),
    (10_000_000, 200_000, 40_000),
]
SMOKE_CASES = [(1_000, 200, 50)]
OUT = common.RESULTS / "synthetic.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max", type=float, default=1e7, help="largest number of ratings"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per size (the median is reported)"
    )
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    rows = []
    print(
        f"{'ratings':>12} {'users':>9} {'items':>8} {'median s':>9} {'ratings/s':>12} {'peak MiB':>9}"
    )
    for n_ratings, n_users, n_items in SMOKE_CASES if args.smoke else CASES:
        if n_ratings > args.max:
            break
        times, peaks = [], []
        for r in range(args.repeat if n_ratings < 10_000_000 else 1):
            tracemalloc.start()
            start = time.perf_counter()
            data = make_ratings(
                n_users,
                n_items,
                n_ratings=n_ratings,
                k=8,
                n_age_groups=7,
                n_genres=19,
                output="stars",
                seed=r,
            )
            times.append(time.perf_counter() - start)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            assert len(data.ratings) == n_ratings
            del data
        median = sorted(times)[len(times) // 2]
        row = {
            "n_ratings": n_ratings,
            "n_users": n_users,
            "n_items": n_items,
            "seconds_median": median,
            "seconds_all": times,
            "ratings_per_second": n_ratings / median,
            "peak_alloc_mib": max(peaks),
        }
        rows.append(row)
        print(
            f"{n_ratings:>12,} {n_users:>9,} {n_items:>8,} {median:>9.2f} {n_ratings / median:>12,.0f} "
            f"{max(peaks):>9.0f}"
        )
    rss = common.peak_rss_mib()
    print(f"process peak RSS: {rss:.0f} MiB")
    common.save_results(
        out,
        {
            "machine": record["machine"],
            "python": record["python"],
            "cores_used": 1,
            "process_peak_rss_mib": rss,
            "rows": rows,
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
