r"""DeepFM: an FM and a deep network on one shared embedding (chapter "The FM family").

Guo, Tang, Ye, Li and He (IJCAI 2017), eq. (1)-(4): for categorical fields with one active
feature :math:`i_f` each (value :math:`x_f`), the embedding of field :math:`f` is
:math:`\mathbf e_f = x_f \mathbf v_{i_f}`, the FM's own factor vector. Both parts read it:

.. math::

    y_{FM} = w_0 + \sum_f w_{i_f} x_f
        + \sum_{f<g} \langle \mathbf e_f, \mathbf e_g \rangle, \qquad
    y_{DNN} = \text{MLP}([\mathbf e_1, \dots, \mathbf e_F]), \qquad
    \hat y = y_{FM} + y_{DNN}

(the paper applies a sigmoid to :math:`\hat y` for clicks). Training both on one loss lets
the deep part learn interactions the inner products miss, while the FM part keeps the
low-order ones cheap; with the deep part's output layer at zero, DeepFM *is* the FM.
"""

from __future__ import annotations

from typing import Sequence

import keras
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
from fmlib.validation import check_float, check_int, check_seed


@keras.saving.register_keras_serializable(package="fmlib")
class FieldEmbedding(FMWeights):
    r"""The FM's first-order part and embeddings for field ids, shared by DeepFM's two parts.

    Holds ``w0``, ``w`` ``(n,)`` and ``V`` ``(n, k)`` exactly as :class:`fmlib.FieldFMLayer`
    (same rows ``offset_f + id_f``, same checks) and returns

    * ``first_order``: :math:`w_0 + \sum_f w_{i_f} x_f`, shape ``(batch, 1)``;
    * ``embeddings``: :math:`\mathbf e_f = x_f \mathbf v_{i_f}`, shape ``(batch, F, k)``.

    Args:
        vocab_sizes: ids per field. k, initializers, regularizers: as in
            :class:`fmlib.FMLayer`.
    """

    def __init__(self, vocab_sizes: Sequence[int], k: int = 8, **kwargs):
        super().__init__(k=k, **kwargs)
        self.vocab_sizes = check_vocab_sizes(vocab_sizes)

    def build(self, input_shape):
        check_ids_shape(input_shape, self.vocab_sizes)
        self._add_fm_weights(int(sum(self.vocab_sizes)))

    def call(self, inputs):
        ids, values = checked_field_inputs(self, inputs)
        rows = feature_rows(ids, self.vocab_sizes)
        w_f, e = tf.gather(self.w, rows), tf.gather(self.V, rows)  # (b, F), (b, F, k)
        if values is not None:
            w_f, e = w_f * values, e * values[:, :, None]
        return [(self.w0 + tf.reduce_sum(w_f, axis=1))[:, None], e]

    def compute_output_shape(self, input_shape):
        shape = (
            input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        )
        return [(shape[0], 1), (shape[0], len(self.vocab_sizes), self.k)]

    def get_config(self):
        return {**super().get_config(), "vocab_sizes": list(self.vocab_sizes)}


@keras.saving.register_keras_serializable(package="fmlib")
class PairwiseInteraction(keras.layers.Layer):
    r"""The FM's pairwise term from embeddings: ``(batch, F, k)`` → ``(batch, 1)``.

    .. math::

        \sum_{f<g} \langle \mathbf e_f, \mathbf e_g \rangle
        = \tfrac12 \sum_{q=1}^{k} \Big[\Big(\sum_f e_{f,q}\Big)^2 - \sum_f e_{f,q}^2\Big]

    Rendle (2010), Lemma 3.1, on the embeddings: O(k F). No weights.
    """

    def call(self, embeddings):
        square_of_sum = tf.square(tf.reduce_sum(embeddings, axis=1))
        sum_of_square = tf.reduce_sum(tf.square(embeddings), axis=1)
        return 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def _check_hidden(hidden_units) -> list[int]:
    if isinstance(hidden_units, (str, bytes)) or not hasattr(hidden_units, "__iter__"):
        raise TypeError(
            "`hidden_units` must be a list of layer widths, e.g. [64, 32]; "
            f"got {type(hidden_units).__name__} {hidden_units!r}."
        )
    return [check_int(h, "hidden_units[i]") for h in hidden_units]


def build_deepfm_model(
    vocab_sizes: Sequence[int],
    *,
    k: int = 8,
    hidden_units: Sequence[int] = (64, 32),
    dropout: float = 0.0,
    l2_deep: float = 0.0,
    with_values: bool = False,
    task: str = "regression",
    from_logits: bool = True,
    w0_init: float = 0.0,
    l2_w: float = 0.0,
    l2_v: float = 0.0,
    v_init_std: float = 0.01,
    seed: int | None = None,
    name: str = "deepfm",
) -> FamilyModel:
    r"""Build an uncompiled DeepFM (Guo et al. 2017) over field ids.

    Layers: ``"embedding"`` (:class:`fmlib.family.FieldEmbedding`: the FM's ``w0``,
    ``w``, ``V``), ``"pairwise"`` (:class:`fmlib.family.PairwiseInteraction`), the deep
    part ``"deep_0"``, ... (``Dense`` with ReLU, optional ``Dropout``) ending in
    ``"deep_output"`` (``Dense(1)``), and their sum :math:`\hat y = y_{FM} + y_{DNN}`.
    Setting ``"deep_output"``'s weights to zero leaves exactly the FM of
    :class:`fmlib.FieldFMLayer`.

    Args:
        vocab_sizes: ids per field.
        k: embedding size (the FM's factors).
        hidden_units: widths of the deep part's hidden layers (may be empty: a linear
            read-out of the embeddings).
        dropout: dropout rate after each hidden layer, in [0, 1).
        l2_deep: L2 strength on the deep part's kernels.
        with_values, task, from_logits, w0_init, l2_w, l2_v, v_init_std, seed: as in
            :func:`fmlib.build_fm_model`; ``seed`` also seeds the deep part.

    Example:
        >>> model = build_deepfm_model([943, 1682], k=8, hidden_units=[32])
        >>> model.compile(optimizer="adam")      # task's loss: mse
    """
    task, from_logits = check_output(task, from_logits)
    vocab_sizes, hidden = check_vocab_sizes(vocab_sizes), _check_hidden(hidden_units)
    dropout = check_float(dropout, "dropout")
    if dropout >= 1:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
    l2_deep, seed = check_float(l2_deep, "l2_deep"), check_seed(seed)
    inputs = field_inputs(vocab_sizes, with_values)
    options = layer_options(k, w0_init, l2_w, l2_v, v_init_std, seed)
    first_order, e = FieldEmbedding(vocab_sizes, name="embedding", **options)(inputs)
    pairwise = PairwiseInteraction(name="pairwise")(e)
    h = keras.layers.Flatten(name="concat_embeddings")(e)
    reg = keras.regularizers.L2(l2_deep) if l2_deep else None
    for i, width in enumerate(hidden):
        h = keras.layers.Dense(
            width,
            activation="relu",
            kernel_regularizer=reg,
            kernel_initializer=_glorot(seed, i),
            name=f"deep_{i}",
        )(h)
        if dropout:
            h = keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{i}")(h)
    deep = keras.layers.Dense(
        1,
        kernel_regularizer=reg,
        name="deep_output",
        kernel_initializer=_glorot(seed, len(hidden)),
    )(h)
    output = keras.layers.Add(name="y_hat")([first_order, pairwise, deep])
    return FamilyModel(
        inputs,
        output_head(output, from_logits),
        name=name,
        task=task,
        from_logits=from_logits,
    )


def _glorot(seed: int | None, i: int):
    return keras.initializers.GlorotUniform(seed=None if seed is None else seed + 1 + i)
