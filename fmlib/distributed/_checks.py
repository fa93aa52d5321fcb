"""Argument checks shared by the two distributed trainers (named, clear errors)."""

from __future__ import annotations

import tensorflow as tf

from fmlib.distributed.lookup import TASKS
from fmlib.distributed.records import check_files
from fmlib.learning.lazy_optimizers import LAZY_OPTIMIZERS
from fmlib.learning.sparse import REGULARIZATIONS
from fmlib.model.fm import FactorizationMachine
from fmlib.validation import (
    check_float,
    check_int,
    check_learning_rate,
    check_seed,
    resolve_task,
)


def check_training(
    model, train_files, validation_files, num_epochs, batch_size, lr, seed
):
    """Checked ``(train_files, validation_files, num_epochs, batch_size, lr, seed)``."""
    if not isinstance(model, FactorizationMachine):
        raise TypeError(
            f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}."
        )
    if model.dtype != tf.float32:
        raise ValueError(
            f"distributed training uses float32 records; got a {model.dtype.name} "
            "model. Create it with dtype=tf.float32."
        )
    if model.pairwise != "fast":
        raise ValueError(
            "distributed training evaluates Lemma 3.1 (pairwise='fast'); got "
            f"pairwise={model.pairwise!r}."
        )
    train_files = check_files(train_files, "train_files")
    if validation_files is not None:
        validation_files = check_files(validation_files, "validation_files")
    lr = check_learning_rate(lr)
    return (
        train_files,
        validation_files,
        check_int(num_epochs, "num_epochs"),
        check_int(batch_size, "batch_size"),
        lr,
        check_seed(seed),
    )


def check_created_in(strategy: tf.distribute.Strategy, model) -> None:
    """The model's variables must have been created under ``strategy.scope()``."""
    if not strategy.extended.variable_created_in_scope(model.V):
        raise ValueError(
            "`model` was not created under `strategy.scope()`: create the "
            "FactorizationMachine inside `with strategy.scope():` so that its "
            "variables are mirrored or sharded."
        )


def check_optimization(
    model, optimizer, regularization, lambda_w, lambda_v, task, what: str
) -> tuple:
    """Checked ``(optimizer, regularization, lambda_w, lambda_v, task)``, named as in
    :func:`fmlib.fit` with ``updates="sparse"``; ``task`` None follows ``model.task``."""
    if not (isinstance(optimizer, str) and optimizer.lower() in LAZY_OPTIMIZERS):
        raise ValueError(
            f"`optimizer` must be one of {sorted(LAZY_OPTIMIZERS)} (their lazy, "
            f"row-sparse form); got {optimizer!r}."
        )
    optimizer = optimizer.lower()
    if regularization not in REGULARIZATIONS:
        raise ValueError(
            f"`regularization` must be one of {REGULARIZATIONS}; got {regularization!r}."
        )
    if regularization == "global" and optimizer != "sgd":
        raise ValueError(
            "regularization='global' needs optimizer='sgd': the global penalty has a "
            f"gradient in every row, which lazy {optimizer} cannot apply; got "
            f"optimizer={optimizer!r}. Use regularization='present' or 'occurrence'."
        )
    task = resolve_task(model.task, task, what)
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}; got {task!r}.")
    return (
        optimizer,
        regularization,
        check_float(lambda_w, "lambda_w"),
        check_float(lambda_v, "lambda_v"),
        task,
    )
