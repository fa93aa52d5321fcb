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

import contextlib
import os
import re
import zipfile
from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.learning.divergence import (
    TrainingDivergedError,
    check_weights_finite,
    diverged,
)
from fmlib.learning.optimizers import check_unused_or_ours
from fmlib.model.score import fm_score_unchecked
from fmlib.validation import (
    as_batch,
    check_bool,
    check_finite_array,
    check_fits,
    check_float,
    check_numeric_array,
    check_rows,
    check_seed,
    check_task,
    check_width,
)

# In-graph checks (tf.data input, compiled steps) start their message with this mark, so that
# FMModel can turn TensorFlow's long graph trace back into the one-line ValueError.
GRAPH_CHECK = "fmlib check: "


def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be an integer >= 1; got {k!r}.")
    return int(k)


def in_graph(tensor: tf.Tensor, checks: list) -> tf.Tensor:
    """``tensor``, computed only after the in-graph ``checks`` (assertions) have passed."""
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def graph_finite(values: tf.Tensor, name: str) -> tf.Tensor:
    return in_graph(
        values,
        [
            tf.debugging.assert_all_finite(
                values,
                f"{GRAPH_CHECK}`{name}` must be finite; it contains NaN or infinite values",
            )
        ],
    )


@contextlib.contextmanager
def _graph_errors():
    """Re-raise a failed in-graph fmlib check as the ValueError it stands for, without the graph trace."""
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        # TensorFlow prints "[<message>] [Condition ...]" or "<message> : Tensor had NaN values"
        found = re.search(
            re.escape(GRAPH_CHECK) + r"(.*?)(?: : Tensor had|\]|\n|$)", str(err)
        )
        if found is None:
            raise
        raise ValueError(
            found.group(1).strip() + " (found while running the model on a batch)."
        ) from None


class FMWeights(keras.layers.Layer):
    """Shared construction of w0, w, V with initializers and regularizers."""

    def __init__(
        self,
        k: int = 8,
        w_initializer="zeros",
        v_initializer=None,
        w_regularizer=None,
        v_regularizer=None,
        w0_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.k = _check_k(k)
        self.w0_initializer = keras.initializers.get(w0_initializer)
        self.w_initializer = keras.initializers.get(w_initializer)
        self.v_initializer = keras.initializers.get(
            v_initializer
            if v_initializer is not None
            else keras.initializers.RandomNormal(stddev=0.01)
        )
        self.w_regularizer = keras.regularizers.get(w_regularizer)
        self.v_regularizer = keras.regularizers.get(v_regularizer)

    def _add_fm_weights(self, n: int) -> None:
        self.w0 = self.add_weight(shape=(), initializer=self.w0_initializer, name="w0")
        self.w = self.add_weight(
            shape=(n,),
            initializer=self.w_initializer,
            regularizer=self.w_regularizer,
            name="w",
        )
        self.V = self.add_weight(
            shape=(n, self.k),
            initializer=self.v_initializer,
            regularizer=self.v_regularizer,
            name="V",
        )

    def compute_output_shape(self, input_shape):
        shape = (
            input_shape[0]
            if isinstance(input_shape, (list, tuple))
            and isinstance(input_shape[0], (list, tuple))
            else input_shape
        )
        return (shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "k": self.k,
                "w0_initializer": keras.initializers.serialize(self.w0_initializer),
                "w_initializer": keras.initializers.serialize(self.w_initializer),
                "v_initializer": keras.initializers.serialize(self.v_initializer),
                "w_regularizer": keras.regularizers.serialize(self.w_regularizer),
                "v_regularizer": keras.regularizers.serialize(self.v_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="fmlib")
class FMLayer(FMWeights):
    r"""A Factorization Machine over a design matrix: ``(batch, n)`` → ``(batch, 1)``.

    .. math::

        \hat y(\mathbf x) &= w_0 + \mathbf w^\top \mathbf x
        + \tfrac12 \textstyle\sum_f \big[(\mathbf x^\top \mathbf V)_f^2 \\
        &\qquad - ((\mathbf x \odot \mathbf x)^\top (\mathbf V \odot \mathbf V))_f\big]

    Rendle (2010), eq. (1) with Lemma 3.1. The number of features ``n`` is taken
    from the input at build time.

    Args:
        k: number of factors per feature.
        w_initializer, v_initializer: initializers of ``w`` (default zeros) and ``V``
            (default ``RandomNormal(stddev=0.01)``).
        w0_initializer: initializer of ``w0`` (default zeros); e.g.
            ``keras.initializers.Constant(mean_rating)`` to start from the mean rating
            rather than subtracting it from the targets.
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
            raise ValueError(
                f"FMLayer input must have shape (batch, n) with n known; got {tuple(input_shape)}."
            )
        self.n_features = int(n)
        self._add_fm_weights(self.n_features)

    def call(self, inputs):
        if (
            tf.executing_eagerly()
        ):  # the shared gate: indices, duplicates, NaN, float range
            X = as_batch(inputs, self.n_features, self.V.dtype, name="x")
        elif isinstance(inputs, tf.SparseTensor):
            cols = inputs.indices[:, 1]
            indices = in_graph(
                inputs.indices,
                [
                    tf.debugging.assert_non_negative(
                        inputs.indices, f"{GRAPH_CHECK}`x` has negative indices"
                    ),
                    tf.debugging.assert_less(
                        cols,
                        tf.constant(self.n_features, cols.dtype),
                        f"{GRAPH_CHECK}`x` has column indices >= n={self.n_features}",
                    ),
                ],
            )
            X = tf.SparseTensor(
                indices,
                graph_finite(tf.cast(inputs.values, self.V.dtype), "x"),
                inputs.dense_shape,
            )
        else:
            X = graph_finite(tf.cast(inputs, self.V.dtype), "x")
        return fm_score_unchecked(self.w0, self.w, self.V, X)[:, None]


@keras.saving.register_keras_serializable(package="fmlib")
class FieldFMLayer(FMWeights):
    r"""A Factorization Machine over categorical fields given as integer ids.

    With fields :math:`f = 1..F`, ids :math:`c_f \in \{0..\text{vocab}_f - 1\}` and values
    :math:`x_f` (1 when not given), feature :math:`i(f, c_f)` of one shared table
    (``offset_f + c_f``) is active with value :math:`x_f`:

    .. math::

        \hat y &= w_0 + \sum_f w_{i(f)} x_f
        + \frac12 \sum_{q=1}^{k}\Big[\Big(\sum_f v_{i(f),q} x_f\Big)^2 \\
        &\qquad - \sum_f v_{i(f),q}^2 x_f^2\Big]

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
        if isinstance(vocab_sizes, (str, bytes)) or not hasattr(
            vocab_sizes, "__iter__"
        ):
            raise TypeError(
                "`vocab_sizes` must be a list of integers, one per field (e.g. [943, 1682]); "
                f"got {type(vocab_sizes).__name__} {vocab_sizes!r}."
            )
        sizes = list(vocab_sizes)
        if not sizes or any(
            isinstance(v, (bool, np.bool_))
            or not isinstance(v, (int, np.integer))
            or v < 1
            for v in sizes
        ):
            raise ValueError(
                f"`vocab_sizes` must be a non-empty list of integers >= 1; got {vocab_sizes!r}."
            )
        self.vocab_sizes = [int(v) for v in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.vocab_sizes)[:-1]]).astype(
            np.int64
        )

    def build(self, input_shape):
        ids_shape = (
            input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        )
        if len(ids_shape) != 2 or ids_shape[-1] != len(self.vocab_sizes):
            raise ValueError(
                f"`ids` must have shape (batch, {len(self.vocab_sizes)}) for "
                f"{len(self.vocab_sizes)} fields; got {tuple(ids_shape)}."
            )
        self._add_fm_weights(int(sum(self.vocab_sizes)))

    def call(self, inputs):
        ids, values = self._checked(inputs)
        feature = ids + tf.constant(self.offsets)[None, :]  # (batch, F) rows of w and V
        w_f = tf.gather(self.w, feature)  # (batch, F)
        V_f = tf.gather(self.V, feature)  # (batch, F, k)
        if values is not None:
            w_f = w_f * values
            V_f = V_f * values[:, :, None]
        square_of_sum = tf.square(tf.reduce_sum(V_f, axis=1))  # (batch, k)
        sum_of_square = tf.reduce_sum(tf.square(V_f), axis=1)  # (batch, k)
        pair = 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1)
        return (self.w0 + tf.reduce_sum(w_f, axis=1) + pair)[:, None]

    def _checked(self, inputs) -> tuple[tf.Tensor, tf.Tensor | None]:
        """``(ids, values)`` as int64 and float tensors, checked eagerly or in the graph."""
        ids, values = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        if not tf.as_dtype(ids.dtype).is_integer:
            raise ValueError(
                f"`ids` must be integers; got dtype {tf.as_dtype(ids.dtype).name}."
            )
        ids = tf.cast(ids, tf.int64)
        if values is not None:
            values = tf.cast(values, self.V.dtype)
        if tf.executing_eagerly():
            check_ids(ids.numpy(), self.vocab_sizes)
            if values is not None:
                check_finite_array(values.numpy(), "values")
            return ids, values
        vocab = tf.constant(self.vocab_sizes, tf.int64)
        ids = in_graph(
            ids,
            [
                tf.debugging.assert_non_negative(
                    ids, message=f"{GRAPH_CHECK}`ids` must be >= 0"
                ),
                tf.debugging.assert_less(
                    ids,
                    vocab[None, :],
                    message=(
                        f"{GRAPH_CHECK}`ids` must be below the vocabulary sizes {tuple(self.vocab_sizes)}"
                    ),
                ),
            ],
        )
        return ids, (None if values is None else graph_finite(values, "values"))

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
        raise ValueError(
            f"`{name}` must have shape (batch, {len(vocab_sizes)}); got {ids.shape}."
        )
    for f, size in enumerate(vocab_sizes):
        column = ids[:, f]
        bad = (column < 0) | (column >= size)
        if bad.any():
            raise ValueError(
                f"`{name}` of field {f} must be in [0, {size}); got {int(column[bad][0])} "
                f"({int(bad.sum())} value(s) out of range)."
            )


class DivergenceCheck(keras.callbacks.Callback):
    """Stop ``fit`` with :class:`~fmlib.TrainingDivergedError` when the model blows up.

    Like ``keras.callbacks.TerminateOnNaN``, but it raises instead of stopping quietly, and it
    also looks at the weights after the epoch's last step (the logged loss is measured before
    each update) and at losses beyond the float range (a validation loss of 1e40).
    """

    def on_epoch_end(self, epoch, logs=None):
        check_weights_finite(
            self.model.trainable_variables,
            f"in epoch {epoch + 1}",
            _lr(self.model.optimizer),
        )
        for key, value in (logs or {}).items():
            if key.endswith("loss") and diverged(float(value), tf.float32):
                raise TrainingDivergedError(
                    f"Training diverged in epoch {epoch + 1}: {key} became {float(value):.4g}. "
                    f"Try a smaller learning rate (lr={_lr(self.model.optimizer)} now) or "
                    "stronger regularisation."
                )


def _lr(optimizer) -> float | None:
    try:
        return float(optimizer.learning_rate)
    except (TypeError, ValueError, AttributeError):
        return None


@keras.saving.register_keras_serializable(package="fmlib")
class FMModel(keras.Model):
    """A functional ``keras.Model`` that checks its inputs before fit, evaluate and predict.

    Wrong widths, ids out of range, non-integer ids, NaN values or targets and empty inputs fail
    with a ``ValueError`` naming the argument, before any TensorFlow graph runs; ``scipy.sparse``
    input of any format is converted to canonical CSR. ``tf.data`` inputs are checked inside the
    graph, and a failed check is reported as the same one-line ``ValueError``. ``fit`` raises
    :class:`~fmlib.TrainingDivergedError` when the loss or the weights stop being finite.

    The model remembers its ``task`` (``"regression"``, ``"classification"`` or None) and, for
    classification, whether it outputs logits (``from_logits=True``) or probabilities; both are
    saved with it. :meth:`compile` without a ``loss`` uses the matching loss and metrics.
    """

    def __init__(
        self, *args, task: str | None = None, from_logits: bool = True, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.task = check_task(task, allow_none=True)
        self.from_logits = check_bool(from_logits, "from_logits")

    def get_config(self):
        return {
            **super().get_config(),
            "task": self.task,
            "from_logits": self.from_logits,
        }

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile``; with no ``loss`` (and no ``metrics``), the task's defaults.

        Regression: ``"mse"`` and the metric ``rmse``. Classification: binary cross-entropy
        and the metrics ``auc`` and ``accuracy``, all with the model's ``from_logits``
        (an accuracy threshold of 0 on logits, 0.5 on probabilities).
        """
        if loss is None and self.task is not None:
            loss, default_metrics = default_loss_and_metrics(
                self.task, self.from_logits
            )
            metrics = default_metrics if metrics is None else metrics
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @classmethod
    def load(cls, path) -> "FMModel":
        """A model saved with ``model.save("name.keras")``: ``keras.saving.load_model`` (fmlib's
        layers are registered), with an error that names ``path`` when the file is missing or
        is not a ``.keras`` archive (Keras says "File not found" for both)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"`path` must be a path (str or os.PathLike); got {type(path).__name__}."
            )
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"`path`: no .keras file at {path!r}.")
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"`path`: {path!r} is not a .keras model file (the zip archive "
                "written by model.save('name.keras'))."
            )
        try:
            model = keras.saving.load_model(path)
        except (ValueError, KeyError, OSError, TypeError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"`path`: {path!r} could not be loaded as a Keras model: {err}"
            ) from None
        if not isinstance(model, cls):
            raise TypeError(
                f"`path`: {path!r} holds a {type(model).__name__}, not a fmlib "
                f"{cls.__name__}."
            )
        return model

    def compile_from_config(self, config):
        """Recompile a loaded model (Keras skips models whose ``compile`` is overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(
                self.trainable_variables
            )  # the saved state is loaded into it

    def _fm_layer(self):
        return next(
            (l for l in self.layers if isinstance(l, (FMLayer, FieldFMLayer))), None
        )

    def _prepare(self, x, name: str = "x"):
        """Checked (and, for scipy, converted) ``x``; tf.data is left to the in-graph checks."""
        layer = self._fm_layer()
        if layer is None or x is None or isinstance(x, tf.data.Dataset):
            return x
        if isinstance(layer, FieldFMLayer):
            return self._prepare_fields(layer, x, name)
        if isinstance(x, (tf.Tensor, tf.SparseTensor)) or sp.issparse(x):
            x = as_batch(
                x, layer.n_features, layer.V.dtype, name
            )  # eager: canonical, checked
            check_rows(int(x.shape[0]), 1, name)
            if isinstance(
                x, tf.SparseTensor
            ):  # Keras slices scipy CSR into batches itself
                idx = x.indices.numpy()
                return sp.csr_matrix(
                    (x.values.numpy(), (idx[:, 0], idx[:, 1])), shape=tuple(x.shape)
                )
            return x
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D (batch, n); got shape {x.shape}.")
        check_numeric_array(x.dtype, name)
        check_width(x.shape[1], layer.n_features, name)
        check_finite_array(x, name)
        check_fits(x, layer.V.dtype, name)
        check_rows(x.shape[0], 1, name)
        return x

    @staticmethod
    def _prepare_fields(layer: "FieldFMLayer", x, name: str):
        ids, values = (x[0], x[1]) if isinstance(x, (list, tuple)) else (x, None)
        label = "ids" if name == "x" else f"{name} (ids)"
        if not isinstance(ids, tf.Tensor):
            check_ids(ids, layer.vocab_sizes, name=label)
            check_rows(len(ids), 1, label)
        if values is not None and not isinstance(values, tf.Tensor):
            label = "values" if name == "x" else f"{name} (values)"
            values = np.asarray(values)
            check_numeric_array(values.dtype, label)
            check_finite_array(values, label)
        return x

    def _prepare_y(self, y, name: str = "y"):
        if y is None or isinstance(y, tf.data.Dataset):
            return y
        y_arr = y.numpy() if isinstance(y, tf.Tensor) else np.asarray(y)
        check_numeric_array(y_arr.dtype, name)
        check_finite_array(y_arr.astype(np.float64), name)
        if self.task == "classification" and not np.isin(y_arr, (0, 1)).all():
            found = np.unique(y_arr)
            raise ValueError(
                f"`{name}`: a classification model trains on labels 0 and 1 (binary "
                f"cross-entropy); got the values {found[:6].tolist()}"
                f"{' ...' if found.size > 6 else ''}. Map them to 0/1 first."
            )
        return y

    def fit(self, x=None, y=None, *args, **kwargs):
        x, y = self._prepare(x), self._prepare_y(y)
        val = kwargs.get("validation_data")
        if isinstance(val, (tuple, list)) and len(val) >= 2:
            kwargs["validation_data"] = (
                self._prepare(val[0], "validation_data[0]"),
                self._prepare_y(val[1], "validation_data[1]"),
                *val[2:],
            )
        if self.optimizer is not None and getattr(self.optimizer, "built", False):
            check_unused_or_ours(self.optimizer, self.trainable_variables)
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), DivergenceCheck()]
        with _graph_errors():
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self._prepare(x), self._prepare_y(y)
        with _graph_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x = self._prepare(x)
        with _graph_errors():
            return super().predict(x, *args, **kwargs)


def default_loss_and_metrics(task: str, from_logits: bool = True) -> tuple:
    """``(loss, metrics)`` for :meth:`FMModel.compile`: see there."""
    if task == "regression":
        return "mse", [keras.metrics.RootMeanSquaredError(name="rmse")]
    return (
        keras.losses.BinaryCrossentropy(from_logits=from_logits),
        [
            keras.metrics.AUC(from_logits=from_logits, name="auc"),
            keras.metrics.BinaryAccuracy(
                threshold=0.0 if from_logits else 0.5, name="accuracy"
            ),
        ],
    )


def build_fm_model(
    n_features: int | None = None,
    *,
    vocab_sizes: Sequence[int] | None = None,
    k: int = 8,
    sparse: bool = True,
    with_values: bool = False,
    task: str = "regression",
    from_logits: bool = True,
    w0_init: float = 0.0,
    l2_w: float = 0.0,
    l2_v: float = 0.0,
    v_init_std: float = 0.01,
    seed: int | None = None,
    name: str = "fm",
) -> FMModel:
    r"""Build an uncompiled Keras FM: over ``n_features`` columns, or over fields (``vocab_sizes``).

    Args:
        n_features: width of the design matrix (give this or ``vocab_sizes``).
        vocab_sizes: ids per field, for the field-indexed layout.
        k: factors per feature.
        sparse: the design-matrix input is sparse (``tf.SparseTensor`` / ``scipy.sparse``).
        with_values: field layout only: a second input with one value per field.
        task: ``"regression"`` (output: the rating) or ``"classification"``. The model
            keeps it: ``model.compile(optimizer)`` without a loss then uses ``"mse"`` and an
            ``rmse`` metric, or binary cross-entropy with ``auc`` and ``accuracy``.
        from_logits: classification only: True (default) outputs the logit ŷ (the loss and
            metrics take ``from_logits=True``), False outputs :math:`\sigma(\hat y)`, the
            probability of the positive class, through a final sigmoid layer ``"probability"``.
        w0_init: the starting value of the global bias :math:`w_0`, e.g. the mean training
            rating, instead of subtracting the mean from the targets by hand.
        l2_w, l2_v: L2 strengths on ``w`` and ``V``.
        v_init_std: standard deviation of the initial ``V``; ``seed`` makes it reproducible.

    Example:
        >>> model = build_fm_model(vocab_sizes=[943, 1682], k=8)
        >>> model.compile(optimizer="adam", loss="mse")
    """
    task, from_logits = check_task(task), check_bool(from_logits, "from_logits")
    if task == "regression" and not from_logits:
        raise ValueError(
            "`from_logits=False` (a sigmoid output) is for task='classification'; "
            "got task='regression', whose output is the rating itself."
        )
    if (n_features is None) == (vocab_sizes is None):
        raise ValueError(
            "give exactly one of `n_features` (design matrix) and `vocab_sizes` (fields)."
        )
    sparse, with_values = (
        check_bool(sparse, "sparse"),
        check_bool(with_values, "with_values"),
    )
    if with_values and n_features is not None:
        raise ValueError(
            "`with_values=True` applies to the field layout (`vocab_sizes`); with "
            f"`n_features`={n_features!r} the values are the design matrix itself."
        )
    l2_w, l2_v = check_float(l2_w, "l2_w"), check_float(l2_v, "l2_v")
    options = dict(
        k=k,
        w0_initializer=keras.initializers.Constant(
            check_float(w0_init, "w0_init", minimum=-np.inf)
        ),
        v_initializer=keras.initializers.RandomNormal(
            stddev=check_float(v_init_std, "v_init_std"), seed=check_seed(seed)
        ),
        w_regularizer=keras.regularizers.L2(l2_w) if l2_w else None,
        v_regularizer=keras.regularizers.L2(l2_v) if l2_v else None,
    )
    if n_features is not None:
        if (
            isinstance(n_features, (bool, np.bool_))
            or not isinstance(n_features, (int, np.integer))
            or n_features < 1
        ):
            raise ValueError(
                f"`n_features` must be an integer >= 1; got {n_features!r}."
            )
        inputs = keras.Input(shape=(int(n_features),), sparse=sparse, name="x")
        output = FMLayer(name="fm_layer", **options)(inputs)
    else:
        ids = keras.Input(shape=(len(vocab_sizes),), dtype="int64", name="ids")
        inputs = (
            [ids, keras.Input(shape=(len(vocab_sizes),), name="values")]
            if with_values
            else ids
        )
        output = FieldFMLayer(vocab_sizes, name="field_fm_layer", **options)(inputs)
    if not from_logits:
        output = keras.layers.Activation("sigmoid", name="probability")(output)
    return FMModel(inputs, output, name=name, task=task, from_logits=from_logits)
