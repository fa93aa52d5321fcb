"""Benchmark: training whose cost follows the non-zeros (``fit(updates="sparse")``).

Three parts, each written to benchmarks/results/sparse.json (merged, so parts can run apart):

* ``throughput``: MovieLens u1.base, k = 10, the "user+item" and "all+implicit" designs;
  rows per second per epoch of ``fmlib.fit`` with ``updates="dense"`` (batches 1,024 and
  4,096) and ``updates="sparse"`` (1,024, 4,096, 16,384), median of epochs 2-4, and of one
  myFM Gibbs sweep (rank 10), all in one process, so the ratios share the machine's state;
  three repeats in turn, the median of each reported.
* ``scale``: synthetic ratings from ``fmlib.stream_ratings`` (k = 8, 7 age groups, 19 genres,
  stars; the shapes of ``bench_scale.py``) from 10^5 to 10^7, held in memory as one CSR matrix,
  trained with ``updates="sparse"`` (lazy Adam, batch 4,096) for 3 epochs (median of epochs 2-3),
  each size in its own process (peak RSS is that size's); then 10^8 ratings streamed
  (``fit(model, stream.dataset(4096), None)``), one epoch, generation included.
* ``accuracy``: the chapter "MovieLens 100k"'s protocol (``book/tuning/tune_movielens.py``:
  10% of each training fold for early stopping, k = 8, batch 4,096) with ``updates="sparse"``;
  the penalty ("occurrence" or "present"), λ_v and lr tuned on the validation rows (mean over
  u1-u5), the test RMSE of u1-u5 against the dense path's tuned results
  (``book/tuning/movielens_folds.json``).

    python benchmarks/bench_sparse.py [--parts throughput,scale,accuracy] [--max 1e8]
    python benchmarks/bench_sparse.py --smoke   # seconds: the three parts on 4,000 rows of u1
                                                # and 2,000 synthetic ratings, one grid entry;
                                                # myFM only if installed; a temporary file

Each part's record (commit, command, ...) is in the file's ``provenance_by_part``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar

import common  # noqa: E402
import numpy as np  # noqa: E402

ROOT = common.ROOT
OUT = common.RESULTS / "sparse.json"

SIDE = ["age_bucket", "gender", "occupation"]
DESIGNS = {
    "user+item": dict(categorical=["user", "item"]),
    "all+implicit": dict(
        categorical=["user", "item"] + SIDE,
        multi_hot=["genres"],
        implicit=("user", "item"),
        implicit_norm="sqrt",
    ),
}
SCALE_CASES = [
    (100_000, 10_000, 2_000),
    (1_000_000, 50_000, 10_000),
    (10_000_000, 200_000, 40_000),
]
STREAM_CASE = (100_000_000, 1_000_000, 100_000)
# the wide "+ implicit" rows (175 non-zeros) cost ~10x more per fold: a smaller grid, at and
# below the best lambda_v of "user + item" (each row penalises ~175 features)
# (regularization, lambda_v, lr) tried per feature set; the one with the best mean validation
# RMSE is reported. "present" charges a feature once per batch, like the dense path's global
# penalty, so its lambda_v lives on the dense path's scale.
ACCURACY_GRIDS = {
    "user + item": [
        ("occurrence", lv, lr) for lv in (0.03, 0.1, 0.3) for lr in (0.01, 0.03)
    ]
    + [("present", lv, 0.01) for lv in (1e-4, 2e-4, 4e-4)],
    "+ implicit": [("occurrence", lv, 0.01) for lv in (0.01, 0.03, 0.1)]
    + [("present", lv, 0.01) for lv in (5e-5, 1e-4, 2e-4)],
}
THROUGHPUT = dict(repeats=3, epochs=4, dense=(1024, 4096), sparse=(1024, 4096, 16384))
SMOKE = False
SMOKE_CASE = (2_000, 400, 100)


def smoke_settings() -> None:
    """--smoke: 4,000 rows of u1 (``common.fold_frames``), one size, one grid entry."""
    global SMOKE
    SMOKE = True
    THROUGHPUT.update(repeats=1, epochs=2, dense=(512,), sparse=(512,))
    for name in ACCURACY_GRIDS:
        ACCURACY_GRIDS[name] = ACCURACY_GRIDS[name][-1:]
    common.tuning_module().FIXED["max_epochs"] = 2


def save(out, part: str, value, record: dict) -> None:
    """Merge one part into the results; "machine" and "commits" (the metadata before
    common.py) are dropped: each part's record is in "provenance_by_part"."""
    common.save_results(
        out, {part: value}, record, part=part, remove=("machine", "commits")
    )


# --- throughput -----------------------------------------------------------------------------
def throughput(repeats: int | None = None) -> dict:
    """Rows per second of every path and of myFM, measured ``repeats`` times in turn (the
    machine's speed drifts by some 10% between runs); each entry is the median of the
    repeats, and ``repeats`` keeps them all."""
    import fmlib

    repeats = THROUGHPUT["repeats"] if repeats is None else repeats
    myfm = common.peer("myfm", SMOKE)
    train, _ = common.fold_frames(common.movielens(), "u1", smoke=SMOKE)
    y = train["rating"].to_numpy(float)
    matrices = {
        design: fmlib.FeatureEncoder(**spec).fit_transform(train)
        for design, spec in DESIGNS.items()
    }
    runs = {design: [] for design in DESIGNS}
    for _ in range(repeats):
        for design, X in matrices.items():
            row = {}
            for updates in ("dense", "sparse"):
                for batch in THROUGHPUT[updates]:
                    fm = fmlib.FactorizationMachine(X.shape[1], k=10, seed=0)
                    history = fmlib.fit(
                        fm,
                        X,
                        y,
                        num_epochs=THROUGHPUT["epochs"],
                        batch_size=batch,
                        updates=updates,
                        lambda_v=1e-4 if updates == "dense" else 0.03,
                        seed=0,
                    )
                    row[f"{updates}_{batch}"] = X.shape[0] / statistics.median(
                        history.attrs["epoch_seconds"][1:]
                    )
            if myfm is not None:
                sweeps = 5 if design == "user+item" else 2
                fm = myfm.MyFMRegressor(rank=10, random_seed=0)
                fm.fit(X, y, n_iter=1, n_kept_samples=1)  # warm-up
                start = time.perf_counter()
                fm.fit(X, y, n_iter=sweeps, n_kept_samples=1)
                row["myfm"] = X.shape[0] * sweeps / (time.perf_counter() - start)
            runs[design].append(row)
            print(design, {key: round(value) for key, value in row.items()}, flush=True)
    table = {}
    for design, rows in runs.items():
        table[design] = {
            "nnz_per_row": matrices[design].nnz / matrices[design].shape[0]
        }
        table[design].update(
            {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        )
        table[design]["repeats"] = rows
    return table


# --- scale ----------------------------------------------------------------------------------
peak_rss_mib = common.peak_rss_mib  # VmHWM, read in the worker itself


def in_memory(stream, max_nnz_per_row: int = 32):
    """The whole stream as one CSR matrix, each chunk copied straight into its place.

    The index and value arrays are allocated for ``max_nnz_per_row`` non-zeros per rating and
    never written past the non-zeros there are: pages never written take no memory, so the
    peak is the matrix itself plus one chunk (a list of chunks and their concatenation would
    hold the matrix twice)."""
    import scipy.sparse as sp

    n = stream.n_ratings
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(n * max_nnz_per_row, np.int32)
    data = np.empty(n * max_nnz_per_row, np.float32)
    y = np.empty(n, np.float32)
    row, nnz = 0, 0
    for Xc, yc in stream.chunks():
        if nnz + Xc.nnz > indices.size:
            raise ValueError(
                f"more than {max_nnz_per_row} non-zeros per rating; raise max_nnz_per_row"
            )
        indptr[row + 1 : row + 1 + Xc.shape[0]] = Xc.indptr[1:] + nnz
        indices[nnz : nnz + Xc.nnz] = Xc.indices
        data[nnz : nnz + Xc.nnz] = Xc.data
        y[row : row + Xc.shape[0]] = yc
        row, nnz = row + Xc.shape[0], nnz + Xc.nnz
    if nnz < 2**31:  # int32 index arrays: half the bytes of int64
        indptr = indptr.astype(np.int32)
    X = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n, stream.n_features))
    return X, y


def one_size(n_ratings: int, n_users: int, n_items: int, streamed: bool) -> dict:
    """One size in this process: generate, train, measure."""
    import fmlib

    stream = fmlib.stream_ratings(
        n_users,
        n_items,
        n_ratings=n_ratings,
        chunk_size=1_000_000,
        k=8,
        n_age_groups=7,
        n_genres=19,
        output="stars",
        seed=0,
    )
    fm = fmlib.FactorizationMachine(stream.n_features, k=8, seed=0)
    fm.w0.assign(3.5)
    start = time.perf_counter()
    if streamed:
        history = fmlib.fit(
            fm, stream.dataset(4096), None, num_epochs=1, lr=0.01, lambda_v=0.03
        )
        epoch, generate, nnz = history.attrs["epoch_seconds"][0], None, None
    else:
        X, y = in_memory(stream)
        generate = time.perf_counter() - start
        history = fmlib.fit(
            fm,
            X,
            y,
            num_epochs=3,
            batch_size=256 if SMOKE else 4096,
            updates="sparse",
            lr=0.01,
            lambda_v=0.03,
            seed=0,
        )
        epoch, nnz = statistics.median(history.attrs["epoch_seconds"][1:]), int(X.nnz)
    return {
        "n_ratings": n_ratings,
        "n_users": n_users,
        "n_items": n_items,
        "n_features": stream.n_features,
        "nnz": nnz,
        "streamed": streamed,
        "generate_s": generate,
        "epoch_s": epoch,
        "rows_per_second": n_ratings / epoch,
        "final_train_rmse": float(np.sqrt(history["loss"].iloc[-1])),
        "peak_rss_mib": peak_rss_mib(),
        "index_dtype": None if streamed else str(X.indices.dtype),
    }


def scale(max_ratings: float, path) -> dict:
    cases = [(c, False) for c in SCALE_CASES if c[0] <= max_ratings]
    if STREAM_CASE[0] <= max_ratings:
        cases.append((STREAM_CASE, True))
    if SMOKE:
        cases = [(SMOKE_CASE, False)]
    rows = []
    for (n, users, items), streamed in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--one", f"{n},{users},{items},{int(streamed)}"]
            + (["--smoke"] if SMOKE else []),
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print({k: v for k, v in rows[-1].items()}, flush=True)
    if STREAM_CASE[0] > max_ratings or SMOKE:  # keep the last streamed run
        rows += [
            r
            for r in common.read_results(path).get("scale", {}).get("rows", [])
            if r["streamed"]
        ]
    fitted = [r for r in rows if not r["streamed"]]
    slope = (
        float(
            np.polyfit(
                np.log([r["nnz"] for r in fitted]),
                np.log([r["epoch_s"] for r in fitted]),
                1,
            )[0]
        )
        if len(fitted) >= 2
        else None
    )
    print("slope", slope)
    return {"rows": rows, "slope": slope}


# --- accuracy -------------------------------------------------------------------------------
def accuracy(sets, path, record: dict) -> dict:
    tune_movielens = common.tuning_module()
    FEATURE_SETS, fit_with_validation = (
        tune_movielens.FEATURE_SETS,
        tune_movielens.fit_with_validation,
    )

    dense = json.loads((ROOT / "book" / "tuning" / "movielens_folds.json").read_text())
    ml = common.movielens()
    folds = ("u1",) if SMOKE else ("u1", "u2", "u3", "u4", "u5")
    data = {f: common.fold_frames(ml, f, smoke=SMOKE) for f in folds}
    report = common.read_results(path).get("accuracy", {})
    for name in sets:
        spec, grid = FEATURE_SETS[name], []
        for regularization, lambda_v, lr in ACCURACY_GRIDS[name]:
            runs = {}
            for fold in folds:
                train, test = data[fold]
                fm, encoder, history = fit_with_validation(
                    train,
                    spec,
                    lambda_v,
                    lr,
                    updates="sparse",
                    regularization=regularization,
                )
                best = history.attrs["best_epoch"]
                y_hat = fm.predict(encoder.transform(test))
                runs[fold] = {
                    "val_rmse": float(history.loc[best, "val_rmse"]),
                    "best_epoch": int(best),
                    "test_rmse": common.rmse(y_hat, test["rating"]),
                    "epoch_s": float(np.median(history.attrs["epoch_seconds"])),
                }
            grid.append(
                {
                    "regularization": regularization,
                    "lambda_v": lambda_v,
                    "lr": lr,
                    "runs": runs,
                    "mean_val_rmse": float(
                        np.mean([r["val_rmse"] for r in runs.values()])
                    ),
                    "mean_test_rmse": float(
                        np.mean([r["test_rmse"] for r in runs.values()])
                    ),
                }
            )
            print(
                f"{name:<12} {regularization:<10} lambda_v={lambda_v:<6g} lr={lr:<5g} val {grid[-1]['mean_val_rmse']:.4f} "
                f"test {grid[-1]['mean_test_rmse']:.4f}",
                flush=True,
            )
        chosen = min(grid, key=lambda g: g["mean_val_rmse"])
        dense_mean = float(
            np.mean([dense["runs"][f"{name}|{f}"]["rmse"] for f in folds])
        )
        report[name] = {
            "grid": grid,
            "chosen": {
                key: chosen[key] for key in ("regularization", "lambda_v", "lr")
            },
            "sparse_test_rmse": chosen["mean_test_rmse"],
            "dense_test_rmse": dense_mean,
            "dense_hyper": dense["hyper"][name],
        }
        print(
            f"  -> {name}: sparse {chosen['mean_test_rmse']:.4f} vs dense {dense_mean:.4f}",
            flush=True,
        )
        save(path, "accuracy", report, record)  # after each feature set
    return report


def markdown() -> str:
    """The tables of benchmarks/README.md, from the committed JSON."""
    r = json.loads(OUT.read_text())
    lines = [
        "| design | non-zeros/row | dense 1,024 | dense 4,096 | sparse 1,024 | sparse 4,096 "
        "| sparse 16,384 | myFM sweep | sparse 1,024 / myFM | best sparse ≤ 4,096 / myFM |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for design, row in r["throughput"].items():
        cells = [
            f"{row[k]:,.0f}"
            for k in (
                "dense_1024",
                "dense_4096",
                "sparse_1024",
                "sparse_4096",
                "sparse_16384",
                "myfm",
            )
        ]
        best = max(row["sparse_1024"], row["sparse_4096"]) / row["myfm"]
        lines.append(
            f"| {design} | {row['nnz_per_row']:.1f} | "
            + " | ".join(cells)
            + f" | {row['sparse_1024'] / row['myfm']:.2f} | {best:.2f} |"
        )
    lines += [
        "",
        "| ratings | non-zeros | features | generate s | s/epoch | rows/s | peak RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in r["scale"]["rows"]:
        nnz = "streamed" if row["streamed"] else f"{row['nnz']:,}"
        gen = (
            "in the epoch" if row["generate_s"] is None else f"{row['generate_s']:.1f}"
        )
        lines.append(
            f"| {row['n_ratings']:,} | {nnz} | {row['n_features']:,} | {gen} | "
            f"{row['epoch_s']:.2f} | {row['rows_per_second']:,.0f} | {row['peak_rss_mib']:,.0f} |"
        )
    lines += [
        "",
        f"Fitted slope of s/epoch against non-zeros (in memory): {r['scale']['slope']:.2f}",
        "",
        "| feature set | dense (chapter's tuning) | sparse | chosen penalty, λ_v, lr |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, a in r["accuracy"].items():
        c = a["chosen"]
        lines.append(
            f"| {name} | {a['dense_test_rmse']:.4f} | {a['sparse_test_rmse']:.4f} | "
            f"{c['regularization']}, {c['lambda_v']:g}, {c['lr']:g} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="throughput,scale,accuracy")
    parser.add_argument(
        "--table", action="store_true", help="print the README tables and stop"
    )
    parser.add_argument("--max", type=float, default=1e8)
    parser.add_argument(
        "--sets", default=",".join(ACCURACY_GRIDS), help="accuracy: feature sets"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.smoke:
        smoke_settings()
    if args.table:
        print(markdown())
        return
    if args.one:
        n, users, items, streamed = (int(v) for v in args.one.split(","))
        print(json.dumps(one_size(n, users, items, bool(streamed))))
        return
    out = common.results_path(args, OUT)
    sets = list(ACCURACY_GRIDS)[:1] if args.smoke else args.sets.split(",")
    for part in args.parts.split(","):
        record = common.provenance(smoke=args.smoke)
        value = {
            "throughput": throughput,
            "accuracy": lambda: accuracy(sets, out, record),
            "scale": lambda: scale(args.max, out),
        }[part]()
        save(out, part, value, record)


if __name__ == "__main__":
    main()
