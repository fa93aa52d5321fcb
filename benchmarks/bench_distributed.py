"""Benchmark: one process against 2 synchronous workers and 2 workers + 1 parameter server.

Issue "When data outgrows one machine": the same synthetic ratings (one-hot user + item,
10^6 ratings by default), plain SGD with the same learning rate, batch size and epochs, as
one process (``fmlib.fit``), as ``MultiWorkerMirroredStrategy`` on 2 local worker processes,
and as ``ParameterServerStrategy`` on 2 workers, 1 parameter server and a chief. Reports rows
per second (training steps only), test RMSE per epoch, the time to reach the target RMSE
(the single process's final test RMSE + 1%), and the bytes a step would move by the model of
the chapter "Training on several machines" with the measured distinct rows per batch
(TensorFlow does not report the bytes its collectives or RPCs send).

    python benchmarks/bench_distributed.py                 # 10^6 ratings
    python benchmarks/bench_distributed.py --ratings 2e5   # quicker
    python benchmarks/bench_distributed.py --smoke         # 20,000 ratings, 1 epoch, one
                                                           # process and the all-reduce pair
                                                           # (no parameter server); a temp file

Prints a table and writes benchmarks/results/distributed.json. On a shared 2-core machine
the cluster cannot be faster than one process: every process competes for the same cores.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import fmlib  # noqa: E402
from fmlib import distributed as dist  # noqa: E402

RESULTS = common.RESULTS / "distributed.json"


def distinct_rows(X, batch_size: int) -> float:
    """Mean number of distinct features |U| of a batch of ``batch_size`` consecutive rows."""
    return float(
        np.mean(
            [
                np.unique(X[s : s + batch_size].indices).size
                for s in range(0, X.shape[0] - batch_size + 1, batch_size)
            ][:200]
        )
    )


def time_to(history: pd.DataFrame, seconds: list[float], target: float) -> float | None:
    """Training seconds until the test RMSE first reaches ``target`` (None: never)."""
    reached = np.nonzero(history["val_rmse"].to_numpy() <= target)[0]
    return float(np.sum(seconds[: reached[0] + 1])) if reached.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=float, default=1e6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=8)
    common.add_smoke_arguments(parser, RESULTS)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, RESULTS)
    if args.smoke:
        args.ratings, args.epochs, args.batch_size = 20000, 1, 256
    n_ratings = int(args.ratings)
    n_users, n_items = n_ratings // 50, n_ratings // 200
    X, y, Xt, yt = dist.synthetic_split(n_users, n_items, n_ratings, seed=0)
    settings = dict(
        k=args.k, num_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr
    )
    print(
        f"{X.shape[0]} training, {Xt.shape[0]} test ratings, {X.shape[1]} features; "
        f"SGD lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs, k={args.k}"
    )

    runs = {}
    fm = fmlib.FactorizationMachine(X.shape[1], k=args.k, seed=0)
    started = time.perf_counter()
    history = fmlib.fit(
        fm,
        X,
        y,
        optimizer="sgd",
        lr=args.lr,
        batch_size=args.batch_size,
        num_epochs=args.epochs,
        seed=0,
        validation_data=(Xt, yt),
    )
    runs["1 process (fmlib.fit)"] = (
        history,
        history.attrs["epoch_seconds"],
        time.perf_counter() - started,
    )
    clusters = (("2 workers, all-reduce", 2, 0), ("2 workers + 1 ps", 2, 1))
    for name, workers, ps in clusters[:1] if args.smoke else clusters:
        started = time.perf_counter()
        history, _ = dist.run_local(
            X,
            y,
            Xt,
            yt,
            workers=workers,
            ps=ps,
            seed=0,
            timeout=900,
            say=lambda line: None,
            **settings,
        )
        runs[name] = (
            history,
            history.attrs["epoch_seconds"],
            time.perf_counter() - started,
        )

    target = runs["1 process (fmlib.fit)"][0]["val_rmse"].iloc[-1] * 1.01
    steps = X.shape[0] // args.batch_size
    rows = []
    for name, (history, seconds, wall) in runs.items():
        rows.append(
            {
                "run": name,
                "rows/s": steps * args.batch_size / np.mean(seconds),
                "test RMSE": history["val_rmse"].iloc[-1],
                "s to target": time_to(history, seconds, target),
                "wall s (incl. start-up)": wall,
                "val_rmse per epoch": [round(v, 4) for v in history["val_rmse"]],
            }
        )
    table = pd.DataFrame(rows).set_index("run")
    U = distinct_rows(X, args.batch_size // 2)
    row_bytes = (args.k + 1) * 4 + 8
    traffic = {
        "distinct rows per worker batch |U|": U,
        "dense all-reduce of w, V (MB/step/worker)": X.shape[1]
        * (args.k + 1)
        * 4
        / 1e6,
        "all-gather of row gradients (MB/step/worker)": U * row_bytes / 1e6,
        "parameter server pull + push (MB/step/worker)": 2 * U * row_bytes / 1e6,
    }
    print(f"target RMSE (1 process + 1%): {target:.4f}")
    print(table.drop(columns="val_rmse per epoch").round(3).to_string())
    print(pd.Series(traffic).round(3).to_string())
    common.save_results(
        out,
        {
            "settings": {
                **settings,
                "ratings": n_ratings,
                "train_rows": X.shape[0],
                "features": X.shape[1],
            },
            "target_rmse": target,
            "runs": table.reset_index().to_dict(orient="records"),
            "traffic_model": traffic,
            "machine": {
                "cpus": os.cpu_count(),
                "python": record["python"],
                "note": "shared 2-core machine; several engineers ran jobs at once",
            },
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
