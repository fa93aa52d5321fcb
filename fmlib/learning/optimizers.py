"""The dense optimizers of ``fit(updates="dense")``, by name (chapter "Learning").

The lazy, row-sparse versions are in :mod:`fmlib.learning.lazy_optimizers`.
"""

from __future__ import annotations

import keras

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adagrad": keras.optimizers.Adagrad,
}


def check_unused_or_ours(
    opt: keras.optimizers.Optimizer, variables: list
) -> keras.optimizers.Optimizer:
    """A Keras optimizer keeps per-variable state: one already built for another model is refused."""
    own = getattr(opt, "_trainable_variables", None)
    if (
        opt.built
        and own is not None
        and {id(v) for v in own} != {id(v) for v in variables}
    ):
        raise ValueError(
            "`optimizer` is a Keras optimizer already used for another model's weights; "
            "pass a new instance (or a name such as 'adam') for each model."
        )
    return opt
