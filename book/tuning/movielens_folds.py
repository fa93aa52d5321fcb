"""The five-fold results table of the chapter "MovieLens 100k", computed once and committed.

Training the chapter's four feature sets on the five folds u1..u5 takes longer than a chapter
may run, so this script does it with exactly the chapter's protocol (``fit_with_validation``
from ``tune_movielens.py``: 10% of each training fold held out for early stopping, the
hyper-parameters the tuning chose) and writes, per feature set and fold, the test RMSE and the
training history. The chapter reads the table from here, reruns fold u1 live, and checks that
its rerun gives the same numbers.

    FMLIB_DATA=... python book/tuning/movielens_folds.py      # about 2 minutes on 2 cores

Writes book/tuning/movielens_folds.json.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import fmlib  # noqa: E402
from tune_movielens import FEATURE_SETS, fit_with_validation  # noqa: E402

FOLDS = ("u1", "u2", "u3", "u4", "u5")


def hyper_parameters() -> dict[str, dict]:
    """The configuration the tuning script chose for each feature set."""
    tuned = json.loads(Path(__file__).with_name("tune_movielens.json").read_text())
    return {name: entry["chosen"] for name, entry in tuned["feature_sets"].items()}


def run(ml, fold: str, name: str, hyper: dict) -> dict:
    """Train one feature set on one fold with the chapter's protocol; its test RMSE and history."""
    train, test = (ml.with_side_features(part) for part in ml.split(fold))
    fm, encoder, history = fit_with_validation(train, FEATURE_SETS[name], **hyper)
    y_hat = fm.predict(encoder.transform(test))
    return {"rmse": float(np.sqrt(np.mean((y_hat - test["rating"].to_numpy(float)) ** 2))),
            "best_epoch": int(history.attrs["best_epoch"]),
            "loss": history["loss"].tolist(), "val_rmse": history["val_rmse"].tolist()}


def main() -> None:
    ml = fmlib.load_movielens("ml-100k")
    hyper = hyper_parameters()
    results = {}
    for name in FEATURE_SETS:
        for fold in FOLDS:
            start = time.perf_counter()
            results[f"{name}|{fold}"] = run(ml, fold, name, hyper[name])
            print(f"{name:<26} {fold}  test RMSE {results[f'{name}|{fold}']['rmse']:.4f}  "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps({"hyper": hyper, "folds": FOLDS, "runs": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
