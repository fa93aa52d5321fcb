"""Choose the hyper-parameters of the chapter "MovieLens 100k" on validation data only.

For every predefined fold u1..u5 and every feature set of the chapter, 10% of the *training*
fold (seeded) is held out as a validation split; the encoder is fitted on the other 90%, the FM
is trained with early stopping on the validation split, and its best validation RMSE is
recorded. The test folds are never read. For each feature set the script prints the grid, the
per-fold validation RMSE, and the configuration with the lowest mean validation RMSE, which the
chapter then uses.

    FMLIB_DATA=... python book/tuning/tune_movielens.py      # about 10 minutes on 2 cores

Writes book/tuning/tune_movielens.json.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import fmlib  # noqa: E402

SIDE = ["age_bucket", "gender", "occupation"]
FEATURE_SETS = {
    "user + item": dict(categorical=["user", "item"]),
    "+ age, gender, occupation": dict(categorical=["user", "item"] + SIDE),
    "+ genres": dict(categorical=["user", "item"] + SIDE, multi_hot=["genres"]),
    "+ implicit": dict(categorical=["user", "item"] + SIDE, multi_hot=["genres"],
                       implicit=("user", "item"), implicit_norm="sqrt"),
}
GRID = {"lambda_v": [5e-5, 1e-4, 2e-4, 4e-4], "lr": [0.01, 0.03]}
FIXED = dict(k=8, batch_size=4096, max_epochs=40, patience=2, val_fraction=0.1, seed=0)


def validation_mask(train):
    """True for the rows of the training fold held out for validation (seeded)."""
    return np.random.default_rng(FIXED["seed"]).random(len(train)) < FIXED["val_fraction"]


def fit_with_validation(train, spec, lambda_v, lr, **options):
    """The chapter's protocol on one training fold: returns the FM, its encoder and its history.

    ``options`` go to ``fmlib.fit`` (benchmarks/bench_sparse.py passes ``updates="sparse"``).
    """
    y = train["rating"].to_numpy(float)
    val = validation_mask(train)
    encoder = fmlib.FeatureEncoder(**spec)
    X_fit, X_val = encoder.fit_transform(train[~val]), encoder.transform(train[val])
    fm = fmlib.FactorizationMachine(encoder.n_features_, k=FIXED["k"], seed=FIXED["seed"])
    fm.w0.assign(y[~val].mean())
    history = fmlib.fit(fm, X_fit, y[~val], num_epochs=FIXED["max_epochs"],
                        batch_size=FIXED["batch_size"], lr=lr, lambda_v=lambda_v,
                        validation_data=(X_val, y[val]), patience=FIXED["patience"],
                        seed=FIXED["seed"], **options)
    return fm, encoder, history


def validation_rmse(train, spec, lambda_v, lr):
    """Best validation RMSE and its epoch, training on 90% of ``train``."""
    _, _, history = fit_with_validation(train, spec, lambda_v, lr)
    best = history.attrs["best_epoch"]
    return float(history.loc[best, "val_rmse"]), int(best)


def main() -> None:
    ml = fmlib.load_movielens("ml-100k")
    trains = {fold: ml.with_side_features(ml.split(fold)[0]) for fold in ("u1", "u2", "u3", "u4", "u5")}
    report = {"fixed": FIXED, "grid": GRID, "feature_sets": {}}
    for name, spec in FEATURE_SETS.items():
        rows = []
        for lambda_v, lr in itertools.product(GRID["lambda_v"], GRID["lr"]):
            start = time.perf_counter()
            scores = {fold: validation_rmse(train, spec, lambda_v, lr) for fold, train in trains.items()}
            mean = float(np.mean([s for s, _ in scores.values()]))
            rows.append({"lambda_v": lambda_v, "lr": lr, "mean_val_rmse": mean,
                         "per_fold": {f: {"val_rmse": s, "best_epoch": e} for f, (s, e) in scores.items()}})
            print(f"{name:<26} lambda_v={lambda_v:<7g} lr={lr:<5g} mean val RMSE {mean:.4f}  "
                  f"epochs {[e for _, e in scores.values()]}  {time.perf_counter() - start:.0f} s", flush=True)
        best = min(rows, key=lambda r: r["mean_val_rmse"])
        print(f"  -> {name}: lambda_v={best['lambda_v']:g}, lr={best['lr']:g} "
              f"(mean val RMSE {best['mean_val_rmse']:.4f})", flush=True)
        report["feature_sets"][name] = {"chosen": {"lambda_v": best["lambda_v"], "lr": best["lr"]},
                                        "grid": rows}
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
