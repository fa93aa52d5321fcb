"""Benchmark: one training epoch on MovieLens 100k u1.base (k = 10) with three input layouts.

* dense one-hot: the original project's layout, a dense (80,000 x 2,593) matrix, fmlib.fit;
* sparse: the same matrix as scipy.sparse CSR, sliced into tf.SparseTensor batches, fmlib.fit;
* field ids: (user, item) ids through fmlib.FieldFMLayer, Keras model.fit.

All three run in one process, Adam, at batch sizes 1024 and 4096. Each run trains 3 epochs and
the time per epoch is the median of epochs 2 and 3 (epoch 1 includes tracing the compiled step):
``fmlib.fit`` records epoch times in ``history.attrs["epoch_seconds"]``, Keras through a
callback. Runs are interleaved and repeated (--repeat); the median is reported, with rows per
second and the speed-up over dense one-hot at the same batch size. Needs MovieLens (FMLIB_DATA
or a download).

    python benchmarks/bench_input.py [--repeat 3]
    python benchmarks/bench_input.py --smoke   # seconds: 4,000 rows, 2 epochs; a temporary file

Writes benchmarks/results/input.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import fmlib  # noqa: E402

K, BATCHES, EPOCHS = 10, (1024, 4096), 3
OUT = common.RESULTS / "input.json"


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock time of every Keras epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    train, _ = common.fold_frames(
        common.movielens(), "u1", side=False, smoke=args.smoke
    )
    batches, epochs = ((512,), 2) if args.smoke else (BATCHES, EPOCHS)
    repeat = 1 if args.smoke else args.repeat
    encoder = fmlib.FeatureEncoder(categorical=["user", "item"])
    X_sparse = encoder.fit_transform(train).astype(np.float32)
    X_dense = X_sparse.toarray()
    y = train["rating"].to_numpy(np.float32)
    user_map, item_map = fmlib.IndexMap(train["user"]), fmlib.IndexMap(train["item"])
    ids = np.stack(
        [user_map.index(train["user"]), item_map.index(train["item"])], axis=1
    )

    def run_fit(X, batch):
        fm = fmlib.FactorizationMachine(X.shape[1], k=K, seed=0)
        history = fmlib.fit(
            fm, X, y, num_epochs=epochs, batch_size=batch, lr=0.01, seed=0
        )
        return statistics.median(history.attrs["epoch_seconds"][1:])

    def run_keras(batch):
        model = fmlib.build_fm_model(
            vocab_sizes=[len(user_map), len(item_map)], k=K, seed=0
        )
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        timer = EpochTimer()
        model.fit(ids, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer])
        return statistics.median(timer.seconds[1:])

    layouts = {
        "dense one-hot (fmlib.fit)": lambda b: run_fit(X_dense, b),
        "tf.SparseTensor from CSR (fmlib.fit)": lambda b: run_fit(X_sparse, b),
        "field ids (FieldFMLayer, Keras fit)": run_keras,
    }
    times = {(name, b): [] for b in batches for name in layouts}
    for _ in range(repeat):  # interleaved, so machine noise hits all alike
        for name, batch in times:
            times[(name, batch)].append(layouts[name](batch))
    rows = []
    print(f"u1.base: {len(y):,} rows, {X_sparse.shape[1]:,} features, k = {K}")
    print(f"{'layout':<40} {'batch':>6} {'s/epoch':>8} {'rows/s':>10} {'vs dense':>9}")
    for (name, batch), values in times.items():
        t = statistics.median(values)
        dense = statistics.median(times[("dense one-hot (fmlib.fit)", batch)])
        rows.append(
            {
                "layout": name,
                "batch_size": batch,
                "seconds_per_epoch": t,
                "all": values,
                "rows_per_second": len(y) / t,
                "speedup_vs_dense": dense / t,
            }
        )
        print(
            f"{name:<40} {batch:>6} {t:>8.3f} {len(y) / t:>10,.0f} {dense / t:>8.1f}x"
        )
    common.save_results(
        out,
        {"machine": record["machine"], "k": K, "epochs": epochs, "rows": rows},
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
