r"""Training data as TFRecord files: one ``tf.train.Example`` per rating.

Each example stores the non-zeros of one row :math:`\mathbf x` (``ids``: the columns,
``values``: :math:`x_i`) and its target ``y``: the libSVM idea in TensorFlow's own file
format, which ``tf.data`` reads on every worker, splits into shards and streams without
loading a whole file. Chapter "Training on several machines".
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.distributed.lookup import Batch
from fmlib.fileio import atomic_path
from fmlib.validation import as_host_matrix, as_targets

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
        for r in range(Xh.shape[0]):
            a, b = Xh.indptr[r], Xh.indptr[r + 1]
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "ids": tf.train.Feature(
                            int64_list=tf.train.Int64List(value=Xh.indices[a:b])
                        ),
                        "values": tf.train.Feature(
                            float_list=tf.train.FloatList(value=Xh.data[a:b])
                        ),
                        "y": tf.train.Feature(
                            float_list=tf.train.FloatList(value=[yh[r]])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())
    return Xh.shape[0]


def parse_batch(serialized: tf.Tensor) -> Batch:
    """A :class:`~fmlib.distributed.lookup.Batch` from a batch of serialized examples."""
    parsed = tf.io.parse_example(serialized, FEATURES)
    ids, values = parsed["ids"], parsed["values"]
    return Batch(rows=ids.indices[:, 0], ids=ids.values, x=values.values, y=parsed["y"])


def count_examples(files) -> int:
    """The number of examples in TFRecord ``files`` (one pass over them)."""
    return int(tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda n, _: n + 1))


def read_batches(files, batch_size: int) -> tf.data.Dataset:
    """Parsed batches of ``batch_size`` examples of ``files`` in file order (for evaluation)."""
    return tf.data.TFRecordDataset(files).batch(batch_size).map(parse_batch)


def check_files(files, name: str) -> list[str]:
    """``files`` (a path or a list of paths) as a list of existing paths, else a ValueError."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not isinstance(files, (list, tuple)) or not files:
        raise ValueError(
            f"`{name}` must be a path or a non-empty list of paths; got {files!r}."
        )
    paths = [os.fspath(f) for f in files]
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
