"""Benchmark: bytes a training step sends, by path, against the batch's distinct rows.

Issue "Training on several machines for real workloads" (measured communication). Three
ways to exchange the update of ``w`` (n,) and ``V`` (n, k) in one step:

* **dense all-reduce** of the gradient of ``w`` and ``V`` (n (k+1) floats; a ring
  all-reduce sends 2 (N-1)/N of it per worker);
* **row-sparse all-gather** of ``MultiWorkerMirroredStrategy`` (``fmlib.distributed.sync``):
  each replica's gradient is an ``IndexedSlices`` over its batch's distinct rows U_r; TF
  all-gathers the lengths, pads every replica's slices to the longest and all-gathers
  indices (int64) and values (float32), once for ``w`` and once for ``V``
  (``CollectiveReplicaLauncher.all_reduce_indexed_slices``);
* **parameter-server pull and push** (``fmlib.distributed.ps``): the worker sends the ids of
  U (int64, for the ``w`` and the ``V`` lookup), receives |U| (k+1) floats, and pushes
  |U| (k+1) floats with their ids (``scatter_sub`` on the ``ShardedVariable``).

Part "tensors" (one process): for one global batch per setting, the compiled functions the
steps use (``pull_rows``, ``row_gradients``) build the slices each replica hands to the
collective and the ids each parameter-server shard receives; their sizes are counted from
those tensors (shape x dtype size) and summed as the TensorFlow code above sends them. The
sweep: batch size, number of features n = 10^5 .. 10^8 (the same batch, its ids spread over
n rows; V is allocated where memory allows, otherwise the row-sparse sizes, which do not
read n, are taken from the 10^7 table and marked), and the popularity skew of the ids
(which sets the distinct rows of a batch). The dense all-reduce bytes are computed from the
shape n (k+1).

Part "wire" (real local clusters): ``fmlib.distributed.launch`` runs 1, 2 and 4 workers
synchronously and with one parameter server; a thread reads the kernel's TCP counters
(``ss -tin``: ``bytes_received`` per socket, each byte counted once at its receiver) of
every socket of the cluster's processes every 50 ms. A run of 1 epoch and one of 3 epochs
differ by 2 epochs of steps: their difference over the steps is the bytes per step on the
wire (gRPC framing included; start-up, variable creation and shutdown cancel).

Then a model on paper of steps per second on N machines from these bytes and the measured
step time (assumptions in the JSON's ``scaling_model.assumptions``).

    python benchmarks/bench_communication.py            # ~15 min on the shared 2-core machine
    python benchmarks/bench_communication.py --smoke    # seconds: tiny sweep, no cluster
    python benchmarks/bench_communication.py --model-only   # the model from the JSON

Prints tables and writes benchmarks/results/communication.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # retracing notes: every setting has its own shapes

from fmlib.distributed import launch, write_examples  # noqa: E402
from fmlib.distributed.lookup import Batch, pull_rows, row_gradients  # noqa: E402

RESULTS = common.RESULTS / "communication.json"
INT64, FLOAT32, INT32 = 8, 4, 4
VOCABULARY = 100_000  # users + items of the synthetic batches (half each)
WIRE_SKEW = 0.8  # the skew of the cluster runs' data and of the scaling model


# --- data ---------------------------------------------------------------------------------
def skewed_ratings(rows: int, skew: float, n: int, seed: int):
    """``(X, y)``: ``rows`` one-hot [user | item] examples, user and item ranks drawn with
    probability proportional to ``rank^-skew`` over 50,000 each (0: uniform), ids permuted
    at random and spread over ``n`` columns (id * (n // 100,000)): the same batch at every n."""
    rng = np.random.default_rng(seed)
    half = VOCABULARY // 2
    p = np.arange(1, half + 1, dtype=float) ** -skew
    p /= p.sum()
    users = rng.permutation(half)[rng.choice(half, rows, p=p)]
    items = half + rng.permutation(half)[rng.choice(half, rows, p=p)]
    stride = n // VOCABULARY
    cols = np.c_[users, items].ravel() * stride
    X = sp.csr_matrix(
        (np.ones(2 * rows, np.float32), (np.repeat(np.arange(rows), 2), cols)),
        shape=(rows, n),
    )
    y = rng.normal(3.5, 1.0, rows).astype(np.float32)
    return X, y


def as_batch(X, y) -> Batch:
    coo = X.tocoo()
    return Batch(
        rows=tf.constant(coo.row, tf.int64),
        ids=tf.constant(coo.col, tf.int64),
        x=tf.constant(coo.data, tf.float32),
        y=tf.constant(y, tf.float32),
    )


# --- part "tensors": sizes of the tensors a step exchanges --------------------------------
def replica_slices(w0, w, V, batch: Batch, scale: float):
    """The ``IndexedSlices`` a replica hands to ``strategy.reduce`` (as in ``make_sync_step``):
    ``(uid, g_w, g_V)``, computed by the compiled functions of the step."""
    p = pull_rows(w0, w, V, batch.ids)
    _, _, gw, gV = row_gradients(p, batch, scale)
    return p.uid, gw, gV


def nbytes(t) -> int:
    return int(np.prod(t.shape)) * t.dtype.size


def sync_bytes(per_replica, k: int) -> dict:
    """Bytes one worker sends per step in TF's all-reduce of ``IndexedSlices`` (ring
    all-gather of the lengths, then of indices and values padded to the longest replica),
    for ``w`` and ``V``, plus the ring all-reduce of the two scalars (sse, g0)."""
    N = len(per_replica)
    L = max(int(uid.shape[0]) for uid, _, _ in per_replica)
    uid, gw, gV = per_replica[0]
    idx_row = uid.dtype.size
    w_row, V_row = gw.dtype.size, gV.dtype.size * k
    assert nbytes(gV) == int(uid.shape[0]) * V_row  # the tensors' own sizes
    per_gather = INT32 + L * (idx_row + w_row) + INT32 + L * (idx_row + V_row)
    return {
        "padded_rows": L,
        "bytes": (N - 1) * per_gather + 2 * 2 * (N - 1) * FLOAT32,
    }


def ps_bytes(uid, gw, gV) -> dict:
    """Bytes of one worker step against one parameter server: pull = the ids of U (sent
    once: TensorFlow's graph partitioning sends a tensor once to each device that reads it,
    and the ``w`` and ``V`` lookups and both ``scatter_sub`` read the same ``uid``) and the
    rows of ``w`` and ``V`` received; push = the rows sent by ``scatter_sub``; ``w0`` both
    ways."""
    U = int(uid.shape[0])
    row = gw.dtype.size + gV.dtype.size * int(gV.shape[1])
    pull = U * uid.dtype.size + U * row + FLOAT32
    push = U * row + FLOAT32
    return {"pull_bytes": pull, "push_bytes": push, "bytes": pull + push}


def dense_bytes(n: int, k: int, N: int) -> float:
    """Ring all-reduce of the dense gradient of ``w`` and ``V``: 2 (N-1)/N n (k+1) floats
    sent per worker (computed from the shape)."""
    return 2 * (N - 1) / N * n * (k + 1) * FLOAT32


def memory_available() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0.0


def tensor_sweep(ns, batches, skews, k: int, workers: int, say=print):
    """One row per (n, batch, skew): distinct rows per worker batch and bytes per path."""
    rows, step_seconds = [], {}
    for n in ns:
        need = 2 * n * (k + 1) * FLOAT32  # w and V, with room to spare
        if need > memory_available() / 2:
            say(f"n = {n:.0e}: {need / 2**30:.1f} GiB would be needed; not allocated")
            continue
        w0 = tf.Variable(0.0)
        w = tf.Variable(tf.zeros([n]))
        # zeros: the sizes of the exchanged tensors do not depend on the values, and
        # at n = 10^8 a random initial value would need a second 3.2 GB copy
        V = tf.Variable(tf.zeros([n, k]))
        slices = tf.function(replica_slices)
        for B in batches:
            for skew in skews:
                X, y = skewed_ratings(B, skew, n, seed=B)
                halves = [
                    as_batch(X[r::workers], y[r::workers]) for r in range(workers)
                ]
                per_replica = [slices(w0, w, V, h, 1.0 / B) for h in halves]
                sync = sync_bytes(per_replica, k)
                # a parameter-server step: one worker's whole batch of B examples
                uid, gw, gV = slices(w0, w, V, as_batch(X, y), 1.0 / B)
                ps = ps_bytes(uid, gw, gV)
                U_r = [int(u.shape[0]) for u, _, _ in per_replica]
                rows.append(
                    {
                        "n": n,
                        "batch": B,
                        "skew": skew,
                        "distinct_per_replica": float(np.mean(U_r)),
                        "sync_padded_rows": sync["padded_rows"],
                        "sync_allgather_bytes": sync["bytes"],
                        "distinct_per_ps_step": int(uid.shape[0]),
                        "ps_pull_bytes": ps["pull_bytes"],
                        "ps_push_bytes": ps["push_bytes"],
                        "ps_bytes": ps["bytes"],
                        "dense_allreduce_bytes": dense_bytes(n, k, workers),
                    }
                )
                if n == ns[0] and skew == WIRE_SKEW:
                    step_seconds[B] = time_step(w0, w, V, as_batch(X, y), B)
        del w0, w, V, slices
        gc.collect()
    return pd.DataFrame(rows), step_seconds


def time_step(w0, w, V, batch: Batch, B: int, repeats: int = 30) -> float:
    """Median seconds of one compiled pull-gradient-push step on this process (one core's
    share of the shared machine): the compute a worker does per step."""

    @tf.function
    def step():
        p = pull_rows(w0, w, V, batch.ids)
        _, g0, gw, gV = row_gradients(p, batch, 1.0 / B)
        w.scatter_sub(tf.IndexedSlices(1e-9 * gw, p.uid))
        V.scatter_sub(tf.IndexedSlices(1e-9 * gV, p.uid))
        return g0

    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def loglog_slope(x, y) -> float:
    return float(
        np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0]
    )


# --- part "wire": TCP bytes of real local clusters ---------------------------------------
CONNECTION = re.compile(r"pid=(\d+),fd=(\d+)")


def children() -> list[int]:
    """Pids of this process's direct children (the launcher's task processes)."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == me:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def task_of(pid: int) -> str:
    """``"worker 0"``, ``"ps 0"``, ``"chief 0"`` from the process's ``TF_CONFIG``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(
                item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item
            )
        task = json.loads(env[b"TF_CONFIG"])["task"]
        return f"{task['type']} {task['index']}"
    except (OSError, KeyError, ValueError):
        return "?"


class TcpCounter(threading.Thread):
    """Polls ``ss -tinpH`` and keeps, per socket of the cluster's processes, the largest
    ``bytes_received`` seen (a cumulative kernel counter) and the task owning the socket."""

    def __init__(self, period: float = 0.05):
        super().__init__(daemon=True)
        self.period, self.stop_event = period, threading.Event()
        self.received: dict[tuple, int] = {}
        self.owner: dict[int, str] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            time.sleep(self.period)
        self.sample()

    def sample(self) -> None:
        pids = set(children())
        for pid in pids:
            if (
                self.owner.get(pid, "?") == "?"
            ):  # "?": not yet exec'd with its TF_CONFIG
                self.owner[pid] = task_of(pid)
        out = subprocess.run(
            ["ss", "-tinpH", "state", "established"],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        for head, info in zip(out[::2], out[1::2]):
            found = CONNECTION.search(head)
            if not found or int(found.group(1)) not in pids:
                continue
            got = re.search(r"bytes_received:(\d+)", info)
            parts = head.split()
            key = (int(found.group(1)), parts[-3], parts[-2])
            value = int(got.group(1)) if got else 0
            self.received[key] = max(self.received.get(key, 0), value)

    def totals(self) -> dict[str, int]:
        """Bytes received, summed by the receiving task's role (``worker``, ``ps``, ...)."""
        out: dict[str, int] = {}
        for (pid, _, _), value in self.received.items():
            role = self.owner.get(pid, "?").split()[0]
            out[role] = out.get(role, 0) + value
        return out


def wire_run(data: Path, n: int, k: int, workers: int, ps: int, epochs: int, B: int):
    """One local cluster run: (bytes received by role, the chief's result)."""
    counter = TcpCounter()
    counter.start()
    try:
        result = launch(
            [
                "--train",
                str(data),
                "--n-features",
                str(n),
                "--k",
                str(k),
                "--epochs",
                str(epochs),
                "--batch-size",
                str(B),
                "--lr",
                "0.05",
                "--seed",
                "0",
            ],  # fmt: skip
            tempfile.mkdtemp(prefix="fmlib-comm-"),
            workers=workers,
            ps=ps,
            timeout=900,
            say=lambda line: None,
        )
    finally:
        counter.stop_event.set()
        counter.join()
    return counter.totals(), result


def wire_point(data, n, k, workers, ps, B, train_rows, epochs=(1, 3), say=print):
    """Bytes per step on the wire from the difference of two runs, and step seconds."""
    (t1, _), (t3, r3) = (
        wire_run(data, n, k, workers, ps, e, B) for e in epochs
    )  # fmt: skip
    steps = (epochs[1] - epochs[0]) * (train_rows // B)
    diff = {
        role: (t3.get(role, 0) - t1.get(role, 0)) / steps for role in set(t1) | set(t3)
    }
    seconds = r3.get("epoch_seconds", [])
    row = {
        "path": "parameter server" if ps else "all-gather",
        "workers": workers,
        "ps": ps,
        "batch": B,
        "n": n,
        "steps_per_epoch": train_rows // B,
        # sync: bytes each worker receives = what each sends (ring); ps: per worker step
        "bytes_per_step": (
            diff.get("worker", 0.0) / workers
            if not ps
            else diff.get("ps", 0) + diff.get("worker", 0)
        ),
        "received_by_role_per_step": diff,
        "epoch_seconds": seconds,
        "rows_per_second": train_rows // B * B / float(np.mean(seconds))
        if seconds
        else None,
    }
    say(
        f"  {row['path']}, {workers} workers, batch {B}, n {n:.0e}: "
        f"{row['bytes_per_step']:.0f} B/step, {row['rows_per_second']:.0f} rows/s"
    )
    return row


# --- the model on paper -------------------------------------------------------------------
ASSUMPTIONS = {
    "bandwidth_bytes_per_s": 1.25e9,  # 10 Gbit/s per machine, full duplex
    "latency_s": 50e-6,  # one message between two machines
    "overlap": "none: a step computes, then communicates (synchronous); the parameter "
    "server's pull precedes and its push follows the compute",
    "servers": "P = ceil(N / 4) parameter servers, rows spread evenly; a server's link "
    "carries the pulls and pushes of N / P workers",
    "compute": "the measured one-process step time for the per-worker batch, unchanged "
    "with N (each worker has its own cores)",
}


def scaling_model(per_worker_batch, U, step_s, n, k, Ns, per_step) -> list[dict]:
    """Examples per second on N machines for each path (global batch N * per_worker_batch).

    ``per_step[path] = (bytes_per_row, bytes_per_message)``: the affine fit of the wire
    bytes of one worker step against its distinct rows (2 workers: one peer, one server).
    Row all-gather: a ring of N - 1 rounds, each sending the worker's rows to the next one
    (6 messages: lengths, indices, values for w and V). Parameter server: a pull and a push
    (two round trips); a server's link carries the rows of the N / P workers it serves.
    Dense all-reduce: a ring all-reduce, 2 (N - 1) messages of n (k + 1) / N floats."""
    beta, alpha = ASSUMPTIONS["bandwidth_bytes_per_s"], ASSUMPTIONS["latency_s"]
    out = []
    for N in Ns:
        b, a = per_step["all-gather"]
        gather = (N - 1) * (6 * alpha + (b * U + a) / beta)
        dense = 2 * (N - 1) * (alpha + n * (k + 1) * FLOAT32 / N / beta)
        P = -(-N // 4)
        b, a = per_step["parameter server"]
        ps = 4 * alpha + (b * U + a) * max(1.0, N / P) / beta
        for path, comm in (("dense all-reduce", dense), ("row all-gather", gather),
                           ("parameter server", ps)):  # fmt: skip
            out.append(
                {
                    "N": N,
                    "path": path,
                    "comm_s": comm,
                    "step_s": step_s + comm,
                    "examples_per_s": N * per_worker_batch / (step_s + comm),
                }
            )
    return out


def model_from(results: dict, k: int, per_worker_batch: int = 1024) -> dict:
    """The scaling model from a results file's measured tensors, wire fits and step time."""
    table = pd.DataFrame(results["tensors"])
    sub = table[
        (table["n"] == table["n"].min())
        & (table["batch"] == per_worker_batch)
        & (table["skew"] == WIRE_SKEW)
    ]
    U = float(sub["distinct_per_ps_step"].iloc[0])
    per_step = {
        path: (fit["bytes_per_row"], fit["intercept"])
        for path, fit in results["wire_fits"].items()
    }
    if len(per_step) < 2:  # no cluster runs (smoke): the tensor sizes, no overhead
        row = INT64 + FLOAT32 + INT64 + k * FLOAT32
        per_step = {"all-gather": (row, 0.0), "parameter server": (INT64 + 2 * (k + 1) * FLOAT32, 0.0)}  # fmt: skip
    step_s = results["step_seconds"][str(per_worker_batch)]
    Ns = [1, 2, 4, 8, 16, 32, 64]
    return {
        "assumptions": ASSUMPTIONS,
        "distinct_rows": U,
        "per_worker_batch": per_worker_batch,
        "n": 10**8,
        "k": k,
        "compute_s": step_s,
        "bytes_per_row_and_message": per_step,
        "rows": scaling_model(per_worker_batch, U, step_s, 10**8, k, Ns, per_step),
    }


def wire_sweep(ratings: int, k: int) -> list[dict]:
    """Bytes per step on the wire of local clusters: 1, 2, 4 workers at batch 1024, batch
    256 and 4096 at 2 workers, and n = 10^7 (the same batches) at 2 workers, each path."""
    wire = []
    n_wire = VOCABULARY
    X, y = skewed_ratings(ratings, WIRE_SKEW, n_wire, seed=1)
    data = Path(tempfile.mkdtemp(prefix="fmlib-comm-data-")) / "train.tfrecord"
    write_examples(data, X, y)
    print(f"wire: {X.shape[0]} ratings, skew 0.8, k={k}")
    for ps in (0, 1):
        for N in (1, 2, 4):
            wire.append(wire_point(data, n_wire, k, N, ps, 1024, X.shape[0]))
        for B in (256, 4096):
            wire.append(wire_point(data, n_wire, k, 2, ps, B, X.shape[0]))
    # the same batches with a 100x longer table: bytes must not change
    big = Path(data.parent) / "train_1e7.tfrecord"
    write_examples(big, *skewed_ratings(ratings, WIRE_SKEW, 10**7, seed=1))
    for ps in (0, 1):
        wire.append(wire_point(big, 10**7, k, 2, ps, 1024, X.shape[0]))
    for row in wire:  # the distinct rows of the same batches, in this process
        row["distinct_per_worker_step"] = mean_distinct(
            X, row["batch"] // row["workers"] if not row["ps"] else row["batch"]
        )
    return wire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--wire-ratings", type=int, default=60_000)
    parser.add_argument(
        "--model-only",
        action="store_true",
        help="only recompute the model on paper from the results file's measurements",
    )
    common.add_smoke_arguments(parser, RESULTS)
    args = parser.parse_args()
    if args.model_only:
        add_model(args.out or RESULTS, args.k)
        return
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, RESULTS)
    k, workers = args.k, 2
    if args.smoke:
        ns, batches, skews = [10**5, 10**6], [256, 1024], [0.0, WIRE_SKEW]
    else:
        ns = [10**5, 10**6, 10**7, 10**8]
        batches = [64, 256, 1024, 4096, 16384]
        skews = [0.0, 0.8, 1.2, 1.6]
    print(
        f"tensors: n {ns}, batches {batches}, skews {skews}, k={k}, {workers} replicas"
    )
    wire = [] if args.smoke else wire_sweep(args.wire_ratings, k)
    fits_wire = wire_fits(wire)
    table, step_seconds = tensor_sweep(ns, batches, skews, k, workers)
    print(
        table[
            [
                "n",
                "batch",
                "skew",
                "distinct_per_replica",
                "sync_allgather_bytes",
                "distinct_per_ps_step",
                "ps_bytes",
                "dense_allreduce_bytes",
            ]
        ].to_string(index=False)  # fmt: skip
    )
    fits = {}
    for n, part in table.groupby("n"):
        fits[int(n)] = {
            "all-gather slope": loglog_slope(
                part["distinct_per_replica"], part["sync_allgather_bytes"]
            ),
            "ps slope": loglog_slope(part["distinct_per_ps_step"], part["ps_bytes"]),
        }
    fits["all n"] = {
        "all-gather slope": loglog_slope(
            table["distinct_per_replica"], table["sync_allgather_bytes"]
        ),
        "ps slope": loglog_slope(table["distinct_per_ps_step"], table["ps_bytes"]),
    }
    # independence of n: the same batch gives the same bytes at every n
    same = table.groupby(["batch", "skew"])[["sync_allgather_bytes", "ps_bytes"]].agg(
        lambda s: float(s.max() / s.min())
    )
    fits["max/min bytes over n, same batch"] = {
        "all-gather": float(same["sync_allgather_bytes"].max()),
        "ps": float(same["ps_bytes"].max()),
    }
    print(pd.DataFrame(fits).T.round(4).to_string())

    common.save_results(
        out,
        {
            "settings": {
                "k": k,
                "replicas": workers,
                "ps_shards": 1,
                "vocabulary": VOCABULARY,
                "wire_ratings": args.wire_ratings,
            },
            "tensors": table.to_dict(orient="records"),
            "fits": fits,
            "step_seconds": {str(b): s for b, s in step_seconds.items()},
            "wire": wire,
            "wire_fits": fits_wire,
        },  # fmt: skip
        record,
        replace=True,
        part="measure",
    )
    add_model(out, args.k, args.smoke)


def add_model(out: Path, k: int, smoke: bool = False) -> None:
    """Compute the model on paper from the measured results in ``out`` and add it there."""
    record = common.provenance(smoke=smoke)
    results = common.read_results(out)
    model = model_from(results, k)
    frame = pd.DataFrame(model["rows"])
    print(frame.pivot(index="N", columns="path", values="examples_per_s").round(0))
    common.save_results(out, {"scaling_model": model}, record, part="model")


def wire_fits(wire: list[dict]) -> dict:
    """Per path, over the 2-worker runs at n = 10^5: the log-log slope of bytes per step
    against distinct rows per worker step, and the affine fit bytes = a + b |U|."""
    out = {}
    for path in ("all-gather", "parameter server"):
        runs = [
            r
            for r in wire
            if r["path"] == path and r["workers"] == 2 and r["n"] == VOCABULARY
        ]
        if len(runs) < 2:
            continue
        U = [r["distinct_per_worker_step"] for r in runs]
        y = [r["bytes_per_step"] for r in runs]
        b, a = np.polyfit(U, y, 1)
        out[path] = {"slope": loglog_slope(U, y), "bytes_per_row": b, "intercept": a}
    return out


def mean_distinct(X, B: int) -> float:
    """Mean distinct features of consecutive batches of ``B`` rows (the wire runs shuffle,
    so this is the expectation, not the same batches)."""
    counts = [
        np.unique(X[s : s + B].indices).size for s in range(0, X.shape[0] - B + 1, B)
    ]
    return float(np.mean(counts[:200]))


if __name__ == "__main__":
    main()
