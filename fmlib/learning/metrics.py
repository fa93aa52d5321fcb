"""Metrics of a trained model: the loss and RMSE (regression) or accuracy (classification).

One definition for every solver and loop (chapter "Learning"): regression reports the mean
squared error and its root; classification the mean logistic loss of the score (a logit) and
the share of rows whose score has the sign of the label.
"""

from __future__ import annotations

import math

import numpy as np

from fmlib.model.fm import FactorizationMachine
from fmlib.validation import (
    as_host_matrix,
    as_labels,
    as_targets,
    check_int,
    resolve_task,
)


def rmse(y: np.ndarray, y_hat: np.ndarray, overwrite: bool = False) -> float:
    """Root mean squared error; ``overwrite``: ``y_hat`` is a scratch array (the errors are
    formed in it, so that N values cost no second array of N)."""
    err = np.subtract(y, y_hat, out=y_hat if overwrite else None)
    return float(np.sqrt(np.mean(np.square(err, out=err))))


def accuracy(y: np.ndarray, score: np.ndarray) -> float:
    """Share of rows whose score is positive exactly when the label is 1 (labels in {0, 1};
    the score a logit, or a probit score, both positive for the class 1)."""
    return float(np.mean((score > 0) == (y > 0.5)))


def metrics(task: str, y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """``{"loss": MSE, "rmse": RMSE}`` (regression) or ``{"loss": mean logistic loss,
    "accuracy": ...}`` (classification, ``y_hat`` a logit) of predictions ``y_hat``."""
    if task == "regression":
        mse = float(np.mean((y - y_hat) ** 2))
        return {"loss": mse, "rmse": math.sqrt(mse)}
    # logistic loss, stable: log(1 + exp(-s)) with s = (2y-1) * y_hat
    s = (2 * y - 1) * y_hat
    loss = float(np.mean(np.logaddexp(0.0, -s)))
    return {"loss": loss, "accuracy": accuracy(y, y_hat)}


def evaluate(
    model: FactorizationMachine, X, y, task: str | None = None, batch_size: int = 8192
) -> dict[str, float]:
    """Loss and RMSE (regression) or accuracy (classification) of ``model`` on ``(X, y)``.

    Regression: ``{"loss": MSE, "rmse": RMSE}``; classification: ``{"loss": mean logistic
    loss, "accuracy": share of rows with ŷ > 0 exactly when y = 1}`` (chapter "Learning").

    Args:
        task: None (default) follows ``model.task`` (regression for a model without one);
            a task that contradicts ``model.task`` is a ``ValueError``.
    """
    if not isinstance(model, FactorizationMachine):
        raise TypeError(
            f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}."
        )
    task = resolve_task(model.task, task, "evaluate")
    Xh = as_host_matrix(X, model.n_features, model.dtype, name="X", min_rows=1)
    yh = as_labels(as_targets(y, Xh.shape[0], name="y"), task, "y")
    return metrics(
        task, yh, model._predict_host(Xh, check_int(batch_size, "batch_size"))
    )
