"""Divergence: the loss or the weights became NaN, infinite or too large to hold.

Every training loop of fmlib (gradient steps, coordinate descent, sampling, BPR, the
distributed loops) reports it the same way: :class:`TrainingDivergedError`, with advice that
quotes the arguments the user passed (chapter "Learning").
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite (usually: the learning rate is too large)."""


def advice(lr: Any) -> str:
    """What to try when training diverges: ``lr`` is None for solvers without a learning rate."""
    if lr is None:
        return "Try stronger regularisation (lambda_w, lambda_v)."
    return f"Try a smaller learning rate (lr={lr} now) or stronger regularisation."


def diverged(value: float, dtype: tf.DType) -> bool:
    """A loss is diverged when NaN, infinite, or beyond what the model's float dtype can hold."""
    return not (math.isfinite(value) and abs(value) <= np.finfo(dtype.as_numpy_dtype).max)


def check_weights_finite(variables, where: str, lr: Any) -> None:
    """Raise :class:`TrainingDivergedError` if any weight is NaN or infinite (one fused reduction)."""
    if not bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])):
        names = [v.name.split("/")[-1].split(":")[0] for v in variables
                 if not bool(tf.reduce_all(tf.math.is_finite(v)))]
        raise TrainingDivergedError(
            f"Training diverged {where}: the weights {names} hold NaN or infinite values. "
            + advice(lr))
