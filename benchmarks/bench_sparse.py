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
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")   # myFM's progress bar

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "sparse.json"
sys.path.insert(0, str(ROOT / "book" / "tuning"))

SIDE = ["age_bucket", "gender", "occupation"]
DESIGNS = {
    "user+item": dict(categorical=["user", "item"]),
    "all+implicit": dict(categorical=["user", "item"] + SIDE, multi_hot=["genres"],
                         implicit=("user", "item"), implicit_norm="sqrt"),
}
SCALE_CASES = [(100_000, 10_000, 2_000), (1_000_000, 50_000, 10_000),
               (10_000_000, 200_000, 40_000)]
STREAM_CASE = (100_000_000, 1_000_000, 100_000)
# the wide "+ implicit" rows (175 non-zeros) cost ~10x more per fold: a smaller grid, at and
# below the best lambda_v of "user + item" (each row penalises ~175 features)
# (regularization, lambda_v, lr) tried per feature set; the one with the best mean validation
# RMSE is reported. "present" charges a feature once per batch, like the dense path's global
# penalty, so its lambda_v lives on the dense path's scale.
ACCURACY_GRIDS = {
    "user + item": [("occurrence", lv, lr) for lv in (0.03, 0.1, 0.3) for lr in (0.01, 0.03)]
                   + [("present", lv, 0.01) for lv in (1e-4, 2e-4, 4e-4)],
    "+ implicit": [("occurrence", lv, 0.01) for lv in (0.01, 0.03, 0.1)]
                  + [("present", lv, 0.01) for lv in (5e-5, 1e-4, 2e-4)],
}


def save(part: str, value) -> None:
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[part] = value
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "fmlib", "benchmarks/bench_sparse.py")
    commit = git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if changed else "")
    results.setdefault("commits", {})[part] = commit   # the code each part ran
    OUT.write_text(json.dumps(results, indent=1) + "\n")


# --- throughput -----------------------------------------------------------------------------
def throughput(repeats: int = 3) -> dict:
    """Rows per second of every path and of myFM, measured ``repeats`` times in turn (the
    machine's speed drifts by some 10% between runs); each entry is the median of the
    repeats, and ``repeats`` keeps them all."""
    import myfm

    import fmlib

    ml = fmlib.load_movielens("ml-100k")
    train = ml.with_side_features(ml.split("u1")[0])
    y = train["rating"].to_numpy(float)
    matrices = {design: fmlib.FeatureEncoder(**spec).fit_transform(train)
                for design, spec in DESIGNS.items()}
    runs = {design: [] for design in DESIGNS}
    for _ in range(repeats):
        for design, X in matrices.items():
            row = {}
            for updates, batches in (("dense", (1024, 4096)), ("sparse", (1024, 4096, 16384))):
                for batch in batches:
                    fm = fmlib.FactorizationMachine(X.shape[1], k=10, seed=0)
                    history = fmlib.fit(fm, X, y, num_epochs=4, batch_size=batch,
                                        updates=updates,
                                        lambda_v=1e-4 if updates == "dense" else 0.03, seed=0)
                    row[f"{updates}_{batch}"] = X.shape[0] / statistics.median(
                        history.attrs["epoch_seconds"][1:])
            sweeps = 5 if design == "user+item" else 2
            fm = myfm.MyFMRegressor(rank=10, random_seed=0)
            fm.fit(X, y, n_iter=1, n_kept_samples=1)     # warm-up
            start = time.perf_counter()
            fm.fit(X, y, n_iter=sweeps, n_kept_samples=1)
            row["myfm"] = X.shape[0] * sweeps / (time.perf_counter() - start)
            runs[design].append(row)
            print(design, {key: round(value) for key, value in row.items()}, flush=True)
    table = {}
    for design, rows in runs.items():
        table[design] = {"nnz_per_row": matrices[design].nnz / matrices[design].shape[0]}
        table[design].update({key: statistics.median(r[key] for r in rows) for key in rows[0]})
        table[design]["repeats"] = rows
    return table


# --- scale ----------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM belongs to the process image (getrusage's
    ru_maxrss would start from the parent's peak when the parent forked us while large)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
            raise ValueError(f"more than {max_nnz_per_row} non-zeros per rating; raise max_nnz_per_row")
        indptr[row + 1:row + 1 + Xc.shape[0]] = Xc.indptr[1:] + nnz
        indices[nnz:nnz + Xc.nnz] = Xc.indices
        data[nnz:nnz + Xc.nnz] = Xc.data
        y[row:row + Xc.shape[0]] = yc
        row, nnz = row + Xc.shape[0], nnz + Xc.nnz
    if nnz < 2**31:                       # int32 index arrays: half the bytes of int64
        indptr = indptr.astype(np.int32)
    X = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n, stream.n_features))
    return X, y


def one_size(n_ratings: int, n_users: int, n_items: int, streamed: bool) -> dict:
    """One size in this process: generate, train, measure."""
    import scipy.sparse as sp

    import fmlib

    stream = fmlib.stream_ratings(n_users, n_items, n_ratings=n_ratings, chunk_size=1_000_000,
                                  k=8, n_age_groups=7, n_genres=19, output="stars", seed=0)
    fm = fmlib.FactorizationMachine(stream.n_features, k=8, seed=0)
    fm.w0.assign(3.5)
    start = time.perf_counter()
    if streamed:
        history = fmlib.fit(fm, stream.dataset(4096), None, num_epochs=1, lr=0.01, lambda_v=0.03)
        epoch, generate, nnz = history.attrs["epoch_seconds"][0], None, None
    else:
        X, y = in_memory(stream)
        generate = time.perf_counter() - start
        history = fmlib.fit(fm, X, y, num_epochs=3, batch_size=4096, updates="sparse", lr=0.01,
                            lambda_v=0.03, seed=0)
        epoch, nnz = statistics.median(history.attrs["epoch_seconds"][1:]), int(X.nnz)
    return {"n_ratings": n_ratings, "n_users": n_users, "n_items": n_items,
            "n_features": stream.n_features, "nnz": nnz, "streamed": streamed,
            "generate_s": generate, "epoch_s": epoch, "rows_per_second": n_ratings / epoch,
            "final_train_rmse": float(np.sqrt(history["loss"].iloc[-1])),
            "peak_rss_mib": peak_rss_mib(),
            "index_dtype": None if streamed else str(X.indices.dtype)}


def scale(max_ratings: float) -> dict:
    cases = [(c, False) for c in SCALE_CASES if c[0] <= max_ratings]
    if STREAM_CASE[0] <= max_ratings:
        cases.append((STREAM_CASE, True))
    rows = []
    for (n, users, items), streamed in cases:
        out = subprocess.run([sys.executable, __file__, "--one", f"{n},{users},{items},{int(streamed)}"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print({k: v for k, v in rows[-1].items()}, flush=True)
    if STREAM_CASE[0] > max_ratings and OUT.exists():   # keep the last streamed run
        rows += [r for r in json.loads(OUT.read_text()).get("scale", {}).get("rows", [])
                 if r["streamed"]]
    fitted = [r for r in rows if not r["streamed"]]
    slope = (float(np.polyfit(np.log([r["nnz"] for r in fitted]),
                              np.log([r["epoch_s"] for r in fitted]), 1)[0])
             if len(fitted) >= 2 else None)
    print("slope", slope)
    return {"rows": rows, "slope": slope}


# --- accuracy -------------------------------------------------------------------------------
def accuracy(sets) -> dict:
    import fmlib
    from tune_movielens import FEATURE_SETS, fit_with_validation

    dense = json.loads((ROOT / "book" / "tuning" / "movielens_folds.json").read_text())
    ml = fmlib.load_movielens("ml-100k")
    folds = ("u1", "u2", "u3", "u4", "u5")
    data = {f: tuple(ml.with_side_features(p) for p in ml.split(f)) for f in folds}
    report = json.loads(OUT.read_text()).get("accuracy", {}) if OUT.exists() else {}
    for name in sets:
        spec, grid = FEATURE_SETS[name], []
        for regularization, lambda_v, lr in ACCURACY_GRIDS[name]:
            runs = {}
            for fold in folds:
                train, test = data[fold]
                fm, encoder, history = fit_with_validation(train, spec, lambda_v, lr, updates="sparse",
                                                           regularization=regularization)
                best = history.attrs["best_epoch"]
                y_hat = fm.predict(encoder.transform(test))
                runs[fold] = {"val_rmse": float(history.loc[best, "val_rmse"]), "best_epoch": int(best),
                              "test_rmse": float(np.sqrt(np.mean((y_hat - test["rating"].to_numpy(float)) ** 2))),
                              "epoch_s": float(np.median(history.attrs["epoch_seconds"]))}
            grid.append({"regularization": regularization, "lambda_v": lambda_v, "lr": lr, "runs": runs,
                         "mean_val_rmse": float(np.mean([r["val_rmse"] for r in runs.values()])),
                         "mean_test_rmse": float(np.mean([r["test_rmse"] for r in runs.values()]))})
            print(f"{name:<12} {regularization:<10} lambda_v={lambda_v:<6g} lr={lr:<5g} val {grid[-1]['mean_val_rmse']:.4f} "
                  f"test {grid[-1]['mean_test_rmse']:.4f}", flush=True)
        chosen = min(grid, key=lambda g: g["mean_val_rmse"])
        dense_mean = float(np.mean([dense["runs"][f"{name}|{f}"]["rmse"] for f in folds]))
        report[name] = {"grid": grid, "chosen": {key: chosen[key] for key in
                                                 ("regularization", "lambda_v", "lr")},
                        "sparse_test_rmse": chosen["mean_test_rmse"], "dense_test_rmse": dense_mean,
                        "dense_hyper": dense["hyper"][name]}
        print(f"  -> {name}: sparse {chosen['mean_test_rmse']:.4f} vs dense {dense_mean:.4f}", flush=True)
        save("accuracy", report)   # after each feature set
    return report


def markdown() -> str:
    """The tables of benchmarks/README.md, from the committed JSON."""
    r = json.loads(OUT.read_text())
    lines = ["| design | non-zeros/row | dense 1,024 | dense 4,096 | sparse 1,024 | sparse 4,096 "
             "| sparse 16,384 | myFM sweep | sparse 1,024 / myFM | best sparse ≤ 4,096 / myFM |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for design, row in r["throughput"].items():
        cells = [f"{row[k]:,.0f}" for k in ("dense_1024", "dense_4096", "sparse_1024",
                                             "sparse_4096", "sparse_16384", "myfm")]
        best = max(row["sparse_1024"], row["sparse_4096"]) / row["myfm"]
        lines.append(f"| {design} | {row['nnz_per_row']:.1f} | " + " | ".join(cells)
                     + f" | {row['sparse_1024'] / row['myfm']:.2f} | {best:.2f} |")
    lines += ["", "| ratings | non-zeros | features | generate s | s/epoch | rows/s | peak RSS MiB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["scale"]["rows"]:
        nnz = "streamed" if row["streamed"] else f"{row['nnz']:,}"
        gen = "in the epoch" if row["generate_s"] is None else f"{row['generate_s']:.1f}"
        lines.append(f"| {row['n_ratings']:,} | {nnz} | {row['n_features']:,} | {gen} | "
                     f"{row['epoch_s']:.2f} | {row['rows_per_second']:,.0f} | {row['peak_rss_mib']:,.0f} |")
    lines += ["", f"Fitted slope of s/epoch against non-zeros (in memory): {r['scale']['slope']:.2f}",
              "", "| feature set | dense (chapter's tuning) | sparse | chosen penalty, λ_v, lr |",
              "| --- | ---: | ---: | --- |"]
    for name, a in r["accuracy"].items():
        c = a["chosen"]
        lines.append(f"| {name} | {a['dense_test_rmse']:.4f} | {a['sparse_test_rmse']:.4f} | "
                     f"{c['regularization']}, {c['lambda_v']:g}, {c['lr']:g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="throughput,scale,accuracy")
    parser.add_argument("--table", action="store_true", help="print the README tables and stop")
    parser.add_argument("--max", type=float, default=1e8)
    parser.add_argument("--sets", default=",".join(ACCURACY_GRIDS), help="accuracy: feature sets")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(markdown())
        return
    if args.one:
        n, users, items, streamed = (int(v) for v in args.one.split(","))
        print(json.dumps(one_size(n, users, items, bool(streamed))))
        return
    for part in args.parts.split(","):
        value = {"throughput": throughput, "accuracy": lambda: accuracy(args.sets.split(",")),
                 "scale": lambda: scale(args.max)}[part]()
        save(part, value)


if __name__ == "__main__":
    main()
