"""What the package layout and the defaults cost: import, estimators against fit, default path.

Three measurements (issue "fmlib laid out like the book"):

* ``import``: wall seconds and peak resident memory of ``import fmlib`` alone, and of
  ``import fmlib`` followed by the first use of ``fmlib.FactorizationMachine`` and of every
  public name, each in a fresh interpreter (the median of ``--repeats`` runs).
* ``als``: ``FMRegressor(solver="als")`` against ``fmlib.fit(solver="als")`` on the same
  rows (MovieLens u1, user and item one-hot, k = 8, 20 sweeps), interleaved, as a ratio.
* ``default``: seconds per epoch of ``fmlib.fit`` on u1 user + item (k = 10, batch 4096,
  Adam) with the default (row-sparse for sparse input) and with ``updates="dense"``, and
  myFM's Gibbs sweep on the same matrix when myFM is installed; the test RMSE of each
  protocol of the chapter "MovieLens 100k" (early stopping on a tenth of the training rows)
  with the old and the new default.

    python benchmarks/bench_layout.py            # about two minutes
    python benchmarks/bench_layout.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar
OUT = common.RESULTS / "layout.json"

IMPORTS = {
    "import fmlib": "import fmlib",
    "+ FactorizationMachine": "import fmlib; fmlib.FactorizationMachine",
    "+ every public name": "import fmlib; [getattr(fmlib, n) for n in fmlib.__all__]",
}
PROBE = (
    "import resource, sys, time; t = time.perf_counter(); {code}; "
    "print(time.perf_counter() - t, common_peak())"
)


def import_costs(repeats: int) -> dict:
    """Median wall seconds and peak RSS (MiB, VmHWM) of each import in a fresh interpreter."""
    peak = (
        "def common_peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
    )
    out = {}
    for label, code in IMPORTS.items():
        runs = []
        for _ in range(repeats):
            script = peak + PROBE.format(code=code)
            text = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                check=True,
                cwd=common.ROOT,
            ).stdout.split()
            runs.append((float(text[0]), float(text[1])))
        out[label] = {
            "seconds": statistics.median(r[0] for r in runs),
            "peak_rss_mib": statistics.median(r[1] for r in runs),
        }
        print(
            f"{label:24s} {out[label]['seconds']:7.2f} s {out[label]['peak_rss_mib']:7.0f} MiB",
            flush=True,
        )
    return out


def als_ratio(X, y, repeats: int, sweeps: int) -> dict:
    """Seconds of FMRegressor(solver='als') and of fit(solver='als'), interleaved."""
    import fmlib

    est_s, fit_s = [], []
    fm = fmlib.FactorizationMachine(
        X.shape[1], 8, init_std=0.1, seed=0, dtype="float64"
    )
    fmlib.fit(fm, X, y, solver="als", num_epochs=1)  # compiles the numba kernels once
    for _ in range(repeats):
        t = time.perf_counter()
        fmlib.FMRegressor(
            k=8,
            solver="als",
            num_epochs=sweeps,
            lambda_w=10,
            lambda_v=10,
            random_state=0,
        ).fit(X, y)
        est_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        fm = fmlib.FactorizationMachine(
            X.shape[1], 8, init_std=0.1, seed=0, dtype="float64"
        )
        fmlib.fit(fm, X, y, solver="als", num_epochs=sweeps, lambda_w=10, lambda_v=10)
        fit_s.append(time.perf_counter() - t)
    ratio = statistics.median(e / f for e, f in zip(est_s, fit_s))
    print(
        f"ALS {sweeps} sweeps: estimator {statistics.median(est_s):.2f} s, fit "
        f"{statistics.median(fit_s):.2f} s, ratio {ratio:.2f}",
        flush=True,
    )
    return {"estimator_seconds": est_s, "fit_seconds": fit_s, "ratio_median": ratio}


def default_path(X, y, X_test, y_test, epochs: int, smoke: bool) -> dict:
    """Seconds per epoch of fit's default and of updates='dense' (and myFM's sweep)."""
    import numpy as np

    import fmlib

    out = {}
    for label, kwargs in (("default", {}), ("dense", {"updates": "dense"})):
        fm = fmlib.FactorizationMachine(X.shape[1], 10, seed=0)
        fm.w0.assign(float(np.mean(y)))
        history = fmlib.fit(
            fm, X, y, num_epochs=epochs, batch_size=4096, lr=0.01, seed=0, **kwargs
        )
        seconds = history.attrs["epoch_seconds"][1:] or history.attrs["epoch_seconds"]
        out[label] = {
            "seconds_per_epoch": statistics.median(seconds),
            "ratings_per_second": X.shape[0] / statistics.median(seconds),
        }
    myfm = common.peer("myfm", smoke)
    if myfm is not None:
        sweeps = 5 if smoke else 50
        t = time.perf_counter()
        myfm.MyFMRegressor(rank=10, random_seed=0).fit(
            X, y, n_iter=sweeps, n_kept_samples=1
        )
        per = (time.perf_counter() - t) / sweeps
        out["myfm_gibbs"] = {
            "seconds_per_epoch": per,
            "ratings_per_second": X.shape[0] / per,
        }
    for label, value in out.items():
        print(f"{label:12s} {value['seconds_per_epoch']:.3f} s per epoch", flush=True)
    return out


def protocol_rmse(train, test, smoke: bool) -> dict:
    """The chapter "MovieLens 100k"'s protocol (user + item) with each default."""
    import numpy as np

    import fmlib

    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    val = np.random.default_rng(0).random(len(train)) < 0.1
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    X_fit, X_val = enc.fit_transform(train[~val]), enc.transform(train[val])
    X_test = enc.transform(test)
    out = {}
    for label, kwargs in (
        ("dense (old default)", {"updates": "dense"}),
        ("default (row-sparse, present)", {}),
    ):
        fm = fmlib.FactorizationMachine(enc.n_features_, 8, seed=0)
        fm.w0.assign(float(y[~val].mean()))
        history = fmlib.fit(
            fm,
            X_fit,
            y[~val],
            num_epochs=3 if smoke else 40,
            batch_size=4096,
            lr=0.01,
            lambda_v=2e-4,
            validation_data=(X_val, y[val]),
            patience=2,
            seed=0,
            **kwargs,
        )
        out[label] = {
            "test_rmse": common.rmse(fm.predict(X_test), y_test, clip=(1, 5)),
            "epochs": len(history),
        }
        print(f"{label:30s} test RMSE {out[label]['test_rmse']:.4f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    repeats = 1 if args.smoke else args.repeats

    imports = import_costs(repeats)
    import fmlib

    train, test = common.fold_frames(
        common.movielens(), "u1", side=False, smoke=args.smoke
    )
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    X, X_test = enc.fit_transform(train), enc.transform(test)
    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    als = als_ratio(
        X, y, repeats=1 if args.smoke else 3, sweeps=2 if args.smoke else 20
    )
    default = default_path(
        X, y, X_test, y_test, epochs=2 if args.smoke else 6, smoke=args.smoke
    )
    rmse = protocol_rmse(train, test, args.smoke)
    common.save_results(
        out,
        {"import": imports, "als": als, "default_path": default, "protocol_rmse": rmse},
        record,
    )


if __name__ == "__main__":
    main()
