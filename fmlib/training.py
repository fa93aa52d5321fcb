r"""Training a Factorization Machine with ``tf.GradientTape``.

Two entry points, both explained in the chapter "Learning":

* :func:`train_step`: one plain gradient-descent step on a batch, written
  out in full (it is the function of the original TF2 project,
  `garethjns/TF2FactorizationMachine <https://github.com/garethjns/TF2FactorizationMachine>`_):
  :math:`\theta \leftarrow \theta - \eta\, \partial \ell / \partial \theta`
  for :math:`\theta \in \{w_0, \mathbf w, \mathbf V\}`.
* :func:`fit`: minibatch training for real data: dense or sparse ``X``,
  SGD/Adam/Adagrad, libFM-style L2 (:math:`\lambda_w, \lambda_v`), regression or
  classification, validation, early stopping, a compiled step, a history table.
  ``solver="als"`` runs coordinate descent instead (:mod:`fmlib.als`, chapter "Beyond SGD:
  coordinate descent and MCMC") in the same epoch loop; ``updates="sparse"`` (and a
  ``tf.data.Dataset`` as ``X``) runs row-sparse steps, epochs in the graph
  (:mod:`fmlib.sparse_training`, chapter "Performance").
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from ._inputs import (_is_relational, as_batch, as_host_matrix, as_labels, as_targets, check_bool, check_float, check_int,
                      check_seed, iter_batches, resolve_task)
from .als import als_sweeps
from .losses import l2_loss, l2_penalty_unchecked, logistic_loss
from .model import FactorizationMachine
from .sparse_training import REGULARIZATIONS, dataset_epochs, sparse_epochs

SOLVERS = ("gradient", "als")
LOSS_NAMES = {"loss": "training loss", "val_loss": "validation loss"}
OPTIMIZERS = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
              "adagrad": keras.optimizers.Adagrad}


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite (usually: the learning rate is too large)."""


def _advice(lr: Any) -> str:
    """What to try when training diverges: ``lr`` is None for solvers without a learning rate."""
    if lr is None:
        return "Try stronger regularisation (lambda_w, lambda_v)."
    return f"Try a smaller learning rate (lr={lr} now) or stronger regularisation."


def diverged(value: float, dtype: tf.DType) -> bool:
    """A loss is diverged when NaN, infinite, or beyond what the model's float dtype can hold."""
    return not (math.isfinite(value) and abs(value) <= np.finfo(dtype.as_numpy_dtype).max)


def check_weights_finite(variables, where: str, lr: Any) -> None:
    """Raise :class:`TrainingDivergedError` if any weight is NaN or infinite (one fused reduction)."""
    if not bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])):
        names = [v.name.split("/")[-1].split(":")[0] for v in variables
                 if not bool(tf.reduce_all(tf.math.is_finite(v)))]
        raise TrainingDivergedError(
            f"Training diverged {where}: the weights {names} hold NaN or infinite values. "
            + _advice(lr))


def train_step(mod: FactorizationMachine, x, y_true, lr: float,
               loss_f: Callable = l2_loss, loss_f_kwargs: dict[str, Any] | None = None) -> tf.Tensor:
    r"""One step of plain gradient descent on the batch ``(x, y_true)``; returns the loss.

    .. math::

        \theta \leftarrow \theta - \eta\, \frac{\partial}{\partial\theta}
        \frac1N \sum_{i=1}^{N} \ell\big(\hat y(\mathbf x_i), y_i\big),
        \qquad \theta \in \{w_0, \mathbf w, \mathbf V\}

    Args:
        mod: the model.
        x: a batch ``(N, n)``, dense or sparse.
        y_true: targets ``(N,)`` or ``(N, 1)``.
        lr: the learning rate :math:`\eta`.
        loss_f: ``loss_f(y_true=..., y_pred=...)``, by default :func:`fmlib.l2_loss`.
        loss_f_kwargs: extra keyword arguments for ``loss_f``.
    """
    if not isinstance(mod, FactorizationMachine):
        raise TypeError(f"`mod` must be a fmlib.FactorizationMachine; got {type(mod).__name__}.")
    lr = check_float(lr, "lr")
    if lr == 0:
        raise ValueError("`lr` must be > 0; got 0.")
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


def _check_after_last_step(model: FactorizationMachine, loss_fn: Callable, Xb, yb, where: str,
                           lr: Any) -> None:
    """Weights finite, and the last batch's loss recomputed with them finite (one forward pass)."""
    check_weights_finite([model.w0, model.w, model.V], where, lr)
    after = float(loss_fn(yb, model._call_checked(Xb)))
    if diverged(after, model.dtype):
        raise TrainingDivergedError(
            f"Training diverged {where}: after the last step the loss on its batch is {after:.4g}. "
            + _advice(lr))


def _unused_or_ours(opt: keras.optimizers.Optimizer, variables: list) -> keras.optimizers.Optimizer:
    """A Keras optimizer keeps per-variable state: one already built for another model is refused."""
    own = getattr(opt, "_trainable_variables", None)
    if opt.built and own is not None and {id(v) for v in own} != {id(v) for v in variables}:
        raise ValueError("`optimizer` is a Keras optimizer already used for another model's weights; "
                         "pass a new instance (or a name such as 'adam') for each model.")
    return opt


def _metrics(task: str, y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    if task == "regression":
        mse = float(np.mean((y - y_hat) ** 2))
        return {"loss": mse, "rmse": math.sqrt(mse)}
    # logistic loss, stable: log(1 + exp(-s)) with s = (2y-1) * y_hat
    s = (2 * y - 1) * y_hat
    loss = float(np.mean(np.logaddexp(0.0, -s)))
    return {"loss": loss, "accuracy": float(np.mean((y_hat > 0) == (y > 0.5)))}


def evaluate(model: FactorizationMachine, X, y, task: str | None = None,
             batch_size: int = 8192) -> dict[str, float]:
    """Loss and RMSE (regression) or accuracy (classification) of ``model`` on ``(X, y)``.

    Regression: ``{"loss": MSE, "rmse": RMSE}``; classification: ``{"loss": mean logistic
    loss, "accuracy": share of rows with ŷ > 0 exactly when y = 1}`` (chapter "Learning").

    Args:
        task: None (default) follows ``model.task`` (regression for a model without one);
            a task that contradicts ``model.task`` is a ``ValueError``.
    """
    if not isinstance(model, FactorizationMachine):
        raise TypeError(f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}.")
    task = resolve_task(model.task, task, "evaluate")
    Xh = as_host_matrix(X, model.n_features, model.dtype, name="X", min_rows=1)
    yh = as_labels(as_targets(y, Xh.shape[0], name="y"), task, "y")
    return _metrics(task, yh, model._predict_host(Xh, check_int(batch_size, "batch_size")))


def fit(model: FactorizationMachine, X, y, *, solver: str = "gradient", task: str | None = None,
        num_epochs: int = 10, batch_size: int = 256,
        optimizer: str | keras.optimizers.Optimizer = "adam", lr: float = 0.01,
        lambda_w: float = 0.0, lambda_v: float = 0.0, updates: str | None = None,
        regularization: str | None = None, groups=None,
        validation_data: tuple | None = None, patience: int | None = None,
        shuffle: bool = True, seed: int | None = None, verbose: bool = False) -> pd.DataFrame:
    r"""Train ``model`` on ``(X, y)``; returns the per-epoch history.

    With ``solver="gradient"`` (the default) each step minimises, over a minibatch
    :math:`B`,

    .. math::

        \frac{1}{|B|} \sum_{(\mathbf x, y) \in B} \ell\big(\hat y(\mathbf x), y\big)
        + \lambda_w \lVert \mathbf w \rVert^2 + \lambda_v \lVert \mathbf V \rVert_F^2

    with :math:`\ell` the squared loss (``task="regression"``) or the logistic
    loss (``task="classification"``, labels in {0, 1} or {-1, +1}, the model
    outputs logits). With ``solver="als"`` (regression only) every epoch is one sweep of
    coordinate descent on :math:`\sum_i (y_i - \hat y_i)^2 + \lambda_w \lVert \mathbf w
    \rVert^2 + \lambda_v \lVert \mathbf V \rVert_F^2` (a *sum* over rows, libFM's
    convention; see :mod:`fmlib.als`); it needs no learning rate, and ``batch_size``,
    ``optimizer``, ``lr``, ``shuffle`` and ``seed`` play no part.

    ``updates="sparse"`` makes a step cost O(k · nnz of the batch): row-sparse gradients,
    the lazy optimizers of :mod:`fmlib.lazy_optimizers` and whole epochs inside one compiled
    function (:mod:`fmlib.sparse_training`, chapter "Performance"). Its default penalty
    follows the data (``regularization="occurrence"``, libFM's SGD): each row's loss carries
    :math:`\lambda_w w_i^2 + \lambda_v \lVert \mathbf v_i \rVert^2` for every feature
    :math:`i` of the row.

    Args:
        model: a :class:`~fmlib.FactorizationMachine`; trained in place.
        X: ``(N, n)`` dense array, ``scipy.sparse`` matrix or ``tf.SparseTensor``.
            Sparse input stays sparse: batches are sliced from CSR in O(nnz). Or a
            ``tf.data.Dataset`` of ``(X batch, y batch)`` pairs (dense or sparse batches of
            width ``n``; then ``y`` is None, the batches are used as they come, in their
            order, so ``batch_size``, ``shuffle`` and ``seed`` play no part, and training
            uses ``updates="sparse"``): for data read from files or generated on the fly.
            Or a :class:`fmlib.RelationalDesign` (relation blocks): both solvers train on
            the blocks without building the flat matrix, each block row's terms computed
            once per sweep (ALS) or per minibatch (:mod:`fmlib.relational.gradient`).
        y: ``(N,)`` or ``(N, 1)`` targets (None for a dataset).
        solver: ``"gradient"`` (minibatches and ``optimizer``) or ``"als"``.
        task: ``"regression"`` or ``"classification"``; None (default) follows ``model.task``,
            and is regression for a model without one. ``fit`` sets ``model.task``, so that
            :func:`evaluate` and ``predict_proba`` know it; a task contradicting the model's is
            a ``ValueError`` (train a new model for the other task).
        num_epochs: maximum number of passes over the data (ALS: sweeps).
        batch_size: rows per step.
        optimizer: ``"sgd"`` (plain SGD, as in the paper), ``"adam"``, ``"adagrad"``,
            or a Keras optimizer instance (then ``lr`` is not used).
        lr: learning rate for a named optimizer.
        lambda_w, lambda_v: L2 strengths for ``w`` and ``V`` (libFM's λ_w, λ_v).
        updates: ``"dense"`` (the default for arrays: the compiled step of the chapter
            "Learning", any Keras optimizer) or ``"sparse"`` (the default for a dataset:
            row-sparse steps, epochs in the graph; ``optimizer`` a name: ``"sgd"``,
            ``"adagrad"`` or ``"adam"``, the latter two in their lazy form).
        regularization: ``"global"`` (:math:`\lambda_w \lVert \mathbf w \rVert^2 +
            \lambda_v \lVert \mathbf V \rVert_F^2` per batch, the default and only choice
            of ``updates="dense"``; with ``updates="sparse"`` only for ``optimizer="sgd"``, as
            an exact decay of every row, O(k n) per step), ``"occurrence"`` (the penalty of
            the features present, per row; the default of ``updates="sparse"``) or
            ``"present"`` (the penalty of the features present, once per batch).
        groups: ``solver="als"`` only: which columns form a block
            (``FeatureEncoder.groups_``), so that wide multi-hot blocks are split into
            exact joint updates quickly (:func:`fmlib.coordinate.block_schedule`).
        validation_data: ``(X_val, y_val)`` evaluated after every epoch.
        patience: stop when the validation loss has not improved for this many
            epochs, and restore the best weights (needs ``validation_data``).
        shuffle: reshuffle the rows every epoch. For a :class:`fmlib.RelationalDesign`
            and ``solver="gradient"`` also a :class:`fmlib.BlockChunks`: batches
            grouped by a relation block's rows, fewer distinct rows per step
            (:mod:`fmlib.relational.chunks`).
        seed: seed of the shuffling, for reproducible runs.
        verbose: show a Keras progress bar per epoch with ``updates="dense"`` and print a
            line per epoch (off by default, so that notebook outputs are stable). The sparse
            path runs an epoch inside one compiled call and prints the line only.

    Returns:
        A ``pandas.DataFrame`` indexed by epoch (from 1) with columns ``loss``
        (gradient solvers: mean training loss over the epoch's batches, without the
        penalty; ALS: training mean squared error after the sweep),
        ``val_loss`` and ``val_rmse`` or ``val_accuracy`` when validation data is
        given. ``history.attrs["best_epoch"]`` is set when early stopping is on;
        ``history.attrs["epoch_seconds"]`` lists the wall-clock time of each
        epoch's training pass (shuffling and steps, not validation), for
        benchmarks; it is not a column so that printed histories stay reproducible.

    Raises:
        ValueError: bad arguments or data (the message names the argument).
        TrainingDivergedError: the loss became NaN or infinite.
    """
    if not isinstance(model, FactorizationMachine):
        raise TypeError(f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}.")
    if solver not in SOLVERS:
        raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
    streamed = isinstance(X, tf.data.Dataset)
    updates, regularization = _updates(updates, regularization, solver, streamed)
    task = resolve_task(model.task, task, "fit")
    if solver == "als" and task != "regression":
        raise ValueError("`solver='als'` trains regression models (squared loss); got "
                         f"task={task!r}. For classification use solver='gradient' or "
                         "fmlib.BayesianFM(task='classification').")
    num_epochs = check_int(num_epochs, "num_epochs")
    batch_size = check_int(batch_size, "batch_size")
    lambda_w = check_float(lambda_w, "lambda_w")
    lambda_v = check_float(lambda_v, "lambda_v")
    from .relational.chunks import check_shuffle   # a bool, or BlockChunks for a design
    shuffle, seed = check_shuffle(shuffle, X, solver), check_seed(seed)
    if patience is not None:
        patience = check_int(patience, "patience")
        if validation_data is None:
            raise ValueError("`patience` (early stopping) needs `validation_data`; got None.")

    if streamed:
        dataset = _checked_dataset(X, y, model)
        validation = _validation_pair(validation_data, model, task)
        run_epoch = dataset_epochs(model, dataset, task, optimizer, lr, lambda_w, lambda_v,
                                   regularization)
        model.task = task
        return _epochs(model, run_epoch, num_epochs, task, validation, patience, verbose, lr)

    dtype = tf.float64 if solver == "als" else model.dtype
    # the sparse path only reads X: a canonical CSR matrix is used without a copy
    Xh = as_host_matrix(X, model.n_features, dtype, name="X", copy=updates != "sparse")
    yh = as_labels(as_targets(y, Xh.shape[0], name="y", dtype=model.dtype), task, "y")
    if Xh.shape[0] == 0:
        raise ValueError("`X` has no rows; there is nothing to train on.")
    validation = _validation_pair(validation_data, model, task)

    if solver == "als":
        run_epoch, lr = als_sweeps(model, Xh, yh, lambda_w, lambda_v, groups), None
    elif _is_relational(Xh):   # per distinct block row, never flat (fmlib.relational.gradient)
        from .relational.gradient import relational_epochs
        run_epoch = relational_epochs(model, Xh, yh, task, batch_size, optimizer, lr, lambda_w,
                                      lambda_v, updates, regularization, shuffle, seed)
    elif updates == "sparse":
        run_epoch = sparse_epochs(model, Xh, yh, task, batch_size, optimizer, lr, lambda_w,
                                  lambda_v, regularization, shuffle, seed)
    else:
        run_epoch = _gradient_epochs(model, Xh, yh, task, batch_size, optimizer, lr, lambda_w,
                                     lambda_v, shuffle, seed, verbose)
    model.task = task   # the arguments are valid: from now on the model is this task's
    return _epochs(model, run_epoch, num_epochs, task, validation, patience, verbose, lr)


UPDATES = ("dense", "sparse")


def _updates(updates, regularization, solver: str, streamed: bool) -> tuple[str, str]:
    """``(updates, regularization)`` checked, with their defaults filled in."""
    if updates is None:
        updates = "sparse" if streamed else "dense"
    if updates not in UPDATES:
        raise ValueError(f"`updates` must be one of {UPDATES}; got {updates!r}.")
    if streamed and (updates != "sparse" or solver != "gradient"):
        raise ValueError("a tf.data.Dataset `X` trains with solver='gradient' and "
                         f"updates='sparse'; got solver={solver!r}, updates={updates!r}.")
    if updates == "sparse" and solver != "gradient":
        raise ValueError(f"updates='sparse' is for solver='gradient'; got solver={solver!r}.")
    if regularization is None:
        regularization = "occurrence" if updates == "sparse" else "global"
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"`regularization` must be one of {REGULARIZATIONS}; "
                         f"got {regularization!r}.")
    if updates == "dense" and regularization != "global":
        raise ValueError(f"regularization={regularization!r} needs updates='sparse' (the dense "
                         "step penalises every row); got updates='dense'.")
    return updates, regularization


def _checked_dataset(dataset: tf.data.Dataset, y, model: FactorizationMachine) -> tf.data.Dataset:
    """A dataset of ``(X batch, y batch)`` whose structure fits the model, or a clear error."""
    if y is not None:
        raise ValueError("`y` must be None when `X` is a tf.data.Dataset (its elements are "
                         f"(X batch, y batch) pairs); got {type(y).__name__}.")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError("`X` (a tf.data.Dataset) must yield (X batch, y batch) pairs; "
                         f"its elements are {spec}.")
    x_spec, y_spec = spec
    if not isinstance(x_spec, (tf.TensorSpec, tf.SparseTensorSpec)) or x_spec.shape.rank != 2 \
            or x_spec.shape[1] != model.n_features:
        raise ValueError(f"`X` (a tf.data.Dataset) must yield X batches of shape (batch, "
                         f"{model.n_features}), dense or sparse; got {x_spec}.")
    if not isinstance(y_spec, tf.TensorSpec) or y_spec.shape.rank not in (1, 2) or (
            y_spec.shape.rank == 2 and y_spec.shape[1] != 1):
        raise ValueError("`X` (a tf.data.Dataset) must yield y batches of shape (batch,) or "
                         f"(batch, 1); got {y_spec}.")
    for name, s in (("X", x_spec), ("y", y_spec)):
        if not (s.dtype.is_floating or s.dtype.is_integer or s.dtype.is_bool):
            raise TypeError(f"`X` (a tf.data.Dataset) must yield numeric {name} batches; "
                            f"got dtype {s.dtype.name}.")
    return dataset


def _validation_pair(validation_data, model: FactorizationMachine, task: str) -> tuple | None:
    """``(X_val, y_val)`` checked and on the host, or None."""
    if validation_data is None:
        return None
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError("`validation_data` must be a pair (X_val, y_val); "
                         f"got {type(validation_data).__name__}.")
    Xv = as_host_matrix(validation_data[0], model.n_features, model.dtype, name="validation_data[0]",
                        min_rows=1)
    yv = as_targets(validation_data[1], Xv.shape[0], name="validation_data[1]")
    return Xv, as_labels(yv, task, "validation_data[1]")


def _gradient_epochs(model, Xh, yh, task, batch_size, optimizer, lr, lambda_w, lambda_v,
                     shuffle, seed, verbose) -> Callable[[], float]:
    """Prepare minibatch training; returns ``epoch()``: one shuffled pass, its mean loss."""
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
        _check_after_last_step(model, loss_fn, Xb, tf.constant(ye[s:e]), f"in epoch {epochs_done}", lr)
        return float(tf.add_n(losses)) / n

    return epoch


def _compiled_step(model: FactorizationMachine, optimizer, lr, task: str,
                   sparse: bool) -> tuple[Callable, Any]:
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
            raise ValueError(f"`optimizer` must be one of {sorted(OPTIMIZERS)} or a Keras optimizer; "
                             f"got {optimizer!r}.")
        lr = check_float(lr, "lr")
        if lr == 0:
            raise ValueError("`lr` must be > 0; got 0.")
        key = (optimizer.lower(), task, sparse)
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        key = (id(optimizer), task, sparse)   # the cache holds the instance: its id stays unique
        _unused_or_ours(optimizer, variables)
    else:
        raise TypeError(f"`optimizer` must be a name or a keras.optimizers.Optimizer; "
                        f"got {type(optimizer).__name__}.")
    if key not in model._compiled_steps:
        opt = OPTIMIZERS[key[0]](learning_rate=lr) if isinstance(optimizer, str) else optimizer
        opt.build(variables)
        fresh = [v.numpy() for v in opt.variables] if isinstance(optimizer, str) else None
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

    def __init__(self, model: FactorizationMachine, opt: keras.optimizers.Optimizer, task: str):
        self.model, self.opt = model, opt
        self.loss_fn = l2_loss if task == "regression" else logistic_loss

    def __call__(self, Xb, yb, lambda_w, lambda_v) -> tf.Tensor:
        variables = [self.model.w0, self.model.w, self.model.V]
        with tf.GradientTape() as tape:
            data_loss = self.loss_fn(yb, self.model._call_checked(Xb))
            objective = data_loss + l2_penalty_unchecked(self.model, lambda_w, lambda_v)
        self.opt.apply_gradients(zip(tape.gradient(objective, variables), variables))
        return data_loss


def _make_step(model: FactorizationMachine, opt: keras.optimizers.Optimizer, task: str,
               sparse: bool) -> Callable:
    """:class:`_Update` compiled for dense or sparse batches of the model's width and dtype."""
    x_spec = (tf.SparseTensorSpec([None, model.n_features], model.dtype) if sparse
              else tf.TensorSpec([None, model.n_features], model.dtype))
    scalar = tf.TensorSpec([], model.dtype)
    return tf.function(_Update(model, opt, task),
                       input_signature=[x_spec, tf.TensorSpec([None], model.dtype), scalar, scalar])


def _epochs(model: FactorizationMachine, run_epoch: Callable[[], float], num_epochs: int,
            task: str, validation: tuple | None, patience: int | None, verbose: bool,
            lr: Any) -> pd.DataFrame:
    """The epoch loop every solver shares: validation, early stopping, the history table."""
    variables = [model.w0, model.w, model.V]
    rows, seconds, best, best_weights, best_epoch, waited = [], [], math.inf, None, None, 0
    for epoch in range(1, num_epochs + 1):
        started = time.perf_counter()
        train_loss = run_epoch()
        seconds.append(time.perf_counter() - started)
        check_weights_finite(variables, f"in epoch {epoch}", lr)
        row = {"epoch": epoch, "loss": train_loss}
        if validation is not None:
            val = _metrics(task, validation[1], model._predict_host(validation[0], 8192))
            row.update({f"val_{key}": value for key, value in val.items()})
        for key in ("loss", "val_loss"):
            if key in row and diverged(row[key], model.dtype):
                raise TrainingDivergedError(
                    f"Training diverged in epoch {epoch}: the {LOSS_NAMES[key]} became "
                    f"{row[key]:.4g}. " + _advice(lr))
        rows.append(row)
        if verbose:
            print(f"epoch {epoch}/{num_epochs}: " + ", ".join(
                f"{key}={value:.4f}" for key, value in row.items() if key != "epoch"))
        if patience is not None:
            if row["val_loss"] < best:
                best, best_epoch, waited = row["val_loss"], epoch, 0
                best_weights = [v.numpy() for v in variables]
            else:
                waited += 1
                if waited >= patience:
                    break
    if patience is not None and best_weights is not None:
        for var, value in zip(variables, best_weights):
            var.assign(value)
    history = pd.DataFrame(rows).set_index("epoch")
    history.attrs["epoch_seconds"] = seconds
    if patience is not None:
        history.attrs["best_epoch"] = best_epoch
    return history
