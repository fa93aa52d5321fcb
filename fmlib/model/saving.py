r"""Saving a :class:`~fmlib.FactorizationMachine`: an ``.npz`` file for Python, a SavedModel for serving.

Two formats, for two uses (chapter "The Keras interface" compares them with Keras' ``.keras``):

* ``save`` / ``load`` (``fm.save(path)``, ``FactorizationMachine.load(path)``): the
  parameters :math:`w_0, \mathbf w, \mathbf V` as arrays in one ``.npz`` file, with a JSON
  header (``n_features``, ``k``, ``dtype``, ``pairwise``, ``task``, the format and fmlib
  versions). Nothing is pickled, so loading a file runs no code; any numpy reads it.
* ``export`` (``fm.export(path)``): a TensorFlow SavedModel directory whose
  ``serving_default`` signature maps a dense batch ``x`` of shape ``(batch, n)`` to
  ``{"y_hat": ŷ}`` (and ``"probability"``: σ(ŷ) for a classifier), and ``serving_sparse``
  takes the COO triple ``(indices, values, dense_shape)``. TF Serving, TensorFlow's C++ and
  Java APIs, or ``tf.saved_model.load`` in a program without fmlib can run it; it cannot be
  trained further with :func:`fmlib.fit`.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import tensorflow as tf

from fmlib.fileio import atomic_directory, atomic_write, check_writable_target
from fmlib.model.score import fm_score_unchecked
from fmlib.version import __version__

FORMAT = "fmlib.FactorizationMachine"
FORMAT_VERSION = 1
HEADER_KEYS = ("n_features", "k", "dtype", "pairwise", "task")


def save(model, path) -> str:
    """Write ``model`` to ``path`` (``.npz`` advised; the name is used as given); returns the path."""
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fmlib_version": __version__,
        "n_features": model.n_features,
        "k": model.k,
        "dtype": model.dtype.name,
        "pairwise": model.pairwise,
        "task": model.task,
    }
    # a temporary file beside `path`, renamed onto it when complete: a save that fails
    # midway (full disk, Ctrl-C) leaves the previous file as it was
    with atomic_write(path, "wb") as file:
        np.savez(file, header=np.array(json.dumps(header)), **model.get_weights())
    path = os.fsdecode(os.fspath(path))
    return path


def load(cls: type, path):
    """The model saved at ``path`` by :func:`save`; an error naming the path if it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no saved FactorizationMachine at {path!r}: the file does not exist."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            weights = {name: data[name] for name in ("w0", "w", "V")}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        # (numpy's advice to load a non-.npz file "unsafely" with pickle is not repeated)
        why = "it is not an .npz archive" if "pickle" in str(err) else str(err)
        raise ValueError(
            f"{path!r} is not a FactorizationMachine saved by fmlib "
            f"(FactorizationMachine.save): {why}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is not a FactorizationMachine saved by fmlib: its header is {header!r}."
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has format version {header.get('format_version')!r}; this fmlib "
            f"reads version {FORMAT_VERSION} (the file was written by fmlib "
            f"{header.get('fmlib_version')})."
        )
    try:
        model = cls(
            header["n_features"],
            header["k"],
            dtype=header["dtype"],
            pairwise=header["pairwise"],
            task=header["task"],
        )
        model.set_weights(**weights)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path!r} is a corrupt FactorizationMachine file: {err!r}"
        ) from None
    return model


class _Serving(tf.Module):
    """The exported module: the three parameters and the two prediction functions."""

    def __init__(self, model):
        super().__init__(name="factorization_machine")
        self.w0, self.w, self.V = model.w0, model.w, model.V
        self._classifier = model.task == "classification"
        n, dtype = model.n_features, model.dtype
        self.predict = tf.function(
            self._predict, input_signature=[tf.TensorSpec([None, n], dtype, name="x")]
        )
        self.predict_sparse = tf.function(
            self._predict_sparse,
            input_signature=[
                tf.TensorSpec([None, 2], tf.int64, name="indices"),
                tf.TensorSpec([None], dtype, name="values"),
                tf.TensorSpec([2], tf.int64, name="dense_shape"),
            ],
        )

    def _outputs(self, X) -> dict[str, tf.Tensor]:
        y_hat = fm_score_unchecked(self.w0, self.w, self.V, X)
        return (
            {"y_hat": y_hat, "probability": tf.sigmoid(y_hat)}
            if self._classifier
            else {"y_hat": y_hat}
        )

    def _predict(self, x):
        return self._outputs(x)

    def _predict_sparse(self, indices, values, dense_shape):
        return self._outputs(tf.SparseTensor(indices, values, dense_shape))


def export(model, path) -> str:
    """Write ``model`` as a TensorFlow SavedModel directory at ``path``; returns the path."""
    path = check_writable_target(path, "path", directory=True)
    module = _Serving(model)
    # built in a temporary directory beside `path` and swapped in when complete: a failed
    # export leaves a previous one as it was
    with atomic_directory(path) as tmp:
        try:
            tf.saved_model.save(
                module,
                tmp,
                signatures={
                    "serving_default": module.predict,
                    "serving_sparse": module.predict_sparse,
                },
            )
        except (OSError, tf.errors.OpError) as err:
            raise OSError(
                f"`path`: could not export the model to {path!r}: "
                f"{getattr(err, 'message', None) or err}"
            ) from None
    return path
