r"""Training data as a set of TFRecord shards, and which worker reads which.

A data set too large for one machine is kept as :math:`S` files (shards) with a small
``manifest.json`` beside them (the number of examples in each), so that no process has to
read every shard to count the examples. :func:`write_shards` writes them from any source
of ``(X, y)`` chunks, e.g. :func:`fmlib.stream_ratings`' stream, one chunk in
memory at a time; rows go to the shards in turn, chunk by chunk.

Who reads what:

* synchronous workers (``MultiWorkerMirroredStrategy``): worker :math:`r` of :math:`W`
  reads shards :math:`r, r + W, r + 2W, \dots` (:func:`worker_files`);
* parameter servers: every shard is one unit of work that the coordinator hands to
  whichever worker is free, in a new order every epoch (:func:`epoch_order`); the work of
  a lost worker goes to another.

Either way each example is read once per epoch. Chapter "Training on several machines".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmlib.distributed.records import ENCODE_ROWS, MANIFEST, encode_examples
from fmlib.fileio import write_text
from fmlib.validation import check_int


def shard_names(prefix: str, n_shards: int) -> list[str]:
    """``prefix-00000-of-00004.tfrecord``, ...: the file names of ``n_shards`` shards."""
    return [f"{prefix}-{s:05d}-of-{n_shards:05d}.tfrecord" for s in range(n_shards)]


def write_shards(chunks, folder, n_shards: int, *, prefix: str = "train") -> list[str]:
    r"""Write ``(X, y)`` chunks to ``n_shards`` TFRecord files in ``folder``, and the manifest.

    Args:
        chunks: an iterable of ``(X, y)`` (CSR or dense ``X``, all with the same columns),
            e.g. ``stream_ratings(...).chunks()``; one is held at a time.
        folder: where the shards and ``manifest.json`` go (created if missing).
        n_shards: number of files :math:`S`; row :math:`j` of the whole stream goes to shard
            :math:`j \bmod S`, so the shards differ in size by at most one example.
        prefix: the files' name prefix.

    Returns:
        The paths of the shards (pass them, or a glob of them, to the trainers).
    """
    import tensorflow as tf

    n_shards = check_int(n_shards, "n_shards")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = shard_names(prefix, n_shards)
    counts, n_features, seen = [0] * n_shards, None, 0
    writers = [tf.io.TFRecordWriter(str(folder / name)) for name in names]
    try:
        for X, y in chunks:
            X = sp.csr_matrix(X, dtype=np.float32)
            y = np.asarray(y, np.float32)
            if n_features is not None and X.shape[1] != n_features:
                raise ValueError(
                    f"every chunk must have {n_features} columns; got {X.shape[1]}."
                )
            n_features = X.shape[1]
            for start in range(0, X.shape[0], ENCODE_ROWS):
                block = slice(start, start + ENCODE_ROWS)
                records = encode_examples(X[block], y[block]).numpy()
                for j, record in enumerate(records, seen):
                    writers[j % n_shards].write(record)
                    counts[j % n_shards] += 1
                seen += len(records)
    finally:
        for writer in writers:
            writer.close()
    manifest = {"n_features": n_features, "files": dict(zip(names, counts))}
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
    return [str(folder / name) for name in names]


def read_manifest(folder) -> dict:
    """``{"n_features": n, "files": {name: examples}}`` of the shards in ``folder``."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ValueError(f"`folder`: no {MANIFEST} in {os.fspath(folder)!r}.")
    return json.loads(path.read_text())


def worker_files(files: list[str], workers: int, index: int) -> list[str]:
    """The shards synchronous worker ``index`` of ``workers`` reads: every ``workers``-th."""
    return list(files[index::workers])


def epoch_order(n_files: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which the coordinator schedules the shards in ``epoch`` (from 0): a
    permutation drawn from ``(seed, epoch)``, the same after a restart."""
    return np.random.default_rng([seed, epoch]).permutation(n_files)
