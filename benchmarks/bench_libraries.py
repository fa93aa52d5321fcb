"""Benchmark: fmlib against myFM and Surprise on MovieLens 100k, folds u1..u5.

Every method sees the same training fold and is scored on the same test fold:

* global mean: the mean training rating;
* Surprise SVD and SVD++ (``scikit-surprise``, default hyper-parameters, random_state=0),
  which read (user, item, rating) triples;
* fmlib (``fmlib.fit``) and myFM (Bayesian FM, Gibbs sampling) on the *same* design matrices,
  built by ``fmlib.FeatureEncoder`` from the training fold: "user+item" (two one-hot blocks)
  and "all+implicit" (user, item, age group, gender, occupation, genres, and the SVD++-scaled
  set of movies the user rated), the chapter "MovieLens 100k"'s best feature set.

fmlib follows the chapter's protocol: 10% of the training fold is held out for early stopping,
the encoder is fitted on the other 90%, hyper-parameters as in the chapter. myFM runs
``N_ITER`` Gibbs sweeps on the whole training fold, with one prior per feature block
(``group_shapes``), and averages the last ``N_ITER - BURN_IN`` samples (its documented usage).

Reported per method: test RMSE mean ± std over the folds and training time per fold (for
fmlib: encoding, training with validation, early stopping). Then, for fmlib and myFM, the
training throughput on the same u1.base matrix: rows per second per epoch of ``fmlib.fit``
(median of epochs 2-4, so that graph tracing is left out) at three batch sizes, and per Gibbs
sweep of myFM (fit time / number of sweeps). Run from the repository root,
after ``pip install -r benchmarks/requirements.txt``:

    python benchmarks/bench_libraries.py [--folds u1,u2,u3,u4,u5]
    python benchmarks/bench_libraries.py --smoke   # seconds: 4,000 rows of u1, 2 epochs, 5
                                                   # sweeps; myFM and Surprise only if
                                                   # installed; a temporary file

Writes benchmarks/results/libraries.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar

import common  # noqa: E402
import numpy as np  # noqa: E402

import fmlib  # noqa: E402

_smoke = "--smoke" in sys.argv
myfm = common.peer("myfm", _smoke)
surprise = common.peer("surprise", _smoke)
tune_movielens = common.tuning_module()
FMLIB, fit_with_validation = tune_movielens.FIXED, tune_movielens.fit_with_validation
validation_mask = tune_movielens.validation_mask
OUT = common.RESULTS / "libraries.json"

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
# lambda_v and learning rate per design: the chapter's choices (book/tuning/tune_movielens.py)
FMLIB_TUNED = {
    "user+item": dict(lambda_v=2e-4, lr=0.01),
    "all+implicit": dict(lambda_v=1e-4, lr=0.01),
}
MYFM_RANK, N_ITER, BURN_IN = 8, 100, 20
THROUGHPUT_BATCHES = (1024, 4096, 16384)
THROUGHPUT_SWEEPS = {"user+item": 50, "all+implicit": 5}
THROUGHPUT_EPOCHS = 4
rmse = common.rmse


def smoke_settings() -> None:
    """--smoke: few epochs and sweeps, one small batch size."""
    global N_ITER, BURN_IN, THROUGHPUT_BATCHES, THROUGHPUT_SWEEPS, THROUGHPUT_EPOCHS
    N_ITER, BURN_IN, THROUGHPUT_BATCHES, THROUGHPUT_EPOCHS = 5, 2, (512,), 2
    THROUGHPUT_SWEEPS = {design: 2 for design in THROUGHPUT_SWEEPS}
    FMLIB["max_epochs"] = 2  # the chapter's protocol, cut short


def run_fmlib(design, train, test):
    tuned = FMLIB_TUNED[design]
    start = time.perf_counter()
    fm, encoder, history = fit_with_validation(
        train, DESIGNS[design], tuned["lambda_v"], tuned["lr"]
    )
    seconds = time.perf_counter() - start
    score = rmse(fm.predict(encoder.transform(test)), test["rating"].to_numpy(float))
    epoch = statistics.median(
        history.attrs["epoch_seconds"][1:] or history.attrs["epoch_seconds"]
    )
    n_fit = int((~validation_mask(train)).sum())  # rows trained on
    return score, seconds, n_fit / epoch, None


def run_myfm(design, train, test):
    start = time.perf_counter()
    encoder = fmlib.FeatureEncoder(**DESIGNS[design])
    X = encoder.fit_transform(train)
    fm = myfm.MyFMRegressor(rank=MYFM_RANK, random_seed=0)
    # one prior (regularisation strength) per feature block, as myFM's documentation recommends
    group_shapes = [block.stop - block.start for block in encoder.groups_.values()]
    fit_start = time.perf_counter()
    fm.fit(
        X,
        train["rating"].to_numpy(float),
        n_iter=N_ITER,
        n_kept_samples=N_ITER - BURN_IN,
        group_shapes=group_shapes,
    )
    sweeps = time.perf_counter() - fit_start
    seconds = time.perf_counter() - start
    score = rmse(fm.predict(encoder.transform(test)), test["rating"].to_numpy(float))
    return score, seconds, X.shape[0] * N_ITER / sweeps, X.nnz / X.shape[0]


def run_surprise(algo_cls, train, test):
    reader = surprise.Reader(rating_scale=(1, 5))
    start = time.perf_counter()
    trainset = surprise.Dataset.load_from_df(
        train[["user", "item", "rating"]], reader
    ).build_full_trainset()
    algo = algo_cls(random_state=0)
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    y_hat = [algo.predict(u, i).est for u, i in zip(test["user"], test["item"])]
    return rmse(y_hat, test["rating"].to_numpy(float)), seconds, None, None


def throughput(ml, design: str, smoke: bool = False) -> dict:
    """Rows per second on the same u1.base matrix: one fmlib epoch per batch size, one myFM sweep."""
    train, _ = common.fold_frames(ml, "u1", smoke=smoke)
    X = fmlib.FeatureEncoder(**DESIGNS[design]).fit_transform(train)
    y = train["rating"].to_numpy(float)
    out = {"rows": X.shape[0], "nnz_per_row": X.nnz / X.shape[0]}
    for batch in THROUGHPUT_BATCHES:
        fm = fmlib.FactorizationMachine(X.shape[1], k=FMLIB["k"], seed=0)
        history = fmlib.fit(
            fm, X, y, num_epochs=THROUGHPUT_EPOCHS, batch_size=batch, seed=0
        )
        out[f"fmlib_batch_{batch}"] = X.shape[0] / statistics.median(
            history.attrs["epoch_seconds"][1:]
        )
    if myfm is None:
        return out
    sweeps = THROUGHPUT_SWEEPS[design]
    fm = myfm.MyFMRegressor(rank=MYFM_RANK, random_seed=0)
    start = time.perf_counter()
    fm.fit(X, y, n_iter=sweeps, n_kept_samples=1)
    out["myfm"] = X.shape[0] * sweeps / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5")
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out_path = common.results_path(args, OUT)
    if args.smoke:
        smoke_settings()
        args.folds = "u1"
    ml = common.movielens()
    methods = {"global mean": None}
    if surprise is not None:
        methods.update({"Surprise SVD": surprise.SVD, "Surprise SVD++": surprise.SVDpp})
    for design in DESIGNS:
        methods[f"fmlib, {design}"] = ("fmlib", design)
        if myfm is not None:
            methods[f"myFM, {design}"] = ("myfm", design)
    results = {name: [] for name in methods}
    for fold in args.folds.split(","):
        train, test = common.fold_frames(ml, fold, smoke=args.smoke)
        for name, how in methods.items():
            if how is None:
                start = time.perf_counter()
                mean = train["rating"].mean()
                out = (
                    rmse(np.full(len(test), mean), test["rating"].to_numpy(float)),
                    time.perf_counter() - start,
                    None,
                    None,
                )
            elif isinstance(how, tuple):
                out = (run_fmlib if how[0] == "fmlib" else run_myfm)(
                    how[1], train, test
                )
            else:
                out = run_surprise(how, train, test)
            results[name].append(
                dict(zip(("rmse", "seconds", "rows_per_second", "nnz_per_row"), out))
            )
            print(f"{fold} {name:<24} RMSE {out[0]:.4f}  {out[1]:7.1f} s", flush=True)

    table = []
    print(
        f"\n{'method':<24} {'RMSE mean':>9} {'± std':>7} {'s/fold':>7} {'rows/s (epoch or sweep)':>24}"
    )
    for name, runs in results.items():
        scores = [r["rmse"] for r in runs]
        row = {
            "method": name,
            "rmse_mean": float(np.mean(scores)),
            "rmse_std": float(np.std(scores)),
            "seconds_per_fold": statistics.median(r["seconds"] for r in runs),
            "folds": runs,
        }
        if runs[0]["rows_per_second"] is not None:
            row["rows_per_second"] = statistics.median(
                r["rows_per_second"] for r in runs
            )
            row["nnz_per_row"] = runs[0]["nnz_per_row"]
        table.append(row)
        rps = f"{row['rows_per_second']:,.0f}" if "rows_per_second" in row else ""
        print(
            f"{name:<24} {row['rmse_mean']:>9.4f} {row['rmse_std']:>7.4f} "
            f"{row['seconds_per_fold']:>7.1f} {rps:>24}"
        )
    print(
        f"\nThroughput on u1.base (rows per second; fmlib: one epoch, k = {FMLIB['k']}; "
        f"myFM: one Gibbs sweep, rank {MYFM_RANK})"
    )
    print(
        f"{'design':<14} {'nnz/row':>7} "
        + " ".join(f"{'fmlib b=' + str(b):>13}" for b in THROUGHPUT_BATCHES)
        + f" {'myFM':>10} {'best fmlib / myFM':>18}"
    )
    speeds, ratios = {}, {}
    for design in DESIGNS:
        speeds[design] = t = throughput(ml, design, args.smoke)
        if "myfm" not in t:  # --smoke without myFM
            print(
                f"{design:<14} {t['nnz_per_row']:>7.1f} "
                + " ".join(
                    f"{t[f'fmlib_batch_{b}']:>13,.0f}" for b in THROUGHPUT_BATCHES
                )
            )
            continue
        best = max(t[f"fmlib_batch_{b}"] for b in THROUGHPUT_BATCHES)
        ratios[design] = {
            str(b): t[f"fmlib_batch_{b}"] / t["myfm"] for b in THROUGHPUT_BATCHES
        }
        print(
            f"{design:<14} {t['nnz_per_row']:>7.1f} "
            + " ".join(f"{t[f'fmlib_batch_{b}']:>13,.0f}" for b in THROUGHPUT_BATCHES)
            + f" {t['myfm']:>10,.0f} {best / t['myfm']:>18.2f}"
        )
    common.save_results(
        out_path,
        {
            "machine": record["machine"],
            "folds": args.folds.split(","),
            "fmlib": {**FMLIB, "tuned": FMLIB_TUNED},
            "myfm": {"rank": MYFM_RANK, "n_iter": N_ITER, "burn_in": BURN_IN},
            "throughput": speeds,
            "throughput_ratio_fmlib_over_myfm_by_batch": ratios,
            "rows": table,
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
