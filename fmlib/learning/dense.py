r"""Training a Factorization Machine with ``tf.GradientTape``: dense steps.

Two entry points, both explained in the chapter "Learning":

* :func:`train_step`: one plain gradient-descent step on a batch, written
  out in full:
  :math:`\theta \leftarrow \theta - \eta\, \partial \ell / \partial \theta`
  for :math:`\theta \in \{w_0, \mathbf w, \mathbf V\}`.
* :func:`gradient_epochs`: minibatch training with a compiled step and any Keras
  optimizer, the epochs of ``fit(updates="dense")``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.learning.divergence import (
    TrainingDivergedError,
    advice,
    check_weights_finite,
    diverged,
)
from fmlib.learning.optimizers import OPTIMIZERS, check_unused_or_ours
from fmlib.learning.settings import GradientSettings
from fmlib.model.fm import FactorizationMachine
from fmlib.model.losses import l2_loss, l2_penalty_unchecked, logistic_loss
from fmlib.validation import as_batch, as_targets, check_learning_rate, iter_batches


def train_step(
    mod: FactorizationMachine,
    x,
    y_true,
    lr: float,
    loss_f: Callable = l2_loss,
    loss_f_kwargs: dict[str, Any] | None = None,
) -> tf.Tensor:
    r"""One step of plain gradient descent on the batch ``(x, y_true)``; returns the loss.

    .. math::

        & \theta \leftarrow \theta - \eta\, \frac{\partial}{\partial\theta}
        \frac1N \sum_{i=1}^{N} \ell\big(\hat y(\mathbf x_i), y_i\big), \\
        & \theta \in \{w_0, \mathbf w, \mathbf V\}

    Args:
        mod: the model.
        x: a batch ``(N, n)``, dense or sparse.
        y_true: targets ``(N,)`` or ``(N, 1)``.
        lr: the learning rate :math:`\eta`.
        loss_f: ``loss_f(y_true=..., y_pred=...)``, by default :func:`fmlib.l2_loss`.
        loss_f_kwargs: extra keyword arguments for ``loss_f``.
    """
    if not isinstance(mod, FactorizationMachine):
        raise TypeError(
            f"`mod` must be a fmlib.FactorizationMachine; got {type(mod).__name__}."
        )
    lr = check_learning_rate(lr)
    x = as_batch(x, mod.n_features, mod.dtype, name="x")
    y_true = as_targets(y_true, int(x.shape[0]), name="y_true", dtype=mod.dtype)
    loss_f_kwargs = loss_f_kwargs or {}
    with tf.GradientTape() as tape:
        loss = loss_f(y_true=y_true, y_pred=mod._call_checked(x), **loss_f_kwargs)
    variables = [mod.w0, mod.w, mod.V]
    for var, grad in zip(variables, tape.gradient(loss, variables)):
        if grad is not None:
            var.assign_sub(lr * grad)
    check_weights_finite(variables, "in this step", lr)
    return loss


def _check_after_last_step(
    model: FactorizationMachine, loss_fn: Callable, Xb, yb, where: str, lr: Any
) -> None:
    """Weights finite, and the last batch's loss recomputed with them finite (one forward pass)."""
    check_weights_finite([model.w0, model.w, model.V], where, lr)
    after = float(loss_fn(yb, model._call_checked(Xb)))
    if diverged(after, model.dtype):
        raise TrainingDivergedError(
            f"Training diverged {where}: after the last step the loss on its batch is {after:.4g}. "
            + advice(lr)
        )


def gradient_epochs(model, Xh, yh, settings: GradientSettings) -> Callable[[], float]:
    """Prepare minibatch training; returns ``epoch()``: one shuffled pass, its mean loss."""
    s = settings
    task, batch_size, optimizer, lr = s.task, s.batch_size, s.optimizer, s.lr
    lambda_w, lambda_v, shuffle, seed = s.lambda_w, s.lambda_v, s.shuffle, s.seed
    verbose = s.verbose
    step, lr = _compiled_step(model, optimizer, lr, task, sp.issparse(Xh))
    loss_fn = l2_loss if task == "regression" else logistic_loss
    lambdas = (tf.constant(lambda_w, model.dtype), tf.constant(lambda_v, model.dtype))
    rng = np.random.default_rng(seed)
    y_typed = yh.astype(model.dtype.as_numpy_dtype)
    n = Xh.shape[0]
    n_batches = math.ceil(n / batch_size)
    epochs_done = 0

    def epoch() -> float:
        nonlocal epochs_done
        epochs_done += 1
        order = rng.permutation(n) if shuffle else np.arange(n)
        Xe, ye = Xh[order], y_typed[order]
        bar = keras.utils.Progbar(n_batches, unit_name="batch") if verbose else None
        losses = []
        for i, (s, e, Xb) in enumerate(iter_batches(Xe, batch_size), start=1):
            batch_loss = step(Xb, tf.constant(ye[s:e]), *lambdas)
            losses.append(batch_loss * (e - s))
            if bar is not None:
                bar.update(i, values=[("loss", float(batch_loss))])
        # the loss is measured before each update: the weights after the last one are checked too
        _check_after_last_step(
            model, loss_fn, Xb, tf.constant(ye[s:e]), f"in epoch {epochs_done}", lr
        )
        return float(tf.add_n(losses)) / n

    epoch.whole_steps = (
        True  # each step is one compiled call: an interrupt falls between steps
    )
    return epoch


def _compiled_step(
    model: FactorizationMachine, optimizer, lr, task: str, sparse: bool
) -> tuple[Callable, Any]:
    """``(step, lr)``: the model's compiled step for this optimizer, task and kind of ``X``.

    ``step(Xb, yb, lambda_w, lambda_v)`` applies one update and returns the batch's loss. It is
    traced once per (optimizer, task, sparse or dense) and model, and kept in
    ``model._compiled_steps``: a new ``tf.function`` per ``fit`` call would be traced again
    every time (and TensorFlow warns about frequent retracing). Batch size and L2 strengths
    are arguments, so they retrace nothing. A named optimizer is reused with its state reset to
    the freshly built one and ``lr`` set, so every ``fit`` starts as with a new optimizer; an
    optimizer instance keeps its state across calls, as it always did.
    """
    variables = [model.w0, model.w, model.V]
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {sorted(OPTIMIZERS)} or a Keras optimizer; "
                f"got {optimizer!r}."
            )
        lr = check_learning_rate(lr)
        key = (optimizer.lower(), task, sparse)
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        key = (
            id(optimizer),
            task,
            sparse,
        )  # the cache holds the instance: its id stays unique
        check_unused_or_ours(optimizer, variables)
    else:
        raise TypeError(
            f"`optimizer` must be a name or a keras.optimizers.Optimizer; "
            f"got {type(optimizer).__name__}."
        )
    if key not in model._compiled_steps:
        opt = (
            OPTIMIZERS[key[0]](learning_rate=lr)
            if isinstance(optimizer, str)
            else optimizer
        )
        opt.build(variables)
        fresh = (
            [v.numpy() for v in opt.variables] if isinstance(optimizer, str) else None
        )
        model._compiled_steps[key] = (_make_step(model, opt, task, sparse), opt, fresh)
    step, opt, fresh = model._compiled_steps[key]
    if fresh is not None:
        for var, value in zip(opt.variables, fresh):
            var.assign(value)
        opt.learning_rate = lr
    return step, lr


class _Update:
    """One model's training update: the mean loss of the batch plus the L2 penalty, one optimizer
    step; returns the loss. :func:`_compiled_step` compiles it with ``tf.function``.

    An object rather than a closure: TensorFlow counts traces per Python function code to warn
    about retracing, and a closure's code is shared by every model's step, so training a sixth
    small model in a loop would be reported as retracing although each step is traced once. An
    object is counted on its own.
    """

    def __init__(
        self, model: FactorizationMachine, opt: keras.optimizers.Optimizer, task: str
    ):
        self.model, self.opt = model, opt
        self.loss_fn = l2_loss if task == "regression" else logistic_loss

    def __call__(self, Xb, yb, lambda_w, lambda_v) -> tf.Tensor:
        variables = [self.model.w0, self.model.w, self.model.V]
        with tf.GradientTape() as tape:
            data_loss = self.loss_fn(yb, self.model._call_checked(Xb))
            objective = data_loss + l2_penalty_unchecked(self.model, lambda_w, lambda_v)
        self.opt.apply_gradients(zip(tape.gradient(objective, variables), variables))
        return data_loss


def _make_step(
    model: FactorizationMachine,
    opt: keras.optimizers.Optimizer,
    task: str,
    sparse: bool,
) -> Callable:
    """:class:`_Update` compiled for dense or sparse batches of the model's width and dtype."""
    x_spec = (
        tf.SparseTensorSpec([None, model.n_features], model.dtype)
        if sparse
        else tf.TensorSpec([None, model.n_features], model.dtype)
    )
    scalar = tf.TensorSpec([], model.dtype)
    return tf.function(
        _Update(model, opt, task),
        input_signature=[x_spec, tf.TensorSpec([None], model.dtype), scalar, scalar],
    )
