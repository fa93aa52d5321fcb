"""What the field-id layers of the FM family share: the model class and the input checks.

The layers take the input convention of :class:`fmlib.FieldFMLayer` (``(batch, F)`` integer
ids, optionally with ``(batch, F)`` values) and the same checks; :class:`FamilyModel` is
:class:`fmlib.FMModel` taught to find them, so ``fit``, ``evaluate`` and ``predict`` check
array inputs before any graph runs (chapter "The FM family").
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from fmlib.learning.keras_fm import FieldFMLayer, FMModel, FMWeights


def check_vocab_sizes(vocab_sizes: Sequence[int]) -> list[int]:
    """``vocab_sizes`` as a non-empty list of ints >= 1 (the check of FieldFMLayer)."""
    if isinstance(vocab_sizes, (str, bytes)) or not hasattr(vocab_sizes, "__iter__"):
        raise TypeError(
            "`vocab_sizes` must be a list of integers, one per field (e.g. "
            f"[943, 1682]); got {type(vocab_sizes).__name__} {vocab_sizes!r}."
        )
    sizes = list(vocab_sizes)
    if not sizes or any(
        isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1
        for v in sizes
    ):
        raise ValueError(
            "`vocab_sizes` must be a non-empty list of integers >= 1; "
            f"got {vocab_sizes!r}."
        )
    return [int(v) for v in sizes]


def check_ids_shape(input_shape, vocab_sizes: list[int]) -> None:
    """Raise ValueError unless the ids input is ``(batch, F)`` for ``F`` fields."""
    ids_shape = (
        input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
    )
    if len(ids_shape) != 2 or ids_shape[-1] != len(vocab_sizes):
        raise ValueError(
            f"`ids` must have shape (batch, {len(vocab_sizes)}) for "
            f"{len(vocab_sizes)} fields; got {tuple(ids_shape)}."
        )


def checked_field_inputs(layer: keras.layers.Layer, inputs):
    """``(ids, values or None)`` checked exactly as :class:`fmlib.FieldFMLayer` checks them.

    ``layer`` needs ``vocab_sizes`` and a float weight ``V`` (for the values' dtype).
    """
    return FieldFMLayer._checked(layer, inputs)


def feature_rows(ids: tf.Tensor, vocab_sizes: list[int]) -> tf.Tensor:
    """Rows ``offset_f + id_f`` of the shared tables, for ``(batch, F)`` ids."""
    offsets = np.concatenate([[0], np.cumsum(vocab_sizes)[:-1]]).astype(np.int64)
    return ids + tf.constant(offsets)[None, :]


@keras.saving.register_keras_serializable(package="fmlib")
class FamilyModel(FMModel):
    """:class:`fmlib.FMModel` for the FM family's layers: same checks, task and defaults.

    Array inputs to ``fit``, ``evaluate`` and ``predict`` are checked as for
    :class:`fmlib.FieldFMLayer` (integer ids within the vocabularies, finite values) when
    the model's input layer takes field ids, and as for :class:`fmlib.FMLayer` otherwise.
    """

    def _fm_layer(self):
        # every FM-family layer (FMLayer, FieldFMLayer, FieldAwareFMLayer, FieldEmbedding)
        # holds its tables in FMWeights
        return next((l for l in self.layers if isinstance(l, FMWeights)), None)

    def _prepare(self, x, name: str = "x"):
        layer = self._fm_layer()
        if (
            hasattr(layer, "vocab_sizes")
            and x is not None
            and not isinstance(x, tf.data.Dataset)
        ):
            return self._prepare_fields(layer, x, name)
        return super()._prepare(x, name)
