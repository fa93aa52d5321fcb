"""Benchmark: minibatches grouped by user (fmlib.BlockChunks) on relation blocks.

MovieLens 100k, fold u1, the "+implicit" design of ``fmlib.movielens_design`` (user and
item relation blocks, no main block) and the same features flat (``design.to_csr()``).
An exact SGD/Adam step on the blocks reads the non-zeros of every distinct user and
movie of its batch; with independently shuffled ratings a small batch holds almost as
many users as ratings. ``shuffle=fmlib.BlockChunks("user", size)`` orders every epoch
in chunks of ``size`` ratings of one user, so a batch holds about batch / size users.
Two parts, each well under 10 minutes on the 2-core machine:

* ``--part speed``: seconds per Adam epoch (k = 10, lr = 0.01, lambda_w = lambda_v =
  1e-4, the settings of ``bench_relational_scale.py --part movielens``), with
  ``updates="sparse"`` and ``updates="dense"``, at batches 256, 1024 and 4096: flat with
  the independent shuffle (the flat step's cost does not depend on the order), and on
  the blocks with the independent shuffle and with chunks of 4, 16 and 64 ratings per
  user. One model per layout and ``updates``, reset before every run (so nothing is
  traced twice); three runs of four epochs per layout and shuffle, flat and blocks
  interleaved; the median of the epochs after the first of each run, in wall seconds
  and in CPU seconds of the process (``fit``'s epoch clock read through ``Clock``).
  Also, from the epoch orders alone: the mean distinct users and movies per batch and
  the non-zeros a step reads flat / on the blocks (the most a step can gain).
* ``--part accuracy``: what grouped batches cost in accuracy. The book's best Adam
  setting for this design (``benchmarks/bench_solvers.py``, "fmlib Adam": k = 8,
  lr = 0.01, lambda_v = 1e-4, lambda_w = 0, ``updates="dense"``, batch 4096; its early
  stopping chose epoch 7 on u1), trained on all of u1.base for 7 epochs at batches 256,
  1024 and 4096, with the independent shuffle and with chunks of 4, 16 and 64; three
  shuffle seeds each (the model's initialisation fixed), test RMSE on u1.test with the
  predictions clipped to [1, 5].

The machine is shared with other work: compare the ratios measured in one process, not
the absolute seconds.

    python benchmarks/bench_relational_chunks.py --part speed
    python benchmarks/bench_relational_chunks.py --part accuracy
    python benchmarks/bench_relational_chunks.py --smoke   # seconds: both parts on 4,000
                                                           # rows of u1, one batch size and
                                                           # chunk size; a temporary file

Writes benchmarks/results/relational_chunks.json (each part updates its own key and its
record in ``provenance_by_part``) and prints tables.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import common  # noqa: E402
import numpy as np  # noqa: E402

import fmlib  # noqa: E402

loop_module = importlib.import_module(
    "fmlib.learning.loop"
)  # fit's epoch loop reads its clock
OUT = common.RESULTS / "relational_chunks.json"
SEED = 0
BATCHES = (256, 1024, 4096)
SIZES = (4, 16, 64)  # ratings per chunk of one user
SPEED = dict(k=10, optimizer="adam", lr=0.01, lambda_w=1e-4, lambda_v=1e-4)
SPEED_EPOCHS = 4  # the first of every run is left out: the median of the others
REPEATS = 3  # runs per layout and shuffle, flat and blocks interleaved
ACCURACY = dict(k=8, optimizer="adam", lr=0.01, lambda_w=0.0, lambda_v=1e-4)
ACCURACY_EPOCHS = 7  # bench_solvers.py's early stopping on u1, "+implicit"
ACCURACY_SEEDS = (0, 1, 2)
SMOKE = False  # --smoke: 4,000 rows of u1 (common.fold_frames), the settings below


def smoke_settings() -> None:
    global SMOKE, BATCHES, SIZES, SPEED_EPOCHS, REPEATS, ACCURACY_EPOCHS, ACCURACY_SEEDS
    SMOKE, BATCHES, SIZES, SPEED_EPOCHS, REPEATS = True, (256,), (4,), 2, 1
    ACCURACY_EPOCHS, ACCURACY_SEEDS = 1, (0,)


def load():
    return common.u1_relational(smoke=SMOKE)


def rmse(y_hat, y) -> float:
    return common.rmse(y_hat, y, clip=(1, 5))


def shuffles():
    """(label, size or None, the ``shuffle`` argument): independent, then chunks."""
    return [("iid", None, True)] + [
        (f"chunks {s}", s, fmlib.BlockChunks("user", s)) for s in SIZES
    ]


def step_reads(design, order, batch_size: int) -> dict:
    """Mean distinct users and movies per batch of ``order``, and the non-zeros a step
    reads flat / on the blocks (the distinct rows' non-zeros), over one epoch."""
    sizes = [np.diff(b.data.indptr) for b in design.blocks]
    distinct, flat, blocks = [], 0, 0
    for s in range(0, design.n_rows, batch_size):
        at = order[s : s + batch_size]
        U = [np.unique(b.index[at]) for b in design.blocks]
        distinct.append([u.size for u in U])
        flat += sum(n[b.index[at]].sum() for n, b in zip(sizes, design.blocks))
        blocks += sum(n[u].sum() for n, u in zip(sizes, U))
    users, movies = np.mean(distinct, axis=0)
    return {
        "users_per_batch": float(users),
        "movies_per_batch": float(movies),
        "step_nnz_flat_over_blocks": float(flat / blocks),
    }


class Clock:
    """Stands in for ``time`` in ``fmlib.solvers.fit``, whose epoch loop reads
    ``perf_counter()`` once before and once after every epoch: returns the wall clock
    and keeps ``(wall, CPU of this process)`` at each call, so that an epoch has both
    (the CPU time counts what the process itself spends, less disturbed by other work
    on a shared machine; TensorFlow's threads add up in it)."""

    def __init__(self):
        self.stamps = []

    def perf_counter(self) -> float:
        self.stamps.append((time.perf_counter(), time.process_time()))
        return self.stamps[-1][0]

    def epochs(self) -> tuple[list[float], list[float]]:
        """(wall, CPU) seconds of every epoch recorded since the last call."""
        start, end = np.array(self.stamps[0::2]), np.array(self.stamps[1::2])
        self.stamps = []
        return list(end[:, 0] - start[:, 0]), list(end[:, 1] - start[:, 1])


def run_speed() -> dict:
    design, _, y, _ = load()
    flat = design.to_csr().astype(np.float32)
    k = SPEED["k"]
    fit_args = {key: v for key, v in SPEED.items() if key != "k"}
    rows = []
    clock = Clock()
    loop_module.time = clock  # fit's epoch loop: wall and CPU of every epoch
    for updates in ("sparse", "dense"):
        models = {}
        for name in ("flat", "blocks"):
            models[name] = fmlib.FactorizationMachine(
                design.n_features, k=k, seed=SEED, init_std=0.1
            )
        start = {name: fm.get_weights() for name, fm in models.items()}

        def epoch_seconds(name, X, batch, shuffle) -> list[tuple[float, float]]:
            """(wall, CPU) seconds of the epochs after the first (which may trace)."""
            fm = models[name]
            fm.set_weights(**start[name])
            fm.w0.assign(float(y.mean()))
            history = fmlib.fit(
                fm,
                X,
                y,
                num_epochs=SPEED_EPOCHS,
                batch_size=batch,
                updates=updates,
                shuffle=shuffle,
                seed=SEED,
                **fit_args,
            )
            wall, cpu = clock.epochs()
            assert np.allclose(wall, history.attrs["epoch_seconds"])
            return list(zip(wall, cpu))[1:]

        for batch in BATCHES:
            runs = [("flat", None, True)] + [
                (label, s, sh) for label, s, sh in shuffles()
            ]
            seconds = {label: [] for label, _, _ in runs}
            for _ in range(REPEATS):  # flat and blocks interleaved, REPEATS times
                for label, _, shuffle in runs:
                    X = flat if label == "flat" else design
                    name = "flat" if label == "flat" else "blocks"
                    seconds[label] += epoch_seconds(name, X, batch, shuffle)
            flat_wall, flat_cpu = np.median(seconds["flat"], axis=0)
            for label, size, shuffle in shuffles():
                blocks_wall, blocks_cpu = np.median(seconds[label], axis=0)
                rng = np.random.default_rng(SEED)
                order = (
                    rng.permutation(design.n_rows)
                    if size is None
                    else shuffle.permutation(design, rng)
                )
                row = {
                    "updates": updates,
                    "batch_size": batch,
                    "shuffle": label,
                    "chunk_size": size,
                    "flat_seconds": float(flat_wall),
                    "blocks_seconds": float(blocks_wall),
                    "flat_over_blocks": float(flat_wall / blocks_wall),
                    "flat_cpu_seconds": float(flat_cpu),
                    "blocks_cpu_seconds": float(blocks_cpu),
                    "flat_over_blocks_cpu": float(flat_cpu / blocks_cpu),
                    **step_reads(design, order, batch),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    loop_module.time = time
    return {
        "ratings": design.n_rows,
        "users": design.blocks[0].data.shape[0],
        "movies": design.blocks[1].data.shape[0],
        "nnz_flat_per_rating": design.flat_nnz / design.n_rows,
        "settings": SPEED,
        "epochs_per_run": SPEED_EPOCHS,
        "repeats": REPEATS,
        "rows": rows,
    }


def run_accuracy() -> dict:
    design, design_test, y, y_test = load()
    k = ACCURACY["k"]
    fit_args = {key: v for key, v in ACCURACY.items() if key != "k"}
    fm = fmlib.FactorizationMachine(design.n_features, k=k, seed=SEED)
    start = fm.get_weights()
    rows = []
    for batch in BATCHES:
        for label, size, shuffle in shuffles():
            for seed in ACCURACY_SEEDS:
                fm.set_weights(**start)
                fm.w0.assign(float(y.mean()))
                began = time.perf_counter()
                history = fmlib.fit(
                    fm,
                    design,
                    y,
                    num_epochs=ACCURACY_EPOCHS,
                    batch_size=batch,
                    shuffle=shuffle,
                    seed=seed,
                    **fit_args,
                )
                row = {
                    "batch_size": batch,
                    "shuffle": label,
                    "chunk_size": size,
                    "seed": seed,
                    "test_rmse": rmse(fm.predict(design_test), y_test),
                    "train_loss": float(history["loss"].iloc[-1]),
                    "seconds": time.perf_counter() - began,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return {
        "settings": ACCURACY,
        "epochs": ACCURACY_EPOCHS,
        "seeds": list(ACCURACY_SEEDS),
        "updates": "dense",
        "rows": rows,
    }


def print_speed(r: dict) -> None:
    print(
        f"\nu1 +implicit, {r['ratings']:,} ratings, {r['users']} users, "
        f"{r['movies']} movies, {r['nnz_flat_per_rating']:.0f} non-zeros per flat "
        "rating; Adam epoch, flat (iid) / blocks"
    )
    print(
        f"{'updates':>7} {'batch':>6} {'shuffle':>9} {'flat s':>7} {'blocks s':>8} "
        f"{'flat/blocks':>11} {'(CPU)':>6} {'users/b':>8} {'movies/b':>8} {'nnz flat/b':>10}"
    )
    for row in r["rows"]:
        print(
            f"{row['updates']:>7} {row['batch_size']:>6} {row['shuffle']:>9} "
            f"{row['flat_seconds']:>7.3f} {row['blocks_seconds']:>8.3f} "
            f"{row['flat_over_blocks']:>11.1f} {row['flat_over_blocks_cpu']:>6.1f} "
            f"{row['users_per_batch']:>8.1f} "
            f"{row['movies_per_batch']:>8.1f} "
            f"{row['step_nnz_flat_over_blocks']:>10.1f}"
        )


def print_accuracy(r: dict) -> None:
    import pandas as pd

    runs = pd.DataFrame(r["rows"])
    table = runs.groupby(["batch_size", "shuffle"], sort=False)["test_rmse"].agg(
        ["mean", "min", "max"]
    )
    print(
        f"\nu1 test RMSE (clipped) after {r['epochs']} epochs of Adam "
        f"{r['settings']}, seeds {r['seeds']}"
    )
    print(table.round(4).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "accuracy"))
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.part is None and not args.smoke:
        parser.error("give --part speed or --part accuracy")
    out = common.results_path(args, OUT)
    if args.smoke:
        smoke_settings()
    for part in (args.part,) if args.part else ("speed", "accuracy"):
        record = common.provenance(smoke=args.smoke)
        began = time.perf_counter()
        if part == "speed":
            result = run_speed()
            print_speed(result)
        else:
            result = run_accuracy()
            print_accuracy(result)
        result["seconds"] = time.perf_counter() - began
        common.save_results(out, {part: result}, record, part=part)


if __name__ == "__main__":
    main()
