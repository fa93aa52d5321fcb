"""Benchmark: one training epoch on MovieLens 100k u1.base (k = 10) with three input layouts.

* dense one-hot: the original project's layout, a dense (80,000 x 2,625) matrix, fmlib.fit;
* sparse: the same matrix as scipy.sparse CSR, sliced into tf.SparseTensor batches, fmlib.fit;
* field ids: (user, item) ids through fmlib.FieldFMLayer, Keras model.fit.

All three run in one process, batch size 1024, Adam. The time per epoch is measured as
(time of a 4-epoch run - time of a 1-epoch run) / 3, which removes the one-off costs
(graph tracing, data conversion); the median over --repeat runs is reported, with rows per
second and the speed-up over dense one-hot. Needs MovieLens (FMLIB_DATA or a download).

    python benchmarks/bench_input.py [--repeat 3]

Writes benchmarks/results/input.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fmlib  # noqa: E402

K, BATCH = 10, 1024


def per_epoch(run) -> float:
    start = time.perf_counter()
    run(1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    run(4)
    four = time.perf_counter() - start
    return (four - one) / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    train, _ = fmlib.load_movielens("ml-100k").split("u1")
    encoder = fmlib.FeatureEncoder(categorical=["user", "item"])
    X_sparse = encoder.fit_transform(train).astype(np.float32)
    X_dense = X_sparse.toarray()
    y = train["rating"].to_numpy(np.float32)
    user_map, item_map = fmlib.IndexMap(train["user"]), fmlib.IndexMap(train["item"])
    ids = np.stack([user_map.index(train["user"]), item_map.index(train["item"])], axis=1)

    def run_fit(X):
        def run(epochs):
            fm = fmlib.FactorizationMachine(X.shape[1], k=K, seed=0)
            fmlib.fit(fm, X, y, num_epochs=epochs, batch_size=BATCH, lr=0.01, seed=0)
        return run

    def run_keras(epochs):
        model = fmlib.build_fm_model(vocab_sizes=[len(user_map), len(item_map)], k=K, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        model.fit(ids, y, batch_size=BATCH, epochs=epochs, verbose=0)

    layouts = {"dense one-hot (fmlib.fit)": run_fit(X_dense),
               "tf.SparseTensor from CSR (fmlib.fit)": run_fit(X_sparse),
               "field ids (FieldFMLayer, Keras fit)": run_keras}
    times = {name: [] for name in layouts}
    for _ in range(args.repeat):                 # interleaved, so machine noise hits all alike
        for name, run in layouts.items():
            times[name].append(per_epoch(run))
    dense = statistics.median(times["dense one-hot (fmlib.fit)"])
    rows = []
    print(f"u1.base: {len(y):,} rows, {X_sparse.shape[1]:,} features, k = {K}, batch {BATCH}")
    print(f"{'layout':<40} {'s/epoch':>8} {'rows/s':>10} {'vs dense':>9}")
    for name, values in times.items():
        t = statistics.median(values)
        rows.append({"layout": name, "seconds_per_epoch": t, "all": values,
                     "rows_per_second": len(y) / t, "speedup_vs_dense": dense / t})
        print(f"{name:<40} {t:>8.3f} {len(y) / t:>10,.0f} {dense / t:>8.1f}x")
    out = Path(__file__).parent / "results" / "input.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.machine(), "k": K, "batch_size": BATCH,
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
