"""Benchmark: a large synthetic run over sharded files on a local parameter-server cluster,
with checkpoints and one injected worker failure.

Issue "Training on several machines for real workloads", second target: 10^8 synthetic
ratings (``fmlib.data.stream.stream_ratings``: one-hot user + item, power-law activity)
written as TFRecord shards with a manifest (``fmlib.distributed.write_shards``) into a
scratch folder outside the repository, then trained by ``python -m fmlib.distributed``'s
launcher on 2 workers + 2 parameter servers + a chief, checkpointing every
``--checkpoint-every`` steps, with worker 1 killed (SIGKILL) once the first checkpoint
after ``--kill-step`` is written: the coordinator re-runs its shard on worker 0 and
training finishes. Records wall seconds (writing, training), examples per second, the
peak resident memory (``VmHWM``) of every process, and the test RMSE.

    python benchmarks/bench_distributed_scale.py                  # 10^8 ratings
    python benchmarks/bench_distributed_scale.py --ratings 1e7    # smaller
    python benchmarks/bench_distributed_scale.py --smoke          # 2e4 ratings, temp out

Writes benchmarks/results/distributed_scale.json (one entry per number of ratings). The shards are kept in ``--data-dir``
(reused when their manifest matches) unless ``--remove-data``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402

RESULTS = common.RESULTS / "distributed_scale.json"


def write_data(args, folder: Path) -> dict:
    """The training shards and a test shard in ``folder`` (reused when already written)."""
    from fmlib.data.stream import stream_ratings
    from fmlib.distributed import write_shards
    from fmlib.distributed.shards import read_manifest

    names = ("ratings", "users", "items", "shards", "test_ratings")
    key = {k: getattr(args, k) for k in names}
    stamp = folder / "settings.json"
    if stamp.exists() and json.loads(stamp.read_text()) == key:
        print(f"reusing the shards in {folder}", flush=True)
        return {"write_seconds": None, "reused": True}
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    # one stream: its last chunk is the test set (same planted FM, other draws)
    n_train, n_test = int(args.ratings), args.test_ratings
    if n_train % n_test:
        raise SystemExit("--ratings must be a multiple of --test-ratings")
    stream = stream_ratings(
        args.users, args.items, n_train + n_test, chunk_size=n_test, seed=0
    )
    last = stream.n_chunks - 1
    chunks = (stream.chunk(c) for c in range(last))
    write_shards(chunks, folder / "train", args.shards)
    write_shards([stream.chunk(last)], folder / "test", 1, prefix="test")
    seconds = time.perf_counter() - started
    stamp.write_text(json.dumps(key))
    n = read_manifest(folder / "train")
    print(f"wrote {sum(n['files'].values())} ratings in {seconds:.0f} s", flush=True)
    return {"write_seconds": seconds, "reused": False}


class PeakMemory:
    """Polls ``VmHWM`` (peak resident memory) of the processes the launcher announces."""

    def __init__(self):
        self.pids, self.peak, self.lines = {}, {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)
        m = re.match(r"started (\w+ \d+) on \S+ \(pid (\d+)\)", line)
        if m:
            self.pids[m.group(1)] = int(m.group(2))

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in list(self.pids.items()):
                try:
                    text = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                m = re.search(r"VmHWM:\s+(\d+) kB", text)
                if m:
                    self.peak[name] = max(
                        self.peak.get(name, 0), int(m.group(1)) / 1024
                    )

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {name: round(v, 1) for name, v in sorted(self.peak.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=float, default=1e8)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--test-ratings", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=2000)
    parser.add_argument("--kill-step", type=int, default=4000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--remove-data", action="store_true")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    common.add_smoke_arguments(parser, RESULTS)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out = common.results_path(args, RESULTS)
    if args.smoke:
        args.ratings, args.users, args.items, args.test_ratings = 2e4, 300, 200, 2000
        args.shards, args.batch_size, args.checkpoint_every, args.kill_step = (
            8,
            256,
            10,
            20,
        )
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / (
        f"fmlib-scale-{int(args.ratings)}"
    )
    free_gb = (
        shutil.disk_usage(data_dir.parent if data_dir.parent.exists() else "/").free
        / 1e9
    )
    print(f"{free_gb:.0f} GB free for {data_dir}", flush=True)
    written = write_data(args, data_dir)
    size_gb = sum(p.stat().st_size for p in data_dir.rglob("*.tfrecord")) / 1e9

    from fmlib.distributed import launch

    ckpt = Path(tempfile.mkdtemp(prefix="fmlib-scale-ckpt-"))
    run_dir = Path(tempfile.mkdtemp(prefix="fmlib-scale-run-"))
    task_args = [
        "--train", str(data_dir / "train" / "train-*.tfrecord"),
        "--test", str(data_dir / "test" / "test-00000-of-00001.tfrecord"),
        "--k", str(args.k), "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", "0",
        "--checkpoint-dir", str(ckpt), "--checkpoint-every", str(args.checkpoint_every),
    ]  # fmt: skip
    memory = PeakMemory()
    started = time.perf_counter()
    try:
        result = launch(
            task_args,
            run_dir,
            workers=args.workers,
            ps=args.ps,
            timeout=args.timeout,
            say=memory.say,
            kill=f"worker:1@step{args.kill_step}",
        )
    finally:
        peaks = memory.stop()
    wall = time.perf_counter() - started
    chief_log = (run_dir / "chief-0.log").read_text(errors="replace")
    checkpoints = [
        int(s) for s in re.findall(r"^checkpoint step=(\d+)", chief_log, re.M)
    ]
    faults = [line for line in memory.lines if "killed" in line]
    history = result["history"]
    n_train = int(args.ratings)
    train_seconds = sum(result["epoch_seconds"])
    row = {
        "ratings": n_train,
        "features": args.users + args.items,
        "shards": args.shards,
        "data_gb": round(size_gb, 2),
        "write_seconds": written["write_seconds"],
        "cluster": f"{args.workers} workers + {args.ps} ps + chief",
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "wall_seconds_incl_startup": wall,
        "examples_per_second": n_train * args.epochs / train_seconds,
        "test_rmse": history[-1]["val_rmse"],
        "checkpoints_at_step": checkpoints,
        "faults": faults,
        "peak_rss_mib": peaks,
    }
    print(json.dumps(row, indent=1))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir")}
    name = f"ratings_{n_train}"  # one entry per size; each says which run made it
    common.save_results(
        out,
        {name: {"settings": {**settings, "data_dir": str(data_dir)}, "run": row,
                "history": history}},
        record,
        part=name,
    )  # fmt: skip
    shutil.rmtree(ckpt, ignore_errors=True)
    if args.remove_data or args.smoke:
        shutil.rmtree(data_dir, ignore_errors=True)
    if not any(line.startswith("injected fault") for line in faults):
        raise SystemExit("the worker failure was not injected (training ended first)")


if __name__ == "__main__":
    main()
