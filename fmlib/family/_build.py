"""Argument checks and options shared by the FM family's model builders.

They mirror :func:`fmlib.build_fm_model`, so that the four models of the chapter "The FM
family" are built (and compared) with the same settings.
"""

from __future__ import annotations

import keras
import numpy as np

from fmlib.validation import check_bool, check_float, check_seed, check_task


def check_output(task, from_logits) -> tuple[str, bool]:
    """``(task, from_logits)`` checked as in :func:`fmlib.build_fm_model`."""
    task, from_logits = check_task(task), check_bool(from_logits, "from_logits")
    if task == "regression" and not from_logits:
        raise ValueError(
            "`from_logits=False` (a sigmoid output) is for "
            "task='classification'; got task='regression', whose output is "
            "the rating itself."
        )
    return task, from_logits


def layer_options(k, w0_init, l2_w, l2_v, v_init_std, seed) -> dict:
    """Initializers and regularizers of ``w0``, ``w`` and the factors, checked."""
    l2_w, l2_v = check_float(l2_w, "l2_w"), check_float(l2_v, "l2_v")
    w0 = check_float(w0_init, "w0_init", minimum=-np.inf)
    std = check_float(v_init_std, "v_init_std")
    return dict(
        k=k,
        w0_initializer=keras.initializers.Constant(w0),
        v_initializer=keras.initializers.RandomNormal(
            stddev=std, seed=check_seed(seed)
        ),
        w_regularizer=keras.regularizers.L2(l2_w) if l2_w else None,
        v_regularizer=keras.regularizers.L2(l2_v) if l2_v else None,
    )


def field_inputs(vocab_sizes, with_values) -> list | keras.KerasTensor:
    """``ids`` (and ``values`` if ``with_values``) Keras inputs for ``F`` fields."""
    F = len(vocab_sizes)
    ids = keras.Input(shape=(F,), dtype="int64", name="ids")
    if check_bool(with_values, "with_values"):
        return [ids, keras.Input(shape=(F,), name="values")]
    return ids


def output_head(output, from_logits: bool):
    """The logit itself, or a sigmoid layer ``"probability"`` on it."""
    if from_logits:
        return output
    return keras.layers.Activation("sigmoid", name="probability")(output)
