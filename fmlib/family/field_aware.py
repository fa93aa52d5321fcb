r"""Field-aware Factorization Machines (chapter "The FM family").

Juan, Zhuang, Chin and Lin (RecSys 2016), eq. (3)-(4): every feature belongs to a field, and
a feature keeps one latent vector *per field it can meet*. With one active feature
:math:`i_f` (value :math:`x_f`) in each field :math:`f = 1..F`,

.. math::

    \phi_{\text{FFM}}(\mathbf x) = \sum_{f=1}^{F} \sum_{g=f+1}^{F}
        \langle \mathbf v_{i_f, g}, \mathbf v_{i_g, f} \rangle\, x_f x_g

The FM uses :math:`\langle \mathbf v_{i_f}, \mathbf v_{i_g}\rangle` for the same pair:
FFM has ``F`` times the parameters and no Lemma 3.1 (the vectors of a pair depend on the
pair), so the sum costs O(k F²) per row, O(k F · nnz) in general.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from fmlib.family._build import check_output, field_inputs, layer_options, output_head
from fmlib.family._fields import (
    FamilyModel,
    check_ids_shape,
    check_vocab_sizes,
    checked_field_inputs,
    feature_rows,
)
from fmlib.learning.keras_fm import FMWeights


def ffm_pairwise_unchecked(V_rows: tf.Tensor) -> tf.Tensor:
    r"""The FFM sum from gathered, value-scaled vectors; ``(batch, F, F, k)`` → ``(batch,)``.

    ``V_rows[b, f, g]`` is :math:`x_f \mathbf v_{i_f, g}`. The inner products
    :math:`\langle x_f \mathbf v_{i_f,g}, x_g \mathbf v_{i_g,f}\rangle` for all pairs are
    one product of ``V_rows`` with its transpose over the two field axes; the strict upper
    triangle keeps :math:`f < g`.
    """
    dots = tf.reduce_sum(
        V_rows * tf.transpose(V_rows, [0, 2, 1, 3]), axis=-1
    )  # (b, F, F)
    F = V_rows.shape[1]
    upper = tf.constant(np.triu(np.ones((F, F)), k=1), dtype=dots.dtype)
    return tf.reduce_sum(dots * upper[None], axis=[1, 2])


@keras.saving.register_keras_serializable(package="fmlib")
class FieldAwareFMLayer(FMWeights):
    r"""A field-aware FM over categorical fields given as integer ids: ``(batch, F)`` → ``(batch, 1)``.

    .. math::

        \hat y = w_0 + \sum_{f} w_{i_f} x_f
            + \sum_{f<g} \langle \mathbf v_{i_f, g}, \mathbf v_{i_g, f} \rangle\, x_f x_g

    Juan et al. (2016), eq. (4), with the global bias and linear terms of the FM added (as
    in most FFM implementations since; the paper's own model has none). Feature
    :math:`i_f` is row ``offset_f + id_f`` of one table, as in :class:`fmlib.FieldFMLayer`,
    whose input convention and checks this layer shares. Weights: ``w0`` (), ``w``
    ``(n,)`` and ``V`` ``(n, F, k)`` with ``n = sum(vocab_sizes)``: ``V[i, g]`` is the
    vector feature ``i`` uses against field ``g``. Cost O(k F²) per row.

    Args:
        vocab_sizes: number of ids of each field, e.g. ``[943, 1682]``.
        k: factors per (feature, field) pair.
        w0_initializer, w_initializer, v_initializer, w_regularizer, v_regularizer: as in
            :class:`fmlib.FMLayer` (``V`` defaults to ``RandomNormal(stddev=0.01)``).

    Input: ``ids`` ``(batch, F)`` integers, or a pair ``(ids, values)``.
    Output shape: ``(batch, 1)``.
    """

    def __init__(
        self,
        vocab_sizes: Sequence[int],
        k: int = 4,
        w0_initializer="zeros",
        w_initializer="zeros",
        v_initializer=None,
        w_regularizer=None,
        v_regularizer=None,
        **kwargs,
    ):
        # k, initializers and regularizers: checked, kept and serialised as in FMLayer
        super().__init__(
            k=k,
            w0_initializer=w0_initializer,
            w_initializer=w_initializer,
            v_initializer=v_initializer,
            w_regularizer=w_regularizer,
            v_regularizer=v_regularizer,
            **kwargs,
        )
        self.vocab_sizes = check_vocab_sizes(vocab_sizes)

    def build(self, input_shape):
        check_ids_shape(input_shape, self.vocab_sizes)
        n, F = int(sum(self.vocab_sizes)), len(self.vocab_sizes)
        self.w0 = self.add_weight(shape=(), initializer=self.w0_initializer, name="w0")
        self.w = self.add_weight(
            shape=(n,),
            initializer=self.w_initializer,
            regularizer=self.w_regularizer,
            name="w",
        )
        self.V = self.add_weight(
            shape=(n, F, self.k),
            initializer=self.v_initializer,
            regularizer=self.v_regularizer,
            name="V",
        )

    def call(self, inputs):
        ids, values = checked_field_inputs(self, inputs)
        rows = feature_rows(ids, self.vocab_sizes)  # (batch, F)
        w_f = tf.gather(self.w, rows)  # (batch, F)
        V_rows = tf.gather(self.V, rows)  # (batch, F, F, k)
        if values is not None:
            w_f = w_f * values
            V_rows = V_rows * values[:, :, None, None]
        y_hat = self.w0 + tf.reduce_sum(w_f, axis=1) + ffm_pairwise_unchecked(V_rows)
        return y_hat[:, None]

    def compute_output_shape(self, input_shape):
        shape = (
            input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        )
        return (shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "vocab_sizes": list(self.vocab_sizes)}


def build_ffm_model(
    vocab_sizes: Sequence[int],
    *,
    k: int = 4,
    with_values: bool = False,
    task: str = "regression",
    from_logits: bool = True,
    w0_init: float = 0.0,
    l2_w: float = 0.0,
    l2_v: float = 0.0,
    v_init_std: float = 0.01,
    seed: int | None = None,
    name: str = "ffm",
) -> FamilyModel:
    """Build an uncompiled field-aware FM over field ids (layer ``"ffm_layer"``).

    Arguments as in :func:`fmlib.build_fm_model` (field layout). The model is a
    :class:`fmlib.family.FamilyModel`: ids and values are checked before training and prediction.

    Example:
        >>> model = build_ffm_model([943, 1682, 7], k=4)
        >>> model.compile(optimizer="adam")
    """
    task, from_logits = check_output(task, from_logits)
    vocab_sizes = check_vocab_sizes(vocab_sizes)
    inputs = field_inputs(vocab_sizes, with_values)
    options = layer_options(k, w0_init, l2_w, l2_v, v_init_std, seed)
    output = FieldAwareFMLayer(vocab_sizes, name="ffm_layer", **options)(inputs)
    return FamilyModel(
        inputs,
        output_head(output, from_logits),
        name=name,
        task=task,
        from_logits=from_logits,
    )
