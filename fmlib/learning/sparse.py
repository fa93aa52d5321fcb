r"""Training whose cost follows the non-zeros: ``fit(..., updates="sparse")`` (chapter
"Performance").

Three things make a step cost O(k · nnz of the batch) instead of O(k n):

1. **Row-sparse gradients.** A batch is its list of non-zeros: for each, the row (within the
   batch), the feature and the value. The distinct features :math:`U` of the batch are found
   once (``tf.unique``), the batch is re-indexed as a sparse matrix :math:`\mathbf X_U` over
   those columns only, and eq. (1) with Lemma 3.1 is evaluated on it with the gathered rows
   :math:`\mathbf w_U, \mathbf V_U` (the model's own function: the features absent from the
   batch contribute nothing to :math:`\mathbf X [\mathbf V \mid \mathbf w]`). The gradient
   with respect to the gathered rows is the gradient of :math:`\mathbf w` and
   :math:`\mathbf V` restricted to :math:`U`; it is applied as ``tf.IndexedSlices`` by the
   optimizers of :mod:`fmlib.learning.lazy_optimizers`, which touch only those rows.
2. **Regularisation that follows the data** (``regularization="occurrence"``, as in libFM's
   SGD): each row's loss carries the penalty of the parameters it uses,

   .. math::

       \frac{1}{|B|} \sum_{(\mathbf x, y) \in B} \Big[ & \ell\big(\hat y(\mathbf x), y\big) \\
       & + \sum_{i:\, x_i \neq 0} \big(\lambda_w w_i^2
       + \lambda_v \lVert \mathbf v_i \rVert^2\big)\Big],

   so a feature is shrunk in proportion to how often it occurs, and never when absent.
   ``regularization="present"`` (the default of this path) charges the batch :math:`\lambda_w w_i^2 + \lambda_v \lVert
   \mathbf v_i \rVert^2` once for every feature :math:`i` present in it, however many rows hold
   it: the global penalty restricted to the rows the step touches, which is what a lazy
   optimizer can apply (on MovieLens with the implicit-feedback block it matched the dense
   path's accuracy in ``benchmarks/bench_sparse.py``, where the occurrence penalty
   over-shrinks the implicit features that repeat in every row of a user; chapter
   "Performance"). The ``"global"`` penalty :math:`\lambda_w \lVert \mathbf w
   \rVert^2 + \lambda_v \lVert \mathbf V \rVert_F^2` per batch (``updates="dense"``'s) has a
   gradient in every row; with plain SGD it is applied exactly as a decay of all rows,
   :math:`\theta \leftarrow (1 - 2\eta\lambda)\theta`, before the sparse data step (O(k n) per
   step again, so only for comparison); lazy Adam and Adagrad cannot apply it lazily and refuse
   it.
3. **Epochs inside the graph.** The shuffled epoch is handed to one compiled ``tf.function`` as
   the CSR arrays (``indptr``, ``indices``, ``data``, the row of every non-zero, ``y``); a
   ``tf.range`` loop slices each batch in O(nnz of the batch) and applies the step, so no Python
   runs between batches. A ``tf.data.Dataset`` of ``(X batch, y batch)`` is looped over inside
   the graph the same way, for data read from files or generated on the fly.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.learning.lazy_optimizers import LAZY_OPTIMIZERS
from fmlib.learning.settings import GradientSettings
from fmlib.model.losses import l2_loss, logistic_loss
from fmlib.model.pairwise import factor_products, lemma31
from fmlib.validation import check_learning_rate

REGULARIZATIONS = ("occurrence", "present", "global")
ROWS_PER_CALL = (
    1 << 18
)  # rows per compiled call (at most): bounds the copies of a huge epoch


def batch_on_its_features(rows, cols, vals, n_rows):
    """``(U, counts, X_U)``: the distinct features ``U`` of a batch given by its non-zeros (row
    within the batch, column, value), how many rows of the batch hold each, and the batch as a
    sparse ``(n_rows, |U|)`` matrix whose column ``j`` is feature ``U[j]``: ``X_U [V_U | w_U]``
    is ``X [V | w]`` without the absent rows."""
    U, pos, counts = tf.unique_with_counts(cols)
    indices = tf.cast(tf.stack([rows, pos], axis=1), tf.int64)
    shape = tf.cast(tf.stack([n_rows, tf.size(U)]), tf.int64)
    return U, counts, tf.SparseTensor(indices, vals, shape)


def row_penalty(regularization, g_w, g_V, w_U, V_U, counts, batch, lambda_w, lambda_v):
    r"""``(g_w, g_V)`` of the rows ``U`` plus the gradient of their penalty: the occurrence
    penalty's :math:`2\lambda\, c_u \theta_u / |B|` (``counts`` :math:`c_u`, the rows of
    the batch holding feature :math:`u`, ``batch`` :math:`|B|`) or the present penalty's
    :math:`2\lambda\theta_u` (``regularization`` ``"occurrence"`` or ``"present"``)."""
    if regularization == "occurrence":  # c_u / |B| per row of the batch
        share = 2 * tf.cast(counts, w_U.dtype) / tf.cast(batch, w_U.dtype)
    else:  # "present": once per batch
        share = 2 * tf.ones_like(w_U)
    return g_w + lambda_w * share * w_U, g_V + lambda_v * share[:, None] * V_U


class SparseStep:
    r"""One row-sparse update of ``model`` on a batch of non-zeros; returns the batch's mean loss
    (without the penalty). Plain Python: it is inlined in the compiled epoch loops below.

    The batch becomes ``X_U`` over its distinct features ``U``. Eq. (1) is evaluated with the
    model's own Lemma 3.1 functions (``factor_products`` and ``lemma31`` in ``fmlib.model.pairwise``) on
    ``X_U`` and the gathered rows ``w_U``, ``V_U``, keeping the sums :math:`Q_{s,f} =
    q_f(\mathbf x_s) = \sum_{u \in U} v_{u,f} x_{s,u}` of every row :math:`s` of the batch;
    the gradient is then eq. (4) of Rendle (2010) summed over the batch with the slopes
    :math:`d_s = \partial \ell_B / \partial \hat y(\mathbf x_s)` of the batch's mean loss
    :math:`\ell_B`,

    .. math::

        & \mathbf g_{w_U} = \mathbf X_U^\top \mathbf d, \qquad
        g_{w_0} = \textstyle\sum_s d_s, \\
        & \mathbf g_{V_U} = \mathbf X_U^\top (\mathbf d \circ \mathbf Q)
        - \mathbf V_U \circ \big((\mathbf X_U \circ \mathbf X_U)^\top
        \mathbf d\big),

    two more sparse products, for the rows in ``U`` only. (Automatic differentiation gives the
    same numbers with more operations in the compiled step, about three times as many on the
    small batch of chapter "Performance and scale", and on a CPU each operation of a compiled
    step has a fixed cost.) The penalty's gradient is added to it, the
    occurrence penalty's :math:`2\lambda\, c_u \theta_u / |B|` for a feature in :math:`c_u`
    rows of the batch or the present penalty's :math:`2\lambda\theta_u`: the reported loss
    leaves the penalty out.
    """

    def __init__(self, model, opt, task: str, regularization: str):
        self.model, self.opt, self.regularization = model, opt, regularization
        self.task = task
        self.loss_fn = l2_loss if task == "regression" else logistic_loss

    def loss_and_slope(self, y, y_hat):
        r"""The batch's mean loss (``fmlib.model.losses``) and its derivative in each
        :math:`\hat y_s = \hat y(\mathbf x_s)`: :math:`2(\hat y_s - y_s)/|B|` for the squared
        loss, :math:`(\sigma(\hat y_s) - y_s)/|B|` for the logistic loss."""
        n = tf.cast(tf.size(y), y.dtype)
        slope = 2 * (y_hat - y) if self.task == "regression" else tf.sigmoid(y_hat) - y
        return self.loss_fn(y, y_hat), slope / n

    def __call__(self, rows, cols, vals, yb, lambda_w, lambda_v) -> tf.Tensor:
        model = self.model
        k = model.V.shape[1]
        U, counts, X_U = batch_on_its_features(rows, cols, vals, tf.shape(yb)[0])
        w_U, V_U = tf.gather(model.w, U), tf.gather(model.V, U)
        XA, S = factor_products(
            X_U, tf.concat([V_U, w_U[:, None]], axis=1), V_U
        )  # X_U [V_U | w_U]
        Q = XA[:, :k]
        loss, d = self.loss_and_slope(yb, model.w0 + XA[:, k] + lemma31(Q, S))
        G = tf.sparse.sparse_dense_matmul(
            X_U, tf.concat([d[:, None] * Q, d[:, None]], axis=1), adjoint_a=True
        )  # X_U^T [d Q | d]
        X_sq = tf.SparseTensor(X_U.indices, tf.square(X_U.values), X_U.dense_shape)
        g_V = G[:, :k] - V_U * tf.sparse.sparse_dense_matmul(
            X_sq, d[:, None], adjoint_a=True
        )
        g_w, g_V = self.penalized(
            G[:, k], g_V, w_U, V_U, counts, tf.size(yb), lambda_w, lambda_v
        )
        self.opt.apply([tf.reduce_sum(d)], U, [g_w, g_V])
        return loss

    def penalized(self, g_w, g_V, w_U, V_U, counts, batch, lambda_w, lambda_v):
        r"""The data gradient of the rows ``U`` plus the penalty's: the occurrence
        penalty's :math:`2\lambda\, c_u \theta_u / |B|` (``counts`` :math:`c_u`, the rows of
        the batch holding feature :math:`u`), the present penalty's :math:`2\lambda\theta_u`;
        with ``"global"`` (plain SGD) every row of ``w`` and ``V`` decays exactly instead."""
        if self.regularization != "global":
            return row_penalty(
                self.regularization,
                g_w,
                g_V,
                w_U,
                V_U,
                counts,
                batch,
                lambda_w,
                lambda_v,
            )
        model, lr = self.model, self.opt.learning_rate
        model.w.assign(model.w * (1 - 2 * lr * lambda_w))
        model.V.assign(model.V * (1 - 2 * lr * lambda_v))
        return g_w, g_V


class CSREpoch:
    """Compiled: the step over consecutive batches of CSR arrays; returns the summed loss."""

    def __init__(self, step: SparseStep):
        self.step = step

    def __call__(
        self, indptr, indices, data, row_of, y, batch_size, lambda_w, lambda_v
    ):
        n = tf.shape(y)[0]
        total = tf.zeros([], y.dtype)
        for b in tf.range((n + batch_size - 1) // batch_size):
            s = b * batch_size
            e = tf.minimum(s + batch_size, n)
            a, z = indptr[s], indptr[e]
            loss = self.step(
                row_of[a:z] - s, indices[a:z], data[a:z], y[s:e], lambda_w, lambda_v
            )
            total += loss * tf.cast(e - s, y.dtype)
        return total


def nonzeros(Xb, dtype) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(rows, cols, values)`` of a dense or sparse batch, in the graph."""
    if isinstance(Xb, tf.SparseTensor):
        Xb = tf.sparse.reorder(tf.sparse.map_values(tf.cast, Xb, dtype))
        Xb = tf.sparse.retain(
            Xb, tf.not_equal(Xb.values, 0)
        )  # stored zeros are not features
        return Xb.indices[:, 0], Xb.indices[:, 1], Xb.values
    Xb = tf.cast(Xb, dtype)
    where = tf.where(tf.not_equal(Xb, 0))
    return where[:, 0], where[:, 1], tf.gather_nd(Xb, where)


CHUNK_SECONDS = (
    0.5  # a compiled call on a dataset returns after this long, so Ctrl-C is heard
)


class DatasetEpoch:
    """Compiled: steps on the next ``(X batch, y batch)`` pairs of a dataset *iterator*, at most
    ``max_steps`` and for about :data:`CHUNK_SECONDS`; returns ``(summed loss, rows seen, steps,
    exhausted)``. Batches are checked in the graph (finite values, column ids, labels).

    An epoch is a Python loop of such calls: between two calls Python handles Ctrl-C, so an
    endless or slow dataset can always be interrupted, and the model then holds the weights of
    its last completed step (each call is one unit: an interrupt cannot split it).
    """

    def __init__(self, step: SparseStep, task: str, dtype: tf.DType, n_features: int):
        self.step, self.task, self.dtype, self.n_features = (
            step,
            task,
            dtype,
            n_features,
        )

    def __call__(self, iterator, max_steps, lambda_w, lambda_v):
        total, count = tf.zeros([], self.dtype), tf.zeros([], tf.int64)
        steps, exhausted = tf.zeros([], tf.int64), tf.constant(False)
        start = tf.timestamp()
        while (
            steps < max_steps
            and not exhausted
            and tf.timestamp() - start < CHUNK_SECONDS
        ):
            nxt = iterator.get_next_as_optional()
            if nxt.has_value():
                loss, n_b = self._one(*nxt.get_value(), lambda_w, lambda_v)
                total += loss * tf.cast(n_b, self.dtype)
                count += n_b
                steps += 1
            else:
                exhausted = tf.constant(True)
        return total, count, steps, exhausted

    def _one(self, Xb, yb, lambda_w, lambda_v):
        rows, cols, vals = nonzeros(Xb, self.dtype)
        tf.debugging.Assert(
            tf.reduce_all((cols >= 0) & (cols < self.n_features)),
            [
                f"X: a batch of the dataset holds a column id outside [0, "
                f"{self.n_features}) (the model's n_features)"
            ],
        )
        yb = tf.reshape(tf.cast(yb, self.dtype), [-1])
        tf.debugging.assert_all_finite(
            vals, "X: a batch of the dataset holds NaN or inf"
        )
        tf.debugging.assert_all_finite(yb, "y: a batch of the dataset holds NaN or inf")
        if self.task == "classification":
            tf.debugging.Assert(
                tf.reduce_all((yb == 0) | (yb == 1) | (yb == -1)),
                ["y: classification labels must be in {0, 1} or {-1, +1}"],
            )
            yb = tf.cast(yb > 0, self.dtype)
        tf.debugging.Assert(
            tf.shape(yb, out_type=tf.int64)[0] == tf.shape(Xb, out_type=tf.int64)[0],
            ["X and y batches of the dataset differ in rows"],
        )
        loss = self.step(
            tf.cast(rows, tf.int32),
            tf.cast(cols, tf.int32),
            vals,
            yb,
            lambda_w,
            lambda_v,
        )
        return loss, tf.shape(yb, out_type=tf.int64)[0]


def sparse_optimizer(model, optimizer, lr: float, regularization: str):
    """The model's lazy optimizer for ``optimizer`` (a name), reset to a fresh state."""
    if not isinstance(optimizer, str) or optimizer.lower() not in LAZY_OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {sorted(LAZY_OPTIMIZERS)} with "
            f"updates='sparse' (its lazy, row-sparse form); got {optimizer!r}."
        )
    if regularization not in REGULARIZATIONS:
        raise ValueError(
            f"`regularization` must be one of {REGULARIZATIONS}; got {regularization!r}."
        )
    name = optimizer.lower()
    lr = check_learning_rate(lr)
    if regularization == "global" and name != "sgd":
        raise ValueError(
            "regularization='global' with updates='sparse' needs optimizer='sgd': the "
            "global penalty has a gradient in every row, which lazy "
            f"{name} cannot apply; got optimizer={optimizer!r}. Use "
            "regularization='occurrence' or updates='dense'."
        )
    key = ("sparse-opt", name)
    if key not in model._compiled_steps:
        model._compiled_steps[key] = LAZY_OPTIMIZERS[name](
            [model.w0], [model.w, model.V], lr
        )
    opt = model._compiled_steps[key]
    opt.reset(lr)
    return opt


def _compiled(
    model, kind: str, optimizer: str, task: str, regularization: str, make: Callable
):
    """One compiled epoch function per (kind, optimizer, task, regularization) and model."""
    key = ("sparse", kind, optimizer, task, regularization)
    if key not in model._compiled_steps:
        model._compiled_steps[key] = make()
    return model._compiled_steps[key]


def sparse_epochs(model, Xh, yh, settings: GradientSettings) -> Callable[[], float]:
    """Prepare in-graph row-sparse training on host data; returns ``epoch()`` (its mean loss)."""
    s = settings
    task, batch_size, optimizer, lr = s.task, s.batch_size, s.optimizer, s.lr
    lambda_w, lambda_v, regularization = s.lambda_w, s.lambda_v, s.regularization
    shuffle, seed = s.shuffle, s.seed
    opt = sparse_optimizer(model, optimizer, lr, regularization)
    name = optimizer.lower()
    X = Xh if sp.issparse(Xh) else sp.csr_matrix(Xh)  # dense rows: their non-zeros only
    if not X.data.all():  # a stored zero is not a feature of the row
        X = X.copy()  # (X may be the caller's matrix: fit does not copy it here)
        X.eliminate_zeros()
    dtype = model.dtype.as_numpy_dtype
    y = yh.astype(dtype)
    lambdas = (tf.constant(lambda_w, model.dtype), tf.constant(lambda_v, model.dtype))
    run = _compiled(
        model,
        "csr",
        name,
        task,
        regularization,
        lambda: tf.function(
            CSREpoch(SparseStep(model, opt, task, regularization)),
            input_signature=[
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], model.dtype),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], model.dtype),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], model.dtype),
                tf.TensorSpec([], model.dtype),
            ],
        ),
    )
    run = (
        run.get_concrete_function()
    )  # called with tensors: no per-call signature matching
    batch = tf.constant(batch_size, tf.int32)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    # whole batches per compiled call, at least one, and fewer than 2^31 non-zeros per call
    widest = int(np.diff(X.indptr).max()) if n else 1
    rows_per_call = max(
        batch_size,
        min(ROWS_PER_CALL, 2**31 // max(widest, 1) // 2) // batch_size * batch_size,
    )
    if rows_per_call * widest >= 2**31:
        raise ValueError(
            f"`batch_size` ({batch_size}) times the widest row ({widest} "
            "non-zeros) must stay below 2^31 for updates='sparse'."
        )

    lengths = np.diff(X.indptr)
    # one-hot designs: every row holds the same number of non-zeros, and the rows of the
    # shuffled epoch are then a take on (N, width) views of the CSR arrays
    width = (
        int(lengths[0]) if n and lengths[0] and (lengths == lengths[0]).all() else None
    )

    def call_arrays(order, s: int) -> list[tf.Tensor]:
        """The inputs of one compiled call: rows ``s:s + rows_per_call`` of the epoch's order
        (only these rows are copied: a shuffled copy of the whole matrix would double it)."""
        rows = slice(s, min(s + rows_per_call, n))
        take = order[rows] if shuffle else np.arange(rows.start, rows.stop)
        if width is not None:
            indptr = np.arange(0, take.size * width + 1, width, dtype=np.int32)
            # (np.take on axis 0: about ten times faster than fancy indexing of 2-D rows)
            indices = np.take(X.indices.reshape(n, width), take, axis=0).ravel()
            data = np.take(X.data.reshape(n, width), take, axis=0).ravel()
        else:
            Xc = X[take] if shuffle else X[rows]
            indptr, indices, data = Xc.indptr.astype(np.int32), Xc.indices, Xc.data
        row_of = np.repeat(np.arange(take.size, dtype=np.int32), np.diff(indptr))
        return [
            tf.constant(a)
            for a in (
                indptr,
                indices.astype(np.int32, copy=False),
                data,
                row_of,
                y[take],
            )
        ]

    def epoch() -> float:
        order = rng.permutation(n) if shuffle else None
        total = 0.0
        # the next call's rows are gathered on another thread while this call trains (the
        # compiled call releases the GIL), so on large data the host's copying overlaps training
        with ThreadPoolExecutor(max_workers=1) as pool:
            arrays = call_arrays(order, 0)
            for s in range(0, n, rows_per_call):
                more = s + rows_per_call < n
                pending = (
                    pool.submit(call_arrays, order, s + rows_per_call) if more else None
                )
                total += float(run(*arrays, batch, *lambdas))
                if more:
                    arrays = pending.result()
        return total / n

    epoch.whole_steps = (
        True  # one compiled call is a unit: an interrupt falls between calls
    )
    return epoch


def _graph_error_text(message: str) -> str:
    """The line of a graph error that says what is wrong (the in-graph checks write ``X: ...``
    or ``y: ...``), without TensorFlow's node names and stack."""
    message = message.replace("assertion failed: [", "")
    found = re.search(r"^\s*((?:X|y|X and y)[: ][^\n\]]*)", message, re.M)
    if found:
        return found.group(1).split(" [[")[0].strip()
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip()
        and not line.strip().startswith(
            ("[[", "Graph execution error", "Detected at node", "File ", "Traceback")
        )
    ]
    return lines[-1].split(" [[")[0] if lines else message.strip()


def dataset_epochs(
    model, dataset, settings: GradientSettings, steps_per_epoch: int | None = None
) -> Callable[[], float]:
    """Prepare in-graph row-sparse training on a ``tf.data.Dataset``; returns ``epoch()``.

    An epoch is one pass over a finite dataset, or ``steps_per_epoch`` batches (fewer if a
    finite dataset ends first). An endless dataset (``.repeat()``) is read by one iterator
    across epochs, so that every epoch sees new batches; ``fit`` refuses it without
    ``steps_per_epoch``.
    """
    s = settings
    task, optimizer, lr = s.task, s.optimizer, s.lr
    lambda_w, lambda_v, regularization = s.lambda_w, s.lambda_v, s.regularization
    opt = sparse_optimizer(model, optimizer, lr, regularization)
    run = _compiled(
        model,
        "dataset",
        optimizer.lower(),
        task,
        regularization,
        lambda: tf.function(
            DatasetEpoch(
                SparseStep(model, opt, task, regularization),
                task,
                model.dtype,
                model.n_features,
            )
        ),
    )
    lambdas = (tf.constant(lambda_w, model.dtype), tf.constant(lambda_v, model.dtype))
    endless = int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    limit = tf.constant(2**62 if steps_per_epoch is None else steps_per_epoch, tf.int64)
    shared = iter(dataset) if endless else None

    def epoch() -> float:
        iterator = shared if endless else iter(dataset)
        total, count, steps = 0.0, 0, 0
        while True:
            try:
                t, c, s, exhausted = run(iterator, limit - steps, *lambdas)
            except tf.errors.InvalidArgumentError as err:
                raise ValueError(
                    f"`X` (a tf.data.Dataset) has a bad batch: "
                    f"{_graph_error_text(err.message)}"
                ) from None
            total, count, steps = total + float(t), count + int(c), steps + int(s)
            if bool(exhausted) or steps >= int(limit):
                break
        if count == 0:
            raise ValueError(
                "`X` (a tf.data.Dataset) produced no rows; there is nothing to train on."
            )
        return total / count

    epoch.whole_steps = True
    return epoch
