"""Benchmark: ranking from implicit feedback on MovieLens 100k, full-catalogue metrics.

Every rating is a positive interaction. Each user's last interaction (by timestamp) is the
test item and the one before it the validation item (``fmlib.ranking.leave_last_out``); the
rest is training data. All methods are scored by the same code
(``fmlib.ranking.ranking_metrics``) on the same split:

* most popular: items ranked by their number of training interactions;
* ``implicit`` (Frederickson, v0.7) BPR and ALS (iALS, Hu, Koren and Volinsky 2008) on the
  (users x items) training matrix; ``OPENBLAS_NUM_THREADS=1`` as ``implicit`` asks;
* fmlib FM-BPR (``fmlib.ranking.fit_bpr``, Adam, uniform negatives) on user+item one-hot
  rows, and with side features (user: age group, gender, occupation; item: genres).

Protocol. Each method's small grid (``GRIDS`` below) is trained on the training part and
scored on the validation items (full catalogue, a user's training items excluded); fmlib
stops early on validation NDCG@10 (patience 4, at most 30 epochs) and its best epoch is part of the choice.
The chosen configuration is then trained again, from scratch, on training + validation
interactions (fmlib: for the chosen number of epochs) and scored once on the test items,
excluding a user's training and validation items. Reported: HR@10 (= recall@10), NDCG@10,
MRR and AUC over the full catalogue, the same with 100 sampled negatives (same candidates
for every method), and the training time of the final fit. The machine (2 vCPU) was shared
with other jobs: times are indicative, compare them as ratios.

Run from the repository root, after ``pip install -r benchmarks/requirements.txt``:

    python benchmarks/bench_ranking.py
    python benchmarks/bench_ranking.py --smoke   # seconds: one configuration per method, 1
                                                 # epoch; implicit only if installed; a temp file

Writes benchmarks/results/ranking.json (about 10 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns otherwise (ALS)

import common  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import fmlib  # noqa: E402
from fmlib import ranking  # noqa: E402

implicit = common.peer("implicit", "--smoke" in sys.argv)
if implicit is not None:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
OUT = common.RESULTS / "ranking.json"

K, N_SAMPLED, SEED = 10, 100, 0
GRIDS = {
    "implicit BPR": dict(
        factors=[32, 64],
        learning_rate=[0.01],
        regularization=[0.001, 0.01],
        iterations=[50, 100, 200],
    ),
    "implicit ALS": dict(
        factors=[16, 32, 64],
        regularization=[0.01, 0.1, 1.0, 10.0],
        alpha=[1.0, 10.0],
        iterations=[15],
    ),
    # num_negatives: 4 was better than or equal to 1 for every k in a first run (README)
    "fmlib FM-BPR user+item": dict(k=[16, 32, 64], num_negatives=[4]),
    "fmlib FM-BPR +side": dict(k=[16, 32, 64], num_negatives=[4]),
}
FM_FIXED = dict(
    optimizer="adam",
    lr=0.005,
    batch_size=1024,
    lambda_w=1e-4,
    lambda_v=1e-4,
    sampling="uniform",
)
FM_MAX_EPOCHS, FM_PATIENCE = 30, 4
# --smoke: the first value of every grid entry, iterations of implicit cut, FM epochs cut,
# larger FM batches (fewer steps)
SMOKE_ITERATIONS, SMOKE_FM_EPOCHS, SMOKE_FM_BATCH = 3, 1, 8192


def grid(spec: dict) -> list[dict]:
    return [dict(zip(spec, values)) for values in itertools.product(*spec.values())]


def interactions(users, items, n_users, n_items) -> sp.csr_matrix:
    return sp.csr_matrix(
        (np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items)
    )


def score(S, targets, exclude) -> dict:
    full = ranking.ranking_metrics(S, targets, exclude, k=K)
    sampled = ranking.ranking_metrics(
        S, targets, exclude, k=K, n_negatives=N_SAMPLED, seed=SEED
    )
    return {"full": full, "sampled": sampled}


# --- methods: each returns (scores of every user x item, seconds of training) -----------------
def most_popular(train_ui: sp.csr_matrix, params: dict) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    counts = np.asarray(train_ui.sum(axis=0)).ravel()
    seconds = time.perf_counter() - started
    return np.broadcast_to(counts, train_ui.shape).astype(np.float64), seconds


def implicit_model(
    cls, train_ui: sp.csr_matrix, params: dict
) -> tuple[np.ndarray, float]:
    model = cls(**params, random_state=SEED)
    started = time.perf_counter()
    model.fit(train_ui, show_progress=False)
    seconds = time.perf_counter() - started
    return np.asarray(model.user_factors) @ np.asarray(model.item_factors).T, seconds


def fm_bpr(data, users, items, params: dict, validation=None, num_epochs=FM_MAX_EPOCHS):
    fm = fmlib.FactorizationMachine(data.n_features, k=params["k"], seed=SEED)
    started = time.perf_counter()
    history = ranking.fit_bpr(
        fm,
        data.contexts,
        data.items,
        users,
        items,
        num_epochs=num_epochs,
        num_negatives=params["num_negatives"],
        validation=validation,
        patience=FM_PATIENCE if validation else None,
        seed=SEED,
        **FM_FIXED,
    )
    seconds = time.perf_counter() - started
    return ranking.catalogue_scores(fm, data.contexts, data.items), seconds, history


def main() -> None:
    global FM_MAX_EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    path = common.results_path(args, OUT)
    if args.smoke:
        for name, spec in GRIDS.items():
            GRIDS[name] = {p: v[:1] for p, v in spec.items()}
            if "iterations" in spec:
                GRIDS[name]["iterations"] = [SMOKE_ITERATIONS]
        FM_MAX_EPOCHS = SMOKE_FM_EPOCHS
        FM_FIXED["batch_size"] = SMOKE_FM_BATCH
    ml = common.movielens()
    datasets = {
        side: ranking.movielens_implicit(ml, side_features=side)
        for side in (False, True)
    }
    data = datasets[False]
    n_users, n_items = data.contexts.shape[0], data.items.shape[0]
    tr_u, tr_i = data.pairs("train")
    va_u, va_i = data.pairs("valid")
    te_u, te_i = data.pairs("test")
    train_ui = interactions(tr_u, tr_i, n_users, n_items)
    trval_ui = interactions(np.r_[tr_u, va_u], np.r_[tr_i, va_i], n_users, n_items)
    exclude_valid, exclude_test = (
        train_ui[va_u],
        trval_ui[te_u],
    )  # rows in the order of va_u, te_u
    print(
        f"MovieLens 100k implicit: {n_users} users, {n_items} items, {len(tr_u)} training, "
        f"{len(va_u)} validation, {len(te_u)} test interactions",
        flush=True,
    )

    results, curves, started_all = {}, {}, time.perf_counter()
    methods = {"most popular": lambda ui, p: most_popular(ui, p)}
    if implicit is not None:
        methods["implicit BPR"] = lambda ui, p: implicit_model(
            BayesianPersonalizedRanking, ui, p
        )
        methods["implicit ALS"] = lambda ui, p: implicit_model(
            AlternatingLeastSquares, ui, p
        )
    for name, run in methods.items():
        trials = []
        for params in grid(GRIDS.get(name, {})):
            S, _ = run(train_ui, params)
            val = ranking.ranking_metrics(S[va_u], va_i, exclude_valid, k=K)[
                f"ndcg@{K}"
            ]
            trials.append({"params": params, f"val_ndcg@{K}": val})
            print(f"  {name} {params}: val NDCG@10 {val:.4f}", flush=True)
        best = max(trials, key=lambda t: t[f"val_ndcg@{K}"])
        S, seconds = run(trval_ui, best["params"])
        results[name] = {
            "trials": trials,
            "best": best,
            "train_seconds": seconds,
            "test": score(S[te_u], te_i, exclude_test),
        }
        print(f"{name}: {best}, test {results[name]['test']['full']}", flush=True)

    for name, side in (("fmlib FM-BPR user+item", False), ("fmlib FM-BPR +side", True)):
        d = datasets[side]
        trials = []
        for params in grid(GRIDS[name]):
            _, _, history = fm_bpr(
                d, tr_u, tr_i, params, validation=(va_u, va_i), num_epochs=FM_MAX_EPOCHS
            )
            epoch = int(history.attrs["best_epoch"])
            val = float(history.loc[epoch, f"val_ndcg@{K}"])
            trials.append(
                {
                    "params": params,
                    "best_epoch": epoch,
                    f"val_ndcg@{K}": val,
                    "curve": history[f"val_ndcg@{K}"].round(5).tolist(),
                }
            )
            print(
                f"  {name} {params}: best epoch {epoch}, val NDCG@10 {val:.4f}",
                flush=True,
            )
        best = max(trials, key=lambda t: t[f"val_ndcg@{K}"])
        S, seconds, _ = fm_bpr(
            d,
            np.r_[tr_u, va_u],
            np.r_[tr_i, va_i],
            best["params"],
            num_epochs=best["best_epoch"],
        )
        curves[name] = best["curve"]
        results[name] = {
            "trials": trials,
            "best": best,
            "train_seconds": seconds,
            "test": score(S[te_u], te_i, exclude_test),
        }
        print(
            f"{name}: {best['params']} epochs {best['best_epoch']}, test "
            f"{results[name]['test']['full']}",
            flush=True,
        )

    print_table(results)
    out = {
        "protocol": __doc__.split("Run from")[0].strip(),
        "k": K,
        "n_sampled": N_SAMPLED,
        "grids": {n: {p: v for p, v in g.items()} for n, g in GRIDS.items()},
        "fm_fixed": FM_FIXED,
        "fm_max_epochs": FM_MAX_EPOCHS,
        "fm_patience": FM_PATIENCE,
        "results": results,
        "validation_curves": curves,
        "total_seconds": time.perf_counter() - started_all,
        "environment": {
            "python": record["python"],
            "implicit": implicit.__version__ if implicit else None,
            "fmlib": fmlib.__version__,
            "machine": f"{os.cpu_count()} vCPU, shared",
        },
    }
    common.save_results(path, out, record, replace=True)


def print_table(results: dict) -> None:
    base = results["most popular"]["train_seconds"]
    print(
        f"\n| method | HR@{K} | NDCG@{K} | MRR | AUC | sampled HR@{K} | sampled NDCG@{K} | "
        "train s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        f, s = r["test"]["full"], r["test"]["sampled"]
        print(
            f"| {name} | {f[f'hr@{K}']:.4f} | {f[f'ndcg@{K}']:.4f} | {f['mrr']:.4f} | "
            f"{f['auc']:.4f} | {s[f'hr@{K}']:.4f} | {s[f'ndcg@{K}']:.4f} | "
            f"{r['train_seconds']:.2f} |"
        )
    del base


if __name__ == "__main__":
    sys.exit(main())
