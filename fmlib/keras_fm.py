r"""The Factorization Machine as Keras 3 layers and models (chapter "The Keras interface").

Two layers compute the same model, eq. (1) of Rendle (2010), with the pairwise term by
Lemma 3.1 (the same function as :func:`fmlib.pairwise_fast`):

.. math::

    \hat y(\mathbf x) = w_0 + \sum_{i=1}^{n} w_i x_i
    + \frac12 \sum_{f=1}^{k}\Big[\Big(\sum_{i} v_{i,f} x_i\Big)^2 - \sum_i v_{i,f}^2 x_i^2\Big]

* :class:`FMLayer` takes the design matrix: a dense ``(batch, n)`` tensor or a
  ``tf.SparseTensor`` (``keras.Input(shape=(n,), sparse=True)``; ``model.fit``
  then also accepts ``scipy.sparse`` matrices). Cost O(k · nnz).
* :class:`FieldFMLayer` takes categorical data as one integer id per field, the
  usual click-through-rate layout: ``(batch, fields)`` ids and, optionally,
  ``(batch, fields)`` values. It is the FM on the one-hot encoding of the fields,
  without building that matrix: feature ``i`` of the FM is (field, id).

:func:`build_fm_model` wraps either in a ``keras.Model`` that checks array inputs
before training or predicting. Both layers are registered for ``.keras`` saving.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from ._inputs import _check_finite_np, _check_numeric_np, _check_scipy, _check_width
from .model import fm_score_unchecked


def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be an integer >= 1; got {k!r}.")
    return int(k)


class _FMWeights(keras.layers.Layer):
    """Shared construction of w0, w, V with initializers and regularizers."""

    def __init__(self, k: int = 8, w_initializer="zeros",
                 v_initializer=None, w_regularizer=None, v_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.k = _check_k(k)
        self.w_initializer = keras.initializers.get(w_initializer)
        self.v_initializer = keras.initializers.get(
            v_initializer if v_initializer is not None else keras.initializers.RandomNormal(stddev=0.01))
        self.w_regularizer = keras.regularizers.get(w_regularizer)
        self.v_regularizer = keras.regularizers.get(v_regularizer)

    def _add_fm_weights(self, n: int) -> None:
        self.w0 = self.add_weight(shape=(), initializer="zeros", name="w0")
        self.w = self.add_weight(shape=(n,), initializer=self.w_initializer,
                                 regularizer=self.w_regularizer, name="w")
        self.V = self.add_weight(shape=(n, self.k), initializer=self.v_initializer,
                                 regularizer=self.v_regularizer, name="V")

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else input_shape
        return (shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "k": self.k,
            "w_initializer": keras.initializers.serialize(self.w_initializer),
            "v_initializer": keras.initializers.serialize(self.v_initializer),
            "w_regularizer": keras.regularizers.serialize(self.w_regularizer),
            "v_regularizer": keras.regularizers.serialize(self.v_regularizer),
        })
        return config


@keras.saving.register_keras_serializable(package="fmlib")
class FMLayer(_FMWeights):
    r"""A Factorization Machine over a design matrix: ``(batch, n)`` → ``(batch, 1)``.

    .. math::

        \hat y(\mathbf x) = w_0 + \mathbf w^\top \mathbf x
        + \tfrac12 \textstyle\sum_f \big[(\mathbf x^\top \mathbf V)_f^2 - ((\mathbf x \odot \mathbf x)^\top (\mathbf V \odot \mathbf V))_f\big]

    Rendle (2010), eq. (1) with Lemma 3.1. The number of features ``n`` is taken
    from the input at build time.

    Args:
        k: number of factors per feature.
        w_initializer, v_initializer: initializers of ``w`` (default zeros) and ``V``
            (default ``RandomNormal(stddev=0.01)``); ``w0`` starts at 0.
        w_regularizer, v_regularizer: e.g. ``keras.regularizers.L2(1e-4)``
            (libFM's λ_w and λ_v).

    Input shape: ``(batch, n)``, dense or ``tf.SparseTensor``.
    Output shape: ``(batch, 1)``: a rating for regression, a logit for classification.

    Example:
        >>> inputs = keras.Input(shape=(16,), sparse=True)
        >>> model = keras.Model(inputs, FMLayer(k=4)(inputs))
        >>> model.compile(optimizer="adam", loss="mse")
    """

    def build(self, input_shape):
        n = input_shape[-1]
        if len(input_shape) != 2 or n is None:
            raise ValueError(f"FMLayer input must have shape (batch, n) with n known; got {tuple(input_shape)}.")
        self.n_features = int(n)
        self._add_fm_weights(self.n_features)

    def call(self, inputs):
        if isinstance(inputs, tf.SparseTensor):
            X = inputs if inputs.dtype == self.V.dtype else tf.SparseTensor(
                inputs.indices, tf.cast(inputs.values, self.V.dtype), inputs.dense_shape)
        else:
            X = tf.cast(inputs, self.V.dtype)
        return fm_score_unchecked(self.w0, self.w, self.V, X)[:, None]


@keras.saving.register_keras_serializable(package="fmlib")
class FieldFMLayer(_FMWeights):
    r"""A Factorization Machine over categorical fields given as integer ids.

    With fields :math:`f = 1..F`, ids :math:`c_f \in \{0..\text{vocab}_f - 1\}` and values
    :math:`x_f` (1 when not given), feature :math:`i(f, c_f)` of one shared table
    (``offset_f + c_f``) is active with value :math:`x_f`:

    .. math::

        \hat y = w_0 + \sum_f w_{i(f)} x_f
        + \frac12 \sum_{q=1}^{k}\Big[\Big(\sum_f v_{i(f),q} x_f\Big)^2 - \sum_f v_{i(f),q}^2 x_f^2\Big]

    which is exactly the FM on the one-hot encoding of the fields, computed in O(k F)
    per row by gathering rows of ``V`` (no one-hot matrix is built).

    Args:
        vocab_sizes: number of ids of each field, e.g. ``[943, 1682]`` for (user, item).
        k, initializers, regularizers: as in :class:`FMLayer`.

    Input: ``ids`` of shape ``(batch, F)`` (integers), or a pair ``(ids, values)``
    with ``values`` of shape ``(batch, F)``. Output shape: ``(batch, 1)``.
    """

    def __init__(self, vocab_sizes: Sequence[int], k: int = 8, **kwargs):
        super().__init__(k=k, **kwargs)
        sizes = list(vocab_sizes)
        if not sizes or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1
                            for v in sizes):
            raise ValueError(f"`vocab_sizes` must be a non-empty list of integers >= 1; got {vocab_sizes!r}.")
        self.vocab_sizes = [int(v) for v in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.vocab_sizes)[:-1]]).astype(np.int64)

    def build(self, input_shape):
        ids_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        if len(ids_shape) != 2 or ids_shape[-1] != len(self.vocab_sizes):
            raise ValueError(f"`ids` must have shape (batch, {len(self.vocab_sizes)}) for "
                             f"{len(self.vocab_sizes)} fields; got {tuple(ids_shape)}.")
        self._add_fm_weights(int(sum(self.vocab_sizes)))

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            ids, values = inputs
            values = tf.cast(values, self.V.dtype)
        else:
            ids, values = inputs, None
        if not (ids.dtype.is_integer):
            raise ValueError(f"`ids` must be integers; got dtype {ids.dtype.name}.")
        ids = tf.cast(ids, tf.int64)
        vocab = tf.constant(self.vocab_sizes, tf.int64)
        if tf.executing_eagerly():
            check_ids(ids.numpy(), self.vocab_sizes)
        else:
            tf.debugging.assert_non_negative(ids, message="`ids` must be >= 0")
            tf.debugging.assert_less(ids, vocab[None, :],
                                     message=f"`ids` must be below the vocabulary sizes {self.vocab_sizes}")
        feature = ids + tf.constant(self.offsets)[None, :]           # (batch, F) rows of w and V
        w_f = tf.gather(self.w, feature)                              # (batch, F)
        V_f = tf.gather(self.V, feature)                              # (batch, F, k)
        if values is not None:
            w_f = w_f * values
            V_f = V_f * values[:, :, None]
        square_of_sum = tf.square(tf.reduce_sum(V_f, axis=1))        # (batch, k)
        sum_of_square = tf.reduce_sum(tf.square(V_f), axis=1)        # (batch, k)
        pair = 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1)
        return (self.w0 + tf.reduce_sum(w_f, axis=1) + pair)[:, None]

    def get_config(self):
        config = super().get_config()
        config["vocab_sizes"] = list(self.vocab_sizes)
        return config


def check_ids(ids, vocab_sizes: Sequence[int], name: str = "ids") -> None:
    """Raise ``ValueError`` unless ``ids`` is an integer ``(batch, F)`` array within the vocabularies."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`{name}` must be integers; got dtype {ids.dtype}.")
    if ids.ndim != 2 or ids.shape[1] != len(vocab_sizes):
        raise ValueError(f"`{name}` must have shape (batch, {len(vocab_sizes)}); got {ids.shape}.")
    for f, size in enumerate(vocab_sizes):
        column = ids[:, f]
        bad = (column < 0) | (column >= size)
        if bad.any():
            raise ValueError(f"`{name}` of field {f} must be in [0, {size}); got {int(column[bad][0])} "
                             f"({int(bad.sum())} value(s) out of range).")


@keras.saving.register_keras_serializable(package="fmlib")
class FMModel(keras.Model):
    """A functional ``keras.Model`` that checks numpy / scipy inputs before fit, evaluate and predict.

    Wrong widths, ids out of range, non-integer ids and NaN values fail with a
    ``ValueError`` naming the argument, before any TensorFlow graph runs.
    ``tf.data`` inputs are passed through (the layers' in-graph checks apply).
    """

    def _check(self, x, name: str = "x") -> None:
        layer = next((l for l in self.layers if isinstance(l, (FMLayer, FieldFMLayer))), None)
        if layer is None or x is None or isinstance(x, tf.data.Dataset):
            return
        if isinstance(layer, FieldFMLayer):
            ids = x[0] if isinstance(x, (list, tuple)) else x
            if not isinstance(ids, tf.Tensor):
                check_ids(ids, layer.vocab_sizes, name="ids" if name == "x" else f"{name} (ids)")
            return
        if isinstance(x, (tf.Tensor, tf.SparseTensor)):
            return
        if sp.issparse(x):
            _check_scipy(x, layer.n_features, name)
            return
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D (batch, n); got shape {x.shape}.")
        _check_numeric_np(x.dtype, name)
        _check_width(x.shape[1], layer.n_features, name)
        _check_finite_np(x, name)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check(x)
        if kwargs.get("validation_data") is not None and isinstance(kwargs["validation_data"], (tuple, list)):
            self._check(kwargs["validation_data"][0], "validation_data[0]")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check(x)
        return super().predict(x, *args, **kwargs)


def build_fm_model(n_features: int | None = None, *, vocab_sizes: Sequence[int] | None = None,
                   k: int = 8, sparse: bool = True, with_values: bool = False,
                   task: str = "regression", l2_w: float = 0.0, l2_v: float = 0.0,
                   v_init_std: float = 0.01, seed: int | None = None, name: str = "fm") -> FMModel:
    """Build an uncompiled Keras FM: over ``n_features`` columns, or over fields (``vocab_sizes``).

    Args:
        n_features: width of the design matrix (give this or ``vocab_sizes``).
        vocab_sizes: ids per field, for the field-indexed layout.
        k: factors per feature.
        sparse: the design-matrix input is sparse (``tf.SparseTensor`` / ``scipy.sparse``).
        with_values: field layout only: a second input with one value per field.
        task: ``"regression"`` (output: the rating) or ``"classification"`` (output:
            the logit; compile with ``keras.losses.BinaryCrossentropy(from_logits=True)``).
        l2_w, l2_v: L2 strengths on ``w`` and ``V``.
        v_init_std: standard deviation of the initial ``V``; ``seed`` makes it reproducible.

    Example:
        >>> model = build_fm_model(vocab_sizes=[943, 1682], k=8)
        >>> model.compile(optimizer="adam", loss="mse")
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"`task` must be 'regression' or 'classification'; got {task!r}.")
    if (n_features is None) == (vocab_sizes is None):
        raise ValueError("give exactly one of `n_features` (design matrix) and `vocab_sizes` (fields).")
    options = dict(k=k, v_initializer=keras.initializers.RandomNormal(stddev=v_init_std, seed=seed),
                   w_regularizer=keras.regularizers.L2(l2_w) if l2_w else None,
                   v_regularizer=keras.regularizers.L2(l2_v) if l2_v else None)
    if n_features is not None:
        if isinstance(n_features, (bool, np.bool_)) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"`n_features` must be an integer >= 1; got {n_features!r}.")
        inputs = keras.Input(shape=(int(n_features),), sparse=sparse, name="x")
        output = FMLayer(name="fm_layer", **options)(inputs)
    else:
        ids = keras.Input(shape=(len(vocab_sizes),), dtype="int64", name="ids")
        inputs = [ids, keras.Input(shape=(len(vocab_sizes),), name="values")] if with_values else ids
        output = FieldFMLayer(vocab_sizes, name="field_fm_layer", **options)(inputs)
    return FMModel(inputs, output, name=name)
