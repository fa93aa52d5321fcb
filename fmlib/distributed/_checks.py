"""Argument checks shared by the two distributed trainers (named, clear errors)."""

from __future__ import annotations

import tensorflow as tf

from fmlib.distributed.records import check_files
from fmlib.model.fm import FactorizationMachine
from fmlib.validation import check_int, check_learning_rate, check_seed


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
