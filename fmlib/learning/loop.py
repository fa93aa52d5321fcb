"""The epoch loop every solver shares: validation, early stopping, divergence, the history.

A solver prepares ``run_epoch()`` (one pass over the data, returning its training loss) and
hands it to :func:`run_epochs` (chapter "Learning").
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import pandas as pd

from fmlib.learning.divergence import (
    TrainingDivergedError,
    TrainingInterrupted,
    advice,
    check_weights_finite,
    diverged,
)
from fmlib.learning.metrics import metrics
from fmlib.model.fm import FactorizationMachine

LOSS_NAMES = {"loss": "training loss", "val_loss": "validation loss"}


def run_epochs(
    model: FactorizationMachine,
    run_epoch: Callable[[], float],
    num_epochs: int,
    task: str,
    validation: tuple | None,
    patience: int | None,
    verbose: bool,
    lr: Any,
    on_epoch: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """The epoch loop every solver shares: validation, early stopping, the history table.

    ``validation`` is ``(X_val, y_val)``, or a function returning the validation metrics
    of the model as it is (``{"loss": ..., "rmse" or "accuracy": ...}``, e.g. read from
    files by ``fmlib.distributed``), or None. ``on_epoch`` is called with each history row.

    Ctrl-C (``KeyboardInterrupt``) raises :class:`TrainingInterrupted` with the history of the
    completed epochs. If ``run_epoch`` changes the weights only in whole steps (its attribute
    ``whole_steps`` is True: each step one compiled call, which an interrupt cannot split), the
    model keeps the weights of its last completed step; otherwise those of the last completed
    epoch, restored from a copy taken before each epoch.
    """
    variables = [model.w0, model.w, model.V]
    rows, seconds, best, best_weights_box, best_epoch, waited = (
        [],
        [],
        math.inf,
        [None],
        None,
        0,
    )
    whole_steps = getattr(run_epoch, "whole_steps", False)

    def history_of(rows) -> pd.DataFrame:
        history = (
            pd.DataFrame(rows).set_index("epoch")
            if rows
            else pd.DataFrame(columns=["loss"], index=pd.Index([], name="epoch"))
        )
        history.attrs["epoch_seconds"] = seconds[: len(rows)]
        return history

    for epoch in range(1, num_epochs + 1):
        before = None
        try:
            before = None if whole_steps else [v.numpy() for v in variables]
            best, best_epoch, waited, stop = _one_epoch(
                model,
                run_epoch,
                epoch,
                num_epochs,
                task,
                validation,
                patience,
                verbose,
                lr,
                rows,
                seconds,
                best,
                best_epoch,
                waited,
                best_weights_box,
                on_epoch,
            )
        except KeyboardInterrupt:
            if not whole_steps:
                if before is not None and len(rows) < epoch:  # this epoch not recorded
                    for var, value in zip(variables, before):
                        var.assign(value)
                kept = (
                    f"the weights after epoch {len(rows)}, its last completed epoch"
                    if rows
                    else "the weights it had before fit"
                )
            else:
                kept = "the weights of its last completed step"
            raise TrainingInterrupted(
                f"Training was interrupted (Ctrl-C) during epoch {epoch} of {num_epochs}; the "
                f"model keeps {kept}. The {len(rows)} completed epoch(s) are in this "
                "exception's `history`.",
                history_of(rows),
            ) from None
        if stop:
            break
    best_weights = best_weights_box[0]
    if patience is not None and best_weights is not None:
        for var, value in zip(variables, best_weights):
            var.assign(value)
    history = pd.DataFrame(rows).set_index("epoch")
    history.attrs["epoch_seconds"] = seconds
    if patience is not None:
        history.attrs["best_epoch"] = best_epoch
    return history


def _one_epoch(
    model,
    run_epoch,
    epoch,
    num_epochs,
    task,
    validation,
    patience,
    verbose,
    lr,
    rows,
    seconds,
    best,
    best_epoch,
    waited,
    best_weights_box,
    on_epoch=None,
):
    """One epoch of :func:`run_epochs`: train, validate, check, record; returns
    ``(best, best_epoch, waited, stop)`` (``stop``: early stopping says so)."""
    variables = [model.w0, model.w, model.V]
    started = time.perf_counter()
    train_loss = run_epoch()
    seconds.append(time.perf_counter() - started)
    check_weights_finite(variables, f"in epoch {epoch}", lr)
    row = {"epoch": epoch, "loss": train_loss}
    if validation is not None:
        val = (
            validation()
            if callable(validation)
            else metrics(task, validation[1], model._predict_host(validation[0], 8192))
        )
        row.update({f"val_{key}": value for key, value in val.items()})
    for key in ("loss", "val_loss"):
        if key in row and diverged(row[key], model.dtype):
            raise TrainingDivergedError(
                f"Training diverged in epoch {epoch}: the {LOSS_NAMES[key]} became "
                f"{row[key]:.4g}. " + advice(lr)
            )
    rows.append(row)
    if on_epoch is not None:
        on_epoch(row)
    if verbose:
        print(
            f"epoch {epoch}/{num_epochs}: "
            + ", ".join(
                f"{key}={value:.4f}" for key, value in row.items() if key != "epoch"
            )
        )
    if patience is not None:
        if row["val_loss"] < best:
            best, best_epoch, waited = row["val_loss"], epoch, 0
            best_weights_box[0] = [v.numpy() for v in variables]
        else:
            waited += 1
            if waited >= patience:
                return best, best_epoch, waited, True
    return best, best_epoch, waited, False
