r"""Training data as TFRecord files: one ``tf.train.Example`` per rating.

Each example stores the non-zeros of one row :math:`\mathbf x` (``ids``: the columns,
``values``: :math:`x_i`) and its target ``y``: the libSVM idea in TensorFlow's own file
format, which ``tf.data`` reads on every worker, splits into shards and streams without
loading a whole file. Chapter "Training on several machines".
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.distributed.lookup import Batch
from fmlib.fileio import atomic_path
from fmlib.validation import as_host_matrix, as_targets

MANIFEST = "manifest.json"  # {"n_features": n, "files": {name: examples}}
ENCODE_ROWS = 1 << 16  # rows serialized per encode_examples call
FEATURES = {
    "ids": tf.io.VarLenFeature(tf.int64),
    "values": tf.io.VarLenFeature(tf.float32),
    "y": tf.io.FixedLenFeature([], tf.float32),
}


def write_examples(path, X, y) -> int:
    """Write the rows of ``X`` (``(N, n)``, dense or ``scipy.sparse``) and targets ``y`` to a
    TFRecord file at ``path``, one example per row. Returns the number of rows written.

    Raises:
        ValueError: ``X`` or ``y`` is not a finite numeric matrix / vector of matching length.
    """
    Xh = sp.csr_matrix(as_host_matrix(X, None, tf.float32, name="X"))
    yh = as_targets(y, Xh.shape[0], name="y").astype(np.float32)
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for start in range(0, Xh.shape[0], ENCODE_ROWS):
            rows = slice(start, start + ENCODE_ROWS)
            for record in encode_examples(Xh[rows], yh[rows]).numpy():
                writer.write(record)
    return Xh.shape[0]


def _encode(fields: list, message: str, names: list[str]) -> tf.Tensor:
    """One serialized ``message`` per row: ``fields`` are ``(values, sizes)`` pairs of shapes
    ``(N, m)`` and ``(N,)``, one per name (``tf.io.encode_proto``, vectorised in C++)."""
    sizes = tf.stack([tf.cast(n, tf.int32) for _, n in fields], axis=1)
    return tf.io.encode_proto(sizes, [v for v, _ in fields], names, message)


def encode_examples(X: sp.csr_matrix, y: np.ndarray) -> tf.Tensor:
    """The serialized ``tf.train.Example`` of every row of CSR ``X`` (float32 values) and
    ``y``: what :func:`write_examples` writes, built for a whole block of rows at once."""
    N = X.shape[0]
    nnz, one = np.diff(X.indptr), np.ones(N, np.int32)
    ids = tf.RaggedTensor.from_row_splits(X.indices.astype(np.int64), X.indptr)
    vals = tf.RaggedTensor.from_row_splits(X.data.astype(np.float32), X.indptr)
    lists = {
        "ids": (
            "int64_list",
            _encode([(ids.to_tensor(), nnz)], "tensorflow.Int64List", ["value"]),
        ),
        "values": (
            "float_list",
            _encode([(vals.to_tensor(), nnz)], "tensorflow.FloatList", ["value"]),
        ),
        "y": (
            "float_list",
            _encode([(y[:, None], one)], "tensorflow.FloatList", ["value"]),
        ),
    }
    entries = []
    for key, (kind, serialized) in lists.items():
        feature = _encode([(serialized[:, None], one)], "tensorflow.Feature", [kind])
        name = tf.fill([N, 1], key)
        entries.append(
            _encode(
                [(name, one), (feature[:, None], one)],
                "tensorflow.Features.FeatureEntry",
                ["key", "value"],
            )
        )
    features = _encode(
        [(tf.stack(entries, axis=1), 3 * one)], "tensorflow.Features", ["feature"]
    )
    return _encode([(features[:, None], one)], "tensorflow.Example", ["features"])


def parse_batch(serialized: tf.Tensor) -> Batch:
    """A :class:`~fmlib.distributed.lookup.Batch` from a batch of serialized examples."""
    parsed = tf.io.parse_example(serialized, FEATURES)
    ids, values = parsed["ids"], parsed["values"]
    return Batch(rows=ids.indices[:, 0], ids=ids.values, x=values.values, y=parsed["y"])


def manifest_counts(files) -> dict[str, int]:
    """The example counts that ``MANIFEST`` files beside ``files`` record (written by
    :func:`fmlib.distributed.write_shards`): ``{path: count}`` for the files they list."""
    counts = {}
    for folder in sorted({os.path.dirname(os.path.abspath(f)) for f in files}):
        manifest = os.path.join(folder, MANIFEST)
        if os.path.exists(manifest):
            with open(manifest) as f:
                listed = json.load(f)["files"]
            counts.update({os.path.join(folder, n): c for n, c in listed.items()})
    return {
        f: counts[os.path.abspath(f)] for f in files if os.path.abspath(f) in counts
    }


def file_counts(files) -> list[int]:
    """The number of examples in each of TFRecord ``files``: from the manifest beside them
    when there is one, else one pass over the files it does not list."""
    known = manifest_counts(files)
    return [
        known[f]
        if f in known
        else int(tf.data.TFRecordDataset(f).reduce(np.int64(0), lambda n, _: n + 1))
        for f in files
    ]


def count_examples(files) -> int:
    """The number of examples in TFRecord ``files`` (:func:`file_counts`, summed)."""
    return sum(file_counts(files))


def read_batches(files, batch_size: int) -> tf.data.Dataset:
    """Parsed batches of ``batch_size`` examples of ``files`` in file order (for evaluation)."""
    return tf.data.TFRecordDataset(files).batch(batch_size).map(parse_batch)


def check_files(files, name: str) -> list[str]:
    """``files`` (a path, a glob such as ``"shards/train-*.tfrecord"``, or a list of them) as
    a list of existing paths (a glob: its matches, sorted), else a ValueError."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not isinstance(files, (list, tuple)) or not files:
        raise ValueError(
            f"`{name}` must be a path, a glob or a non-empty list of them; got {files!r}."
        )
    paths = []
    for f in map(os.fspath, files):
        matches = sorted(glob.glob(f)) if glob.has_magic(f) and "://" not in f else [f]
        if not matches:
            raise ValueError(f"`{name}`: no file matches {f!r}.")
        paths += matches
    missing = [p for p in paths if "://" not in p and not os.path.exists(p)]
    if missing:
        raise ValueError(f"`{name}`: no such file {missing[0]!r}.")
    return paths


def synthetic_split(
    n_users: int = 300,
    n_items: int = 200,
    n_ratings: int = 20000,
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
):
    """Ratings of :func:`fmlib.make_ratings` as one-hot ``[user | item]`` rows, split at random.

    Returns ``(X_train, y_train, X_test, y_test)`` with CSR matrices of
    ``n_users + n_items`` columns: the data of the distributed examples and tests.
    """
    from fmlib.data.synthetic import make_ratings

    ratings = make_ratings(n_users, n_items, n_ratings=n_ratings, seed=seed).ratings
    rows = np.repeat(np.arange(len(ratings)), 2)
    cols = np.c_[
        ratings["user"].to_numpy(), n_users + ratings["item"].to_numpy()
    ].ravel()
    X = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, cols)),
        shape=(len(ratings), n_users + n_items),
    )
    y = ratings["rating"].to_numpy(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]
