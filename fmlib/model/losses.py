r"""Losses and the L2 penalty used to train a Factorization Machine.

Chapter "Learning" derives them:

* squared loss (regression): :math:`\ell(\hat y, y) = (\hat y - y)^2`;
* logistic loss (binary classification, :math:`y \in \{0, 1\}`):
  :math:`\ell(\hat y, y) = -y\log\sigma(\hat y) - (1-y)\log(1-\sigma(\hat y))`,
  which for labels :math:`\pm 1` is :math:`\ln(1 + e^{-y \hat y})` (Rendle 2010, §III.B);
* L2 penalty with separate strengths for the linear weights and the factors,
  as in libFM: :math:`\lambda_w \lVert \mathbf w\rVert^2 + \lambda_v \lVert \mathbf V\rVert_F^2`.

Both losses flatten ``y_true`` and ``y_pred`` to shape ``(N,)`` after checking
that they hold the same number of values, so a ``(N, 1)`` target and a ``(N,)``
prediction never broadcast silently to ``(N, N)``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fmlib.validation import check_float


def _flat_pair(y_true, y_pred) -> tuple[tf.Tensor, tf.Tensor]:
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(tf.convert_to_tensor(y_true), y_pred.dtype)
    for name, t in (("y_true", y_true), ("y_pred", y_pred)):
        if (
            t.shape.rank is not None
            and t.shape.rank == 2
            and t.shape[1] not in (1, None)
        ):
            raise ValueError(
                f"`{name}` must have shape (N,) or (N, 1); got {tuple(t.shape)}."
            )
    y_true = tf.reshape(y_true, [-1])
    y_pred = tf.reshape(y_pred, [-1])
    n_true, n_pred = y_true.shape[0], y_pred.shape[0]
    if n_true is not None and n_pred is not None and n_true != n_pred:
        raise ValueError(
            f"`y_true` has {n_true} values but `y_pred` has {n_pred}; they must match."
        )
    return y_true, y_pred


def l2_loss(y_true, y_pred) -> tf.Tensor:
    r"""Mean squared error :math:`\frac1N \sum_i (y_i - \hat y_i)^2` (the original project's name)."""
    y_true, y_pred = _flat_pair(y_true, y_pred)
    return tf.reduce_mean(tf.square(y_true - y_pred))


def logistic_loss(y_true, y_pred) -> tf.Tensor:
    r"""Mean logistic loss for labels in {0, 1} and logits ``y_pred``.

    Computed as ``sigmoid_cross_entropy_with_logits``, which is stable for large
    :math:`|\hat y|`.
    """
    y_true, y_pred = _flat_pair(y_true, y_pred)
    if (
        tf.executing_eagerly()
    ):  # in fit's compiled step the labels were checked before training
        labels = np.unique(y_true.numpy())
        if not set(labels.tolist()) <= {0.0, 1.0}:
            raise ValueError(
                "`y_true` of the logistic loss must be labels in {0, 1}; got values "
                f"{labels[:6].tolist()}{' ...' if labels.size > 6 else ''}."
            )
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
    )


def l2_penalty(model, lambda_w: float = 0.0, lambda_v: float = 0.0) -> tf.Tensor:
    r""":math:`\lambda_w \lVert \mathbf w\rVert^2 + \lambda_v \lVert \mathbf V\rVert_F^2` (``w0`` is not penalised).

    ``lambda_w`` and ``lambda_v`` are finite numbers >= 0 (a negative strength would reward
    large weights).
    """
    lambda_w, lambda_v = (
        check_float(lambda_w, "lambda_w"),
        check_float(lambda_v, "lambda_v"),
    )
    return l2_penalty_unchecked(
        model, tf.cast(lambda_w, model.dtype), tf.cast(lambda_v, model.dtype)
    )


def l2_penalty_unchecked(model, lambda_w: tf.Tensor, lambda_v: tf.Tensor) -> tf.Tensor:
    """:func:`l2_penalty` for strengths already checked and given as tensors of the model's dtype
    (the compiled step of :func:`fmlib.fit` takes them as arguments, so that new strengths
    do not retrace it)."""
    return lambda_w * tf.reduce_sum(tf.square(model.w)) + lambda_v * tf.reduce_sum(
        tf.square(model.V)
    )
