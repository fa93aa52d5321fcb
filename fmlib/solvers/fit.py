r"""``fit``: one entry point for every solver of a :class:`~fmlib.FactorizationMachine`.

Gradient steps (chapter "Learning"; row-sparse in chapter "Performance and scale") and
coordinate descent (chapter "Coordinate descent") share one epoch loop,
:func:`fmlib.learning.loop.run_epochs`.
"""

from __future__ import annotations

import keras
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from fmlib.data.chunks import check_shuffle
from fmlib.learning.dense import gradient_epochs
from fmlib.learning.loop import run_epochs
from fmlib.learning.relational import relational_epochs
from fmlib.learning.sparse import dataset_epochs, sparse_epochs
from fmlib.model.fm import FactorizationMachine
from fmlib.solvers.als import als_sweeps
from fmlib.solvers.registry import SOLVERS, UPDATES, resolve  # noqa: F401  (re-exported)
from fmlib.validation import (
    as_host_matrix,
    as_labels,
    as_targets,
    check_int,
    is_relational,
    resolve_task,
)


def fit(
    model: FactorizationMachine,
    X,
    y,
    *,
    solver: str = "gradient",
    task: str | None = None,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    lr: float | None = None,
    lambda_w: float | None = None,
    lambda_v: float | None = None,
    updates: str | None = None,
    regularization: str | None = None,
    groups=None,
    validation_data: tuple | None = None,
    patience: int | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    verbose: bool = False,
    steps_per_epoch: int | None = None,
) -> pd.DataFrame:
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
    convention; see :mod:`fmlib.solvers.als`); it needs no learning rate, and ``batch_size``,
    ``optimizer``, ``lr``, ``shuffle`` and ``seed`` are refused.

    ``updates="sparse"`` makes a step cost O(k · nnz of the batch): row-sparse gradients,
    the lazy optimizers of :mod:`fmlib.learning.lazy_optimizers` and whole epochs inside one compiled
    function (:mod:`fmlib.learning.sparse`, chapter "Performance and scale"). It is the
    default for sparse input; its default penalty is that of the features present in the
    batch (``regularization="present"``); libFM's per-row penalty is
    ``regularization="occurrence"``.

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
            once per sweep (ALS) or per minibatch (:mod:`fmlib.learning.relational`).
        y: ``(N,)`` or ``(N, 1)`` targets (None for a dataset).
        solver: ``"gradient"`` (minibatches and ``optimizer``) or ``"als"``. Each solver
            takes the hyper-parameters it declares in :mod:`fmlib.solvers.registry`;
            setting one it does not use (say ``lr`` with ``"als"``) is a ``ValueError``.
            Left at None, a hyper-parameter takes the solver's default, given below.
            (The Bayesian FM, ``"mcmc"``, is :class:`fmlib.BayesianFM`.)
        task: ``"regression"`` or ``"classification"``; None (default) follows ``model.task``,
            and is regression for a model without one. ``fit`` sets ``model.task``, so that
            :func:`evaluate` and ``predict_proba`` know it; a task contradicting the model's is
            a ``ValueError`` (train a new model for the other task).
        num_epochs: maximum number of passes over the data (ALS: sweeps); 10.
        batch_size: rows per step; 256.
        optimizer: ``"sgd"`` (plain SGD, as in the paper), ``"adam"``, ``"adagrad"``,
            or a Keras optimizer instance (then ``lr`` is not used); ``"adam"``.
        lr: learning rate for a named optimizer; 0.01.
        lambda_w, lambda_v: L2 strengths for ``w`` and ``V`` (libFM's λ_w, λ_v); 0.
        updates: ``"sparse"`` or ``"dense"``. ``"sparse"``: row-sparse steps whose cost
            follows the non-zeros, epochs in the graph (chapter "Performance and scale"; ``optimizer``
            a name: ``"sgd"``, ``"adagrad"`` or ``"adam"``, the latter two in their lazy
            form). ``"dense"``: the compiled step of the chapter "Learning", any Keras
            optimizer. Left unset, sparse input (``scipy.sparse``, ``tf.SparseTensor``, a
            :class:`fmlib.RelationalDesign` or a ``tf.data.Dataset``) with a named optimizer
            trains ``"sparse"``, anything else ``"dense"``.
        regularization: which rows carry the penalty. ``"global"``: :math:`\lambda_w \lVert
            \mathbf w \rVert^2 + \lambda_v \lVert \mathbf V \rVert_F^2` per batch (the
            default and only choice of ``updates="dense"``; with ``updates="sparse"`` only
            for ``optimizer="sgd"``, as an exact decay of every row, O(k n) per step).
            ``"present"``: the same penalty restricted to the features present in the batch,
            once per batch (the default of ``updates="sparse"``: on data where a batch holds
            most features it is the global penalty, at the cost of the non-zeros).
            ``"occurrence"``: the penalty of the features of each row, per row (libFM's
            SGD, :math:`\lambda` per occurrence: much weaker on rare features at the same
            :math:`\lambda`).
        groups: ``solver="als"`` only: which columns form a block
            (``FeatureEncoder.groups_``), so that wide multi-hot blocks are split into
            exact joint updates quickly (:func:`fmlib.solvers.coordinate.block_schedule`).
        validation_data: ``(X_val, y_val)`` evaluated after every epoch.
        patience: stop when the validation loss has not improved for this many
            epochs, and restore the best weights (needs ``validation_data``).
        shuffle: reshuffle the rows every epoch. For a :class:`fmlib.RelationalDesign`
            and ``solver="gradient"`` also a :class:`fmlib.BlockChunks`: batches
            grouped by a relation block's rows, fewer distinct rows per step
            (:mod:`fmlib.data.chunks`).
        seed: seed of the shuffling, for reproducible runs.
        steps_per_epoch: batches per epoch when ``X`` is a ``tf.data.Dataset``: needed for an
            endless one (``.repeat()``), which is then read by one iterator across epochs; a
            finite dataset's epoch ends earlier if the data does. None (default): one pass.
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
        raise TypeError(
            f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}."
        )
    task = resolve_task(model.task, task, "fit")
    if solver == "mcmc":
        raise ValueError(
            "solver='mcmc' averages predictions over posterior samples, which one "
            "FactorizationMachine cannot hold: use fmlib.BayesianFM (or "
            "fmlib.FMRegressor(solver='mcmc'))."
        )
    params = resolve(
        solver,
        {
            "num_epochs": num_epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "lr": lr,
            "lambda_w": lambda_w,
            "lambda_v": lambda_v,
            "updates": updates,
            "regularization": regularization,
            "groups": groups,
            "shuffle": shuffle,
            "seed": seed,
        },
        task,
    )
    streamed = isinstance(X, tf.data.Dataset)
    num_epochs, lambda_w, lambda_v = (
        params["num_epochs"],
        params["lambda_w"],
        params["lambda_v"],
    )
    if solver == "gradient":
        updates, regularization = _updates(
            params["updates"], params["regularization"], X, params["optimizer"]
        )
        batch_size, optimizer, lr = (
            params["batch_size"],
            params["optimizer"],
            params["lr"],
        )
        shuffle, seed = check_shuffle(params["shuffle"], X, solver), params["seed"]
    else:
        updates, groups = None, params["groups"]
        if streamed:
            raise ValueError(
                "a tf.data.Dataset `X` trains with solver='gradient'; "
                f"got solver={solver!r}."
            )
    if steps_per_epoch is not None:
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch")
        if not streamed:
            raise ValueError(
                "`steps_per_epoch` is for a tf.data.Dataset `X` (an epoch of arrays "
                f"is one pass over them); got X of type {type(X).__name__}."
            )
    if (
        streamed
        and steps_per_epoch is None
        and int(X.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    ):
        raise ValueError(
            "`X` is an endless tf.data.Dataset (.repeat() without a count): an "
            "epoch would never end. Pass `steps_per_epoch` (batches per epoch), "
            "or make it finite (.repeat(n), .take(n))."
        )
    if patience is not None:
        patience = check_int(patience, "patience")
        if validation_data is None:
            raise ValueError(
                "`patience` (early stopping) needs `validation_data`; got None."
            )

    if streamed:
        dataset = _checked_dataset(X, y, model)
        validation = _validation_pair(validation_data, model, task)
        run_epoch = dataset_epochs(
            model,
            dataset,
            task,
            optimizer,
            lr,
            lambda_w,
            lambda_v,
            regularization,
            steps_per_epoch,
        )
        model.task = task
        return run_epochs(
            model, run_epoch, num_epochs, task, validation, patience, verbose, lr
        )

    dtype = tf.float64 if solver == "als" else model.dtype
    # the sparse path only reads X: a canonical CSR matrix is used without a copy
    Xh = as_host_matrix(X, model.n_features, dtype, name="X", copy=updates != "sparse")
    yh = as_labels(as_targets(y, Xh.shape[0], name="y", dtype=model.dtype), task, "y")
    if Xh.shape[0] == 0:
        raise ValueError("`X` has no rows; there is nothing to train on.")
    validation = _validation_pair(validation_data, model, task)

    if solver == "als":
        run_epoch, lr = als_sweeps(model, Xh, yh, lambda_w, lambda_v, groups), None
    elif is_relational(Xh):
        # per distinct block row, never flat (fmlib.learning.relational)
        run_epoch = relational_epochs(
            model,
            Xh,
            yh,
            task,
            batch_size,
            optimizer,
            lr,
            lambda_w,
            lambda_v,
            updates,
            regularization,
            shuffle,
            seed,
        )
    elif updates == "sparse":
        run_epoch = sparse_epochs(
            model,
            Xh,
            yh,
            task,
            batch_size,
            optimizer,
            lr,
            lambda_w,
            lambda_v,
            regularization,
            shuffle,
            seed,
        )
    else:
        run_epoch = gradient_epochs(
            model,
            Xh,
            yh,
            task,
            batch_size,
            optimizer,
            lr,
            lambda_w,
            lambda_v,
            shuffle,
            seed,
            verbose,
        )
    model.task = task  # the arguments are valid: from now on the model is this task's
    return run_epochs(
        model, run_epoch, num_epochs, task, validation, patience, verbose, lr
    )


def _updates(updates, regularization, X, optimizer) -> tuple[str, str]:
    """``(updates, regularization)`` of the gradient solver, with their defaults filled in:
    row-sparse steps for sparse input and a named optimizer, the penalty of the features
    present for them, the global penalty for dense steps."""
    streamed = isinstance(X, tf.data.Dataset)
    if updates is None:
        sparse_input = (
            streamed
            or sp.issparse(X)
            or isinstance(X, tf.SparseTensor)
            or is_relational(X)
        )
        updates = "sparse" if sparse_input and isinstance(optimizer, str) else "dense"
    if streamed and updates != "sparse":
        raise ValueError(
            "a tf.data.Dataset `X` trains with updates='sparse'; "
            f"got updates={updates!r}."
        )
    if regularization is None:
        regularization = "present" if updates == "sparse" else "global"
    if updates == "dense" and regularization != "global":
        raise ValueError(
            f"regularization={regularization!r} needs updates='sparse' (the dense "
            "step penalises every row); got updates='dense'."
        )
    return updates, regularization


def _checked_dataset(
    dataset: tf.data.Dataset, y, model: FactorizationMachine
) -> tf.data.Dataset:
    """A dataset of ``(X batch, y batch)`` whose structure fits the model, or a clear error."""
    if y is not None:
        raise ValueError(
            "`y` must be None when `X` is a tf.data.Dataset (its elements are "
            f"(X batch, y batch) pairs); got {type(y).__name__}."
        )
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            "`X` (a tf.data.Dataset) must yield (X batch, y batch) pairs; "
            f"its elements are {spec}."
        )
    x_spec, y_spec = spec
    if (
        not isinstance(x_spec, (tf.TensorSpec, tf.SparseTensorSpec))
        or x_spec.shape.rank != 2
        or x_spec.shape[1] != model.n_features
    ):
        raise ValueError(
            f"`X` (a tf.data.Dataset) must yield X batches of shape (batch, "
            f"{model.n_features}), dense or sparse; got {x_spec}."
        )
    if (
        not isinstance(y_spec, tf.TensorSpec)
        or y_spec.shape.rank not in (1, 2)
        or (y_spec.shape.rank == 2 and y_spec.shape[1] != 1)
    ):
        raise ValueError(
            "`X` (a tf.data.Dataset) must yield y batches of shape (batch,) or "
            f"(batch, 1); got {y_spec}."
        )
    for name, s in (("X", x_spec), ("y", y_spec)):
        if not (s.dtype.is_floating or s.dtype.is_integer or s.dtype.is_bool):
            raise TypeError(
                f"`X` (a tf.data.Dataset) must yield numeric {name} batches; "
                f"got dtype {s.dtype.name}."
            )
    return dataset


def _validation_pair(
    validation_data, model: FactorizationMachine, task: str
) -> tuple | None:
    """``(X_val, y_val)`` checked and on the host, or None."""
    if validation_data is None:
        return None
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError(
            "`validation_data` must be a pair (X_val, y_val); "
            f"got {type(validation_data).__name__}."
        )
    Xv = as_host_matrix(
        validation_data[0],
        model.n_features,
        model.dtype,
        name="validation_data[0]",
        min_rows=1,
    )
    yv = as_targets(validation_data[1], Xv.shape[0], name="validation_data[1]")
    return Xv, as_labels(yv, task, "validation_data[1]")
