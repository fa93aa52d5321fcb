"""Benchmark: the FM family (FM, FM of order 3, FFM, DeepFM) on MovieLens 100k.

Two tasks on the same matrices:

* regression: the rating, test RMSE (raw predictions);
* CTR-style: a rating >= 4 is a "click" (label 1), test log loss and AUC.

Features: the project's feature set "+ age, gender, occupation" (chapter "MovieLens 100k"):
five categorical fields, user, item, age bucket, gender, occupation, all single-valued, so
the same information is a one-hot design matrix (FM, order-3 FM) and five field ids (FFM,
DeepFM). One ``fmlib.FeatureEncoder(handle_unknown="bucket")`` per fold, fitted on the
training part, gives both (an unseen test user gets the field's unknown id).

Protocol, the same for every model (the "same budget"): 10% of each training fold (seeded)
held out for validation; Adam (lr 0.01), batch 4096 (as in the chapter "MovieLens 100k"),
at most 30 epochs, early
stopping on the validation loss (patience 2) with the best epoch's weights restored; w0
starts at the mean rating (regression) or the logit of the click rate. Models:

* "FM": ``fmlib.build_fm_model`` (k = 8);
* "FM d=3": ``fmlib.build_higher_order_fm_model(order=3)`` (k = 8 per order);
* "FFM": ``fmlib.build_ffm_model`` (k = 4 per field pair, Juan et al.'s advice that FFM
  needs a smaller k than the FM: 5 fields x 4 = 20 numbers per feature);
* "DeepFM": ``fmlib.build_deepfm_model`` (k = 8, hidden layers 64 and 32, ReLU).

Grid (small, documented): the L2 strength ``l2`` (``l2_w = l2_v = l2``; for DeepFM also
``l2_deep``) in ``GRID``, chosen per model and task by the validation metric (RMSE, log
loss) on u1's validation split only; the test folds are never read for it. Then every fold
is trained with the chosen value and scored on its test file.

Reported: mean +- std over folds of the test metrics, the training seconds per fit (the
machine was shared with other jobs: read times as rough ratios), epochs used and parameter
count.

    FMLIB_DATA=... python benchmarks/bench_family.py [--folds u1,u2,...]
    python benchmarks/bench_family.py --smoke   # 4,000 rows of u1, one grid value (no
                                                # tuning fits), 1 epoch per fit; a temp file

64 fits (24 for the grid, 40 on the folds): 22 minutes on a 2 vCPU machine shared with other
jobs for five folds. Writes benchmarks/results/family.json.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

import fmlib  # noqa: E402

FIELDS = ["user", "item", "age_bucket", "gender", "occupation"]
MODELS = ("FM", "FM d=3", "FFM", "DeepFM")
TASKS = ("regression", "ctr")
GRID = [3e-5, 1e-4, 3e-4]
SETTINGS = dict(
    lr=0.01,
    batch_size=4096,
    max_epochs=30,
    patience=2,
    val_fraction=0.1,
    seed=0,
    k=8,
    k_ffm=4,
    hidden_units=[64, 32],
)
OUT = common.RESULTS / "family.json"
SMOKE = dict(grid=[1e-4], max_epochs=1)


def prepare(ml, fold: str, smoke: bool = False) -> dict:
    """Design matrices, field ids and both targets for the fit / validation / test parts."""
    train, test = common.fold_frames(ml, fold, smoke=smoke)
    val = (
        np.random.default_rng(SETTINGS["seed"]).random(len(train))
        < SETTINGS["val_fraction"]
    )
    encoder = fmlib.FeatureEncoder(categorical=FIELDS, handle_unknown="bucket")
    encoder.fit(train[~val])
    parts = {"fit": train[~val], "val": train[val], "test": test}
    data = {"n_features": encoder.n_features_}
    for name, df in parts.items():
        ids, vocab = encoder.field_ids(df)
        rating = df["rating"].to_numpy(np.float32)
        data[name] = dict(
            X=encoder.transform(df).astype(np.float32),
            ids=ids,
            rating=rating,
            click=(rating >= 4).astype(np.float32),
        )
    data["vocab_sizes"] = vocab
    return data


def build(model_name: str, task: str, l2: float, data: dict):
    """An uncompiled model, and the name of its input ("X" or "ids")."""
    y = data["fit"]["rating" if task == "regression" else "click"]
    w0 = (
        float(y.mean())
        if task == "regression"
        else float(np.log(y.mean() / (1 - y.mean())))
    )
    common = dict(
        task="regression" if task == "regression" else "classification",
        w0_init=w0,
        l2_w=l2,
        l2_v=l2,
        seed=SETTINGS["seed"],
    )
    k = SETTINGS["k"]
    if model_name == "FM":
        return fmlib.build_fm_model(data["n_features"], k=k, **common), "X"
    if model_name == "FM d=3":
        return (
            fmlib.build_higher_order_fm_model(
                data["n_features"], order=3, k=k, **common
            ),
            "X",
        )
    if model_name == "FFM":
        return (
            fmlib.build_ffm_model(data["vocab_sizes"], k=SETTINGS["k_ffm"], **common),
            "ids",
        )
    return (
        fmlib.build_deepfm_model(
            data["vocab_sizes"],
            k=k,
            l2_deep=l2,
            hidden_units=SETTINGS["hidden_units"],
            **common,
        ),
        "ids",
    )


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    ranks = rankdata(score)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores(task: str, y: np.ndarray, out: np.ndarray) -> dict:
    if task == "regression":
        return {"rmse": common.rmse(out, y)}
    p = np.clip(1 / (1 + np.exp(-out.astype(np.float64))), 1e-7, 1 - 1e-7)
    logloss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"logloss": float(logloss), "auc": auc(y, out)}


def train_and_score(model_name: str, task: str, l2: float, data: dict, parts) -> dict:
    """Train with early stopping on the validation part; metrics on ``parts``."""
    keras.utils.set_random_seed(SETTINGS["seed"])
    model, key = build(model_name, task, l2, data)
    model.compile(optimizer=keras.optimizers.Adam(SETTINGS["lr"]))
    target = "rating" if task == "regression" else "click"
    stop = keras.callbacks.EarlyStopping(
        patience=SETTINGS["patience"], restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        data["fit"][key],
        data["fit"][target],
        validation_data=(data["val"][key], data["val"][target]),
        epochs=SETTINGS["max_epochs"],
        batch_size=SETTINGS["batch_size"],
        callbacks=[stop],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "epochs": len(history.history["loss"]),
        "params": int(model.count_params()),
    }
    for part in parts:
        out = model.predict(data[part][key], batch_size=8192, verbose=0)[:, 0]
        result[part] = scores(task, data[part][target], out)
    return result


def tune(data: dict) -> dict:
    """The grid value with the best validation metric, per (model, task), on one fold
    (a grid of one value, as under --smoke, has nothing to choose: no fits)."""
    chosen, runs = {}, []
    if len(GRID) == 1:
        return {
            "chosen": {f"{m}|{t}": GRID[0] for t in TASKS for m in MODELS},
            "runs": runs,
        }
    for task in TASKS:
        metric = "rmse" if task == "regression" else "logloss"
        for model_name in MODELS:
            vals = {}
            for l2 in GRID:
                r = train_and_score(model_name, task, l2, data, ["val"])
                vals[l2] = r["val"][metric]
                runs.append({"model": model_name, "task": task, "l2": l2, **r})
                print(
                    f"  tune {task:10s} {model_name:7s} l2={l2:g}: val {metric} "
                    f"{vals[l2]:.4f} ({r['epochs']} epochs, {r['seconds']:.0f} s)",
                    flush=True,
                )
            chosen[f"{model_name}|{task}"] = min(vals, key=vals.get)
    return {"chosen": chosen, "runs": runs}


def summary(results: list[dict]) -> list[dict]:
    rows = []
    for task in TASKS:
        for model_name in MODELS:
            runs = [
                r for r in results if r["model"] == model_name and r["task"] == task
            ]
            if not runs:
                continue
            row = {
                "task": task,
                "model": model_name,
                "folds": len(runs),
                "l2": runs[0]["l2"],
                "params": runs[0]["params"],
            }
            for m in runs[0]["test"]:
                v = np.array([r["test"][m] for r in runs])
                row[m] = [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]
            row["seconds"] = float(np.mean([r["seconds"] for r in runs]))
            row["epochs"] = float(np.mean([r["epochs"] for r in runs]))
            rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "| task | model | params | L2 | test RMSE | test log loss | test AUC | "
        "s / fit | epochs |"
    )
    print("|---|---|---:|---:|---|---|---|---:|---:|")
    for r in rows:

        def cell(m):
            return f"{r[m][0]:.4f} ± {r[m][1]:.4f}" if m in r else ""

        print(
            f"| {r['task']} | {r['model']} | {r['params']:,} | {r['l2']:g} | "
            f"{cell('rmse')} | {cell('logloss')} | {cell('auc')} | "
            f"{r['seconds']:.1f} | {r['epochs']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5")
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    folds = args.folds.split(",")
    if args.smoke:
        folds = ["u1"]
        GRID[:] = SMOKE["grid"]
        SETTINGS["max_epochs"] = SMOKE["max_epochs"]
    ml = common.movielens()
    t0 = time.perf_counter()
    data = prepare(ml, "u1", args.smoke)
    print("tuning on u1's validation split", flush=True)
    tuned = tune(data)
    results = []
    for fold in folds:
        data = data if fold == "u1" else prepare(ml, fold, args.smoke)
        for task in TASKS:
            for model_name in MODELS:
                l2 = tuned["chosen"][f"{model_name}|{task}"]
                r = train_and_score(model_name, task, l2, data, ["val", "test"])
                results.append(
                    {"fold": fold, "model": model_name, "task": task, "l2": l2, **r}
                )
                print(
                    f"{fold} {task:10s} {model_name:7s} test {r['test']} "
                    f"({r['epochs']} epochs, {r['seconds']:.0f} s)",
                    flush=True,
                )
    rows = summary(results)
    print_table(rows)
    payload = {
        "settings": {**SETTINGS, "fields": FIELDS, "grid_l2": GRID, "folds": folds},
        "tuning": tuned,
        "results": results,
        "summary": rows,
        "total_seconds": time.perf_counter() - t0,
        "versions": {"fmlib": fmlib.__version__, "keras": keras.__version__},
        "machine": "2 vCPU, shared with other jobs (times are rough)",
    }
    common.save_results(out, payload, record, replace=True)
    print(f"in {payload['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
