"""The settings of one gradient-training run, checked once by :func:`fmlib.fit` and handed
as one object to the epoch builders (:mod:`fmlib.learning.dense`,
:mod:`fmlib.learning.sparse`, :mod:`fmlib.learning.relational`; chapter "Learning")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GradientSettings:
    r"""What every minibatch epoch builder needs besides the model and the data.

    Each step minimises the mean loss of a batch plus :math:`\lambda_w \lVert \mathbf w
    \rVert^2 + \lambda_v \lVert \mathbf V \rVert_F^2` (chapter "Learning").

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        batch_size: rows per step (unused by a ``tf.data.Dataset``, whose batches are given).
        optimizer: a name (``"sgd"``, ``"adam"``, ``"adagrad"``) or a Keras optimizer.
        lr: learning rate of a named optimizer.
        lambda_w, lambda_v: L2 strengths of ``w`` and ``V``.
        updates: ``"dense"`` or ``"sparse"`` (row-sparse steps).
        regularization: which rows carry the penalty (``"global"``, ``"present"``,
            ``"occurrence"``).
        shuffle: reshuffle every epoch (or a :class:`fmlib.BlockChunks`).
        seed: seed of the shuffling.
        verbose: a progress bar per epoch (dense steps).
    """

    task: str
    batch_size: int
    optimizer: Any
    lr: float
    lambda_w: float
    lambda_v: float
    updates: str
    regularization: str
    shuffle: Any = True
    seed: int | None = None
    verbose: bool = False
