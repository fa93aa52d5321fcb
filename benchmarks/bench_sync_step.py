"""Benchmark: the synchronous step's time at n = 10^5 and 10^7 features, and where it went.

``fmlib.distributed.optimizers.make_sync_step`` (k = 8, a global batch of 1,024 one-hot
[user | item] examples over 50,000 users and 50,000 items, the ids spread over n columns:
the same batch at every n), with SGD and Adam (penalty on the rows present), under two
strategies, each in its own process: a one-worker ``MultiWorkerMirroredStrategy`` and a
two-replica ``MirroredStrategy`` over two logical CPUs. Four versions of the step, built
by swapping the two row helpers of the library at trace time:

* ``before``: the table read whole (``tf.nn.embedding_lookup`` on the mirrored variable,
  which reads the variable then gathers) and the mirrored variable's own ``scatter_sub`` /
  ``scatter_update`` (which return the updated table: a read of every copy);
* ``gather rows only``: the rows read by a sparse gather, the writes as before;
* ``writes only``: the table read whole, the writes through ``extended.update(...,
  group=False)``, which reads nothing back;
* ``after``: both (the library's ``gather_rows`` and ``scatter_rows``).

Once a resource variable has been updated by rows (a sparse access), TensorFlow copies its
buffer on every dense read, so each full read costs O(n k) per step. Both sizes of a
strategy and optimizer run in the same process, their steps interleaved; the median over
the timed steps (after 3 untimed ones) is reported, with the ratio 10^7 / 10^5.

    python benchmarks/bench_sync_step.py              # ~5 min on the shared 2-core machine
    python benchmarks/bench_sync_step.py --smoke      # seconds: n = 10^3 and 10^4, 2 steps

Writes benchmarks/results/sync_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402

OUT = common.RESULTS / "sync_step.json"
K, BATCH, VOCABULARY = 8, 1024, 100_000
STRATEGIES = ("multi-worker, 1 worker", "mirrored, 2 CPUs")
OPTIMIZERS = ("sgd", "adam")
VERSIONS = ("before", "gather rows only", "writes only", "after")


def helpers(version: str, gather_rows, scatter_rows):
    """``(gather, scatter)`` for a version of the step: the library's ``gather_rows`` and
    ``scatter_rows``, or the calls they replaced."""
    import tensorflow as tf

    def gather_whole(table, ids):
        return tf.nn.embedding_lookup(table, ids)

    def scatter_returning(variable, method, rows):
        getattr(variable, method)(rows)

    rows_read = version in ("gather rows only", "after")
    writes_only = version in ("writes only", "after")
    return (
        gather_rows if rows_read else gather_whole,
        scatter_rows if writes_only else scatter_returning,
    )


def build_step(strategy, n: int, optimizer: str):
    """A model of ``n`` features and its (not yet traced) step."""
    import fmlib
    from fmlib.distributed import optimizers

    with strategy.scope():
        fm = fmlib.FactorizationMachine(n, k=K, init_std=0.01, seed=0)
    opt = optimizers.RowOptimizer(strategy, fm, optimizer, 0.01, "present", 1e-4, 1e-4)
    step = optimizers.make_sync_step(strategy, opt, "regression", BATCH)
    return fm, step


def batches(strategy, n: int, seed: int):
    """One global batch as per-replica values: ids over a vocabulary of 100,000 (or n,
    if smaller) spread over n columns."""
    import tensorflow as tf

    from fmlib.distributed.lookup import Batch

    vocabulary = min(VOCABULARY, n)
    stride, half = n // vocabulary, vocabulary // 2
    replicas = strategy.num_replicas_in_sync
    local = BATCH // replicas
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(replicas):
        users = rng.integers(0, half, local)
        items = half + rng.integers(0, half, local)
        parts.append(
            Batch(
                rows=tf.constant(np.repeat(np.arange(local), 2), tf.int64),
                ids=tf.constant(np.c_[users, items].ravel() * stride, tf.int64),
                x=tf.ones(2 * local),
                y=tf.constant(rng.normal(3.5, 1.0, local), tf.float32),
            )
        )
    return strategy.experimental_distribute_values_from_function(
        lambda context: parts[context.replica_id_in_sync_group]
    )


def full_reads(step, batch, tables) -> int:
    """The ``ReadVariableOp`` of the traced step with the shape of w or V (or a slot)."""
    shapes = {tuple(t.shape) for t in tables}
    graph = step.get_concrete_function(batch).graph
    return sum(
        op.type == "ReadVariableOp" and tuple(op.outputs[0].shape) in shapes
        for op in graph.get_operations()
    )


def measure(strategy_name: str, ns: list[int], steps: int) -> list[dict]:
    """In this process: every optimizer and version at both sizes, steps interleaved."""
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from fmlib.distributed import lookup, optimizers

    if strategy_name.startswith("multi-worker"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    library = (lookup.gather_rows, optimizers.scatter_rows)
    rows = []
    for optimizer in OPTIMIZERS:
        for version in VERSIONS:
            gather, scatter = helpers(version, *library)
            lookup.gather_rows, optimizers.gather_rows = gather, gather
            optimizers.scatter_rows = scatter
            runs = {}
            for n in ns:
                fm, step = build_step(strategy, n, optimizer)
                batch = batches(strategy, n, seed=0)
                tables = [fm.w, fm.V]
                reads = full_reads(step, batch, tables)
                for _ in range(3):  # traced and warmed
                    step(batch)
                runs[n] = (step, batch, [], reads)
            for _ in range(steps):
                for n, (step, batch, seconds, _) in runs.items():
                    started = time.perf_counter()
                    float(step(batch))
                    seconds.append(time.perf_counter() - started)
            small, large = min(ns), max(ns)
            medians = {n: statistics.median(runs[n][2]) for n in ns}
            row = {
                "strategy": strategy_name,
                "optimizer": optimizer,
                "version": version,
                "full_reads_of_tables": {str(n): runs[n][3] for n in ns},
                "seconds_per_step": {str(n): medians[n] for n in ns},
                "ratio_large_small": medians[large] / medians[small],
            }
            print(
                f"{strategy_name:<24} {optimizer:<5} {version:<17} "
                + " ".join(f"n={n:.0e}: {medians[n]:.4f} s" for n in ns)
                + f"  ratio {row['ratio_large_small']:.1f}"
                + f"  full reads {runs[large][3]}",
                file=sys.stderr,
            )
            rows.append(row)
            del runs
            lookup.gather_rows = optimizers.gather_rows = library[0]
            optimizers.scatter_rows = library[1]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--ns", default=None, help=argparse.SUPPRESS)
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    if args.strategy:  # a child: one strategy, rows as JSON on stdout
        ns = [int(float(n)) for n in args.ns.split(",")]
        print(json.dumps(measure(args.strategy, ns, args.steps)))
        return
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, OUT)
    ns, steps = ([10**3, 10**4], 2) if args.smoke else ([10**5, 10**7], args.steps)
    rows = []
    for (
        name
    ) in STRATEGIES:  # each strategy in a fresh process (devices are per process)
        done = subprocess.run(
            [sys.executable, __file__, "--strategy", name, "--steps", str(steps)]
            + ["--ns", ",".join(map(str, ns))],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        rows += json.loads(done.stdout.splitlines()[-1])
    common.save_results(
        out,
        {
            "settings": {"k": K, "global_batch": BATCH, "ns": ns, "timed_steps": steps},
            "rows": rows,
        },
        record,
        replace=True,
    )


if __name__ == "__main__":
    main()
