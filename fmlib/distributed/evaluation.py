"""Validation metrics and the per-epoch history table shared by both distributed trainers.

The table has the columns of :func:`fmlib.fit` (``loss``, ``val_loss`` and ``val_rmse``
or ``val_accuracy``, indexed by ``epoch``). Chapter "Training on several machines".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from fmlib.distributed.lookup import fm_score_rows
from fmlib.distributed.records import read_batches
from fmlib.learning.loop import EpochWatch, run_epochs
from fmlib.learning.metrics import metrics

EVAL_BATCH = 8192


def evaluate_files(
    model, files, batch_size: int = EVAL_BATCH, task: str = "regression"
) -> dict[str, float]:
    """The metrics of :func:`fmlib.evaluate` for ``model`` (its ``w0``, ``w``, ``V``; plain,
    mirrored or sharded variables) on the examples of TFRecord ``files``, read in order:
    ``{"loss": MSE, "rmse": RMSE}``, or for ``task="classification"`` ``{"loss": mean
    logistic loss, "accuracy": ...}`` (labels {0, 1} or {-1, +1}; ``fmlib.learning.metrics``)."""

    @tf.function
    def scores(batch):
        return fm_score_rows(model.w0, model.w, model.V, batch)

    ys, y_hats = [], []
    for batch in read_batches(files, batch_size):
        ys.append(batch.y.numpy())
        y_hats.append(scores(batch).numpy())
    y = np.concatenate(ys).astype(np.float64)
    if task == "classification":
        y = (y > 0).astype(np.float64)
    return metrics(task, y, np.concatenate(y_hats).astype(np.float64))


def train_epochs(
    model, run_epoch, num_epochs, task, validation_files, lr, on_epoch
) -> pd.DataFrame:
    """``num_epochs`` of ``run_epoch()`` through the shared epoch loop
    (:func:`fmlib.learning.loop.run_epochs`: history, divergence as
    ``TrainingDivergedError``), validated on ``validation_files`` after every epoch.

    Each step is one compiled call (``whole_steps``): on Ctrl-C the model keeps the weights
    of its last step, since mirrored or sharded weights are not copied back.
    """
    run_epoch.whole_steps = True
    watch = EpochWatch(
        evaluate=None
        if validation_files is None
        else lambda: evaluate_files(model, validation_files, task=task)
    )
    return run_epochs(
        model, run_epoch, num_epochs, task, None, None, False, lr, watch, on_epoch
    )


def history_frame(
    rows: list[dict], epoch_seconds: list[float] | None = None
) -> pd.DataFrame:
    """The rows as :func:`fmlib.fit` returns them: a DataFrame indexed by epoch, with the
    seconds of each epoch's training steps in ``attrs["epoch_seconds"]`` (not a column, so
    that printed histories stay reproducible)."""
    history = pd.DataFrame(rows).set_index("epoch")
    history.attrs["epoch_seconds"] = list(epoch_seconds or [])
    return history
