"""Validation metrics and the per-epoch history table shared by both distributed trainers.

The table has the columns of :func:`fmlib.fit` for regression (``loss``, ``val_loss``,
``val_rmse``, indexed by ``epoch``). Chapter "Training on several machines".
"""

from __future__ import annotations

import math

import pandas as pd
import tensorflow as tf

from fmlib.distributed.lookup import squared_error_sum
from fmlib.distributed.records import read_batches

EVAL_BATCH = 8192


def evaluate_files(model, files, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """``{"loss": MSE, "rmse": RMSE}`` of ``model`` (its ``w0``, ``w``, ``V``; plain, mirrored
    or sharded variables) on the examples of TFRecord ``files``, read in order."""
    total, count = 0.0, 0.0

    @tf.function
    def batch_sums(batch):
        return squared_error_sum(model.w0, model.w, model.V, batch)

    for batch in read_batches(files, batch_size):
        sse, n = batch_sums(batch)
        total, count = total + float(sse), count + float(n)
    mse = total / count
    return {"loss": mse, "rmse": math.sqrt(mse)}


def epoch_row(epoch: int, train_loss: float, model, validation_files) -> dict:
    """One row of the history: the epoch, its mean training loss, validation metrics."""
    row = {"epoch": epoch, "loss": train_loss}
    if validation_files is not None:
        row.update(
            {
                f"val_{key}": value
                for key, value in evaluate_files(model, validation_files).items()
            }
        )
    return row


def history_frame(
    rows: list[dict], epoch_seconds: list[float] | None = None
) -> pd.DataFrame:
    """The rows as :func:`fmlib.fit` returns them: a DataFrame indexed by epoch, with the
    seconds of each epoch's training steps in ``attrs["epoch_seconds"]`` (not a column, so
    that printed histories stay reproducible)."""
    history = pd.DataFrame(rows).set_index("epoch")
    history.attrs["epoch_seconds"] = list(epoch_seconds or [])
    return history
