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


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C, SIGINT); the model holds the weights of the last
    completed step or epoch, as the message says.

    A ``KeyboardInterrupt``, so a script stops as on any Ctrl-C; catch it to keep the model::

        try:
            fmlib.fit(fm, X, y, num_epochs=1000)
        except fmlib.TrainingInterrupted as stop:
            print(stop)               # what was kept
            history = stop.history    # the completed epochs (a DataFrame, possibly empty)
        fm.save("fm.npz")

    Attributes:
        history: the history of the completed epochs (or sweeps), as the loop would have
            returned it; None where the loop keeps none.
    """

    def __init__(self, message: str, history: Any = None):
        super().__init__(message)
        self.history = history

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def advice(lr: Any) -> str:
    """What to try when training diverges: ``lr`` is None for solvers without a learning rate."""
    if lr is None:
        return "Try stronger regularisation (lambda_w, lambda_v)."
    return f"Try a smaller learning rate (lr={lr} now) or stronger regularisation."


def check_solver_weights(weights: dict, where: str, settings: str) -> None:
    """Raise :class:`TrainingDivergedError` if a solver's weights (``{"w0", "w", "V"}``, numpy)
    overflowed to NaN or infinity; ``settings`` quotes what the user passed (e.g.
    ``"lambda_w=0.0, lambda_v=0.0"``)."""
    bad = [name for name, value in weights.items() if not np.isfinite(value).all()]
    if bad:
        raise TrainingDivergedError(
            f"Training diverged {where}: the weights {bad} overflowed to NaN or infinite values "
            f"(with {settings}). The data is probably too large in magnitude for float64 "
            "products: scale X and y down (e.g. standardise them), or use stronger "
            "regularisation."
        )


def diverged(value: float, dtype: tf.DType) -> bool:
    """A loss is diverged when NaN, infinite, or beyond what the model's float dtype can hold."""
    return not (
        math.isfinite(value) and abs(value) <= np.finfo(dtype.as_numpy_dtype).max
    )


def check_weights_finite(
    variables, where: str, lr: Any, error: type = TrainingDivergedError
) -> None:
    """Raise ``error`` (:class:`TrainingDivergedError` or a subclass) if any weight is NaN
    or infinite (one fused reduction)."""
    if not bool(
        tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])
    ):
        names = [
            v.name.split("/")[-1].split(":")[0]
            for v in variables
            if not bool(tf.reduce_all(tf.math.is_finite(v)))
        ]
        raise error(
            f"Training diverged {where}: the weights {names} hold NaN or infinite values. "
            + advice(lr)
        )
