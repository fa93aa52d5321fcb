"""The epoch loop every solver shares: validation, early stopping, divergence, the history.

A solver prepares ``run_epoch()`` (one pass over the data, returning its training loss) and
hands it to :func:`run_epochs` (chapter "Learning"). The gradient solvers, ALS and BPR
(:mod:`fmlib.ranking.bpr`) all train through it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
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


@dataclass
class EpochWatch:
    """What the loop watches besides the training loss, for solvers whose validation is not
    ``fmlib.learning.metrics.metrics`` of ``(X_val, y_val)`` (e.g. BPR's HR@k/NDCG@k).

    Attributes:
        evaluate: returns the validation metrics after an epoch (recorded as ``val_<name>``);
            None: the loop's own metrics of ``validation``.
        monitor: the history column early stopping watches.
        higher_is_better: whether a larger ``monitor`` is better (NDCG) or a smaller (a loss).
        error: the :class:`~fmlib.TrainingDivergedError` subclass raised on divergence.
        name: how messages name the training (``"Training"``, ``"BPR training"``).
        seconds_column: record each epoch's seconds as a history column ``seconds`` (besides
            ``history.attrs["epoch_seconds"]``).
    """

    evaluate: Callable[[], dict] | None = None
    monitor: str = "val_loss"
    higher_is_better: bool = False
    error: type[TrainingDivergedError] = TrainingDivergedError
    name: str = "Training"
    seconds_column: bool = False


@dataclass
class _Progress:
    """The loop's state across epochs: the history rows and early stopping's best so far."""

    rows: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best: float = math.inf
    best_epoch: int | None = None
    best_weights: list | None = None
    waited: int = 0


def run_epochs(
    model: FactorizationMachine,
    run_epoch: Callable[[], float],
    num_epochs: int,
    task: str,
    validation: tuple | None,
    patience: int | None,
    verbose: bool,
    lr: Any,
    watch: EpochWatch | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """The epoch loop every solver shares: validation, early stopping, the history table.

    Ctrl-C (``KeyboardInterrupt``) raises ``TrainingInterrupted`` with the history of the
    completed epochs. If ``run_epoch`` changes the weights only in whole steps (its attribute
    ``whole_steps`` is True: each step one compiled call, which an interrupt cannot split), the
    model keeps the weights of its last completed step; otherwise those of the last completed
    epoch, restored from a copy taken before each epoch. ``watch`` (an :class:`EpochWatch`)
    replaces the validation metrics, the early-stopping column and the divergence error.
    ``validation`` is ``(X_val, y_val)`` (a solver that evaluates otherwise, e.g. the
    distributed trainers on files, passes ``watch.evaluate``); ``on_epoch`` is called with
    each history row as it is recorded.
    """
    watch = watch or EpochWatch()
    variables = [model.w0, model.w, model.V]
    state = _Progress()
    whole_steps = getattr(run_epoch, "whole_steps", False)
    for epoch in range(1, num_epochs + 1):
        before = None
        try:
            before = None if whole_steps else [v.numpy() for v in variables]
            stop = _one_epoch(
                model, run_epoch, epoch, num_epochs, task, validation, patience,
                verbose, lr, watch, state, on_epoch,
            )  # fmt: skip
        except KeyboardInterrupt:
            if not whole_steps:
                if before is not None and len(state.rows) < epoch:  # not recorded
                    for var, value in zip(variables, before):
                        var.assign(value)
                kept = (
                    f"the weights after epoch {len(state.rows)}, its last completed epoch"
                    if state.rows
                    else "the weights it had before fit"
                )
            else:
                kept = "the weights of its last completed step"
            raise TrainingInterrupted(
                f"{watch.name} was interrupted (Ctrl-C) during epoch {epoch} of "
                f"{num_epochs}; the model keeps {kept}. The {len(state.rows)} completed "
                "epoch(s) are in this exception's `history`.",
                _history(state, state.rows),
            ) from None
        if stop:
            break
    if patience is not None and state.best_weights is not None:
        for var, value in zip(variables, state.best_weights):
            var.assign(value)
    history = _history(state, state.rows)
    if patience is not None:
        history.attrs["best_epoch"] = state.best_epoch
    return history


def _history(state: _Progress, rows: list) -> pd.DataFrame:
    """The history table of ``rows`` (an empty one, with a ``loss`` column, for none)."""
    history = (
        pd.DataFrame(rows).set_index("epoch")
        if rows
        else pd.DataFrame(columns=["loss"], index=pd.Index([], name="epoch"))
    )
    history.attrs["epoch_seconds"] = state.seconds[: len(rows)]
    return history


def _one_epoch(
    model, run_epoch, epoch, num_epochs, task, validation, patience, verbose, lr,
    watch, state, on_epoch=None,
) -> bool:  # fmt: skip
    """One epoch of :func:`run_epochs`: train, validate, check, record; returns whether
    early stopping says stop."""
    variables = [model.w0, model.w, model.V]
    started = time.perf_counter()
    train_loss = run_epoch()
    state.seconds.append(time.perf_counter() - started)
    check_weights_finite(variables, f"in epoch {epoch}", lr, error=watch.error)
    row = {"epoch": epoch, "loss": train_loss}
    if watch.seconds_column:
        row["seconds"] = state.seconds[-1]
    if watch.evaluate is not None:
        row.update({f"val_{key}": value for key, value in watch.evaluate().items()})
    elif validation is not None:
        val = metrics(task, validation[1], model._predict_host(validation[0], 8192))
        row.update({f"val_{key}": value for key, value in val.items()})
    for key in ("loss", "val_loss"):
        if key in row and diverged(row[key], model.dtype):
            raise watch.error(
                f"{watch.name} diverged in epoch {epoch}: the {LOSS_NAMES[key]} became "
                f"{row[key]:.4g}. " + advice(lr)
            )
    state.rows.append(row)
    if on_epoch is not None:
        on_epoch(row)
    if verbose:
        print(
            f"epoch {epoch}/{num_epochs}: "
            + ", ".join(
                f"{key}={value:.4f}" for key, value in row.items() if key != "epoch"
            )
        )
    return patience is not None and _wait(row, epoch, patience, watch, state, variables)


def _wait(row, epoch, patience, watch, state, variables) -> bool:
    """Early stopping: keep the best epoch's weights; True after ``patience`` epochs without
    a better ``watch.monitor``."""
    score = -row[watch.monitor] if watch.higher_is_better else row[watch.monitor]
    if score < state.best:
        state.best, state.best_epoch, state.waited = score, epoch, 0
        state.best_weights = [v.numpy() for v in variables]
        return False
    state.waited += 1
    return state.waited >= patience
