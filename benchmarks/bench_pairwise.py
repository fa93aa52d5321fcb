"""Benchmark: the pairwise term by its definition (O(k n^2)) against Lemma 3.1 (O(k n)).

For n from 16 to 4096 (k = 8), both functions from fmlib, compiled with tf.function, are
timed side by side in one process; the table gives the median of the repeats per example,
the speed-up ratio at each n, and the log-log slopes fitted over n >= 256 (where fixed
per-call costs no longer dominate).

    python benchmarks/bench_pairwise.py [--repeat 7]
    python benchmarks/bench_pairwise.py --smoke     # seconds: n = 16, 32, 64; a temporary file

Writes benchmarks/results/pairwise.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fmlib.model.pairwise import factor_products, lemma31, pairwise_naive  # noqa: E402

SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
SMOKE_SIZES = [16, 32, 64]
OUT = common.RESULTS / "pairwise.json"
K = 8
NAIVE_ROWS = 64  # rows per call for the naive form
FAST_ENTRIES = (
    2**20
)  # the fast form gets 2^20 / n rows per call: the same memory at every n


def fast_kernel(X, V):
    """Lemma 3.1 without ``pairwise_fast``'s input checks: the kernel of the compiled steps."""
    return lemma31(*factor_products(X, V, V))


def median_seconds(f, X, V, repeat: int) -> float:
    f(X, V).numpy()  # trace and warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f(X, V).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    sizes, repeat = (SMOKE_SIZES, 1) if args.smoke else (SIZES, args.repeat)
    naive = tf.function(pairwise_naive)
    fast = tf.function(fast_kernel)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'n':>6} {'naive us/row':>13} {'fast us/row':>12} {'speed-up':>9}")
    for n in sizes:
        V = tf.constant(rng.normal(0, 0.1, (n, K)), tf.float32)
        X_naive = tf.constant(rng.normal(size=(NAIVE_ROWS, n)), tf.float32)
        fast_rows = max(FAST_ENTRIES // n, 1)
        X_fast = tf.constant(rng.normal(size=(fast_rows, n)), tf.float32)
        t_naive = median_seconds(naive, X_naive, V, repeat) / NAIVE_ROWS
        t_fast = median_seconds(fast, X_fast, V, repeat) / fast_rows
        rows.append(
            {
                "n": n,
                "naive_seconds_per_row": t_naive,
                "fast_seconds_per_row": t_fast,
                "speedup": t_naive / t_fast,
            }
        )
        print(
            f"{n:>6} {t_naive * 1e6:>13.3f} {t_fast * 1e6:>12.4f} {t_naive / t_fast:>9.1f}"
        )
    big = [r for r in rows if r["n"] >= (256 if not args.smoke else 16)]
    slopes = {
        name: float(
            np.polyfit(
                np.log([r["n"] for r in big]),
                np.log([r[f"{name}_seconds_per_row"] for r in big]),
                1,
            )[0]
        )
        for name in ("naive", "fast")
    }
    print(
        f"log-log slopes for n >= 256: naive {slopes['naive']:.2f} (theory 2), "
        f"fast {slopes['fast']:.2f} (theory 1)"
    )
    common.save_results(
        out,
        {
            "machine": record["machine"],
            "k": K,
            "naive_rows": NAIVE_ROWS,
            "fast_entries": FAST_ENTRIES,
            "rows": rows,
            "slopes_n_ge_256": slopes,
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
