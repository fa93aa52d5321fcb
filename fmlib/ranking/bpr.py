r"""Bayesian Personalized Ranking (Rendle et al., UAI 2009) for a Factorization Machine
(chapter "Ranking: learning from implicit feedback").

Implicit feedback says which (context, item) pairs happened, never which did not. BPR reads
it as preferences: a context :math:`c` (a user and the user's side features) prefers an item
it interacted with, :math:`i^+`, to one it did not, :math:`i^-`. With
:math:`P(i^+ \succ_c i^-) = \sigma(\hat y(\mathbf x_c + \mathbf x_{i^+}) - \hat y(\mathbf x_c + \mathbf x_{i^-}))`
the negative log-posterior of BPR-Opt (their eq. 4, written as a mean over sampled triples)
is

.. math::

    \mathcal L = \frac1{|B|} \sum_{(c, i^+, i^-) \in B}
        \Bigl[ -\ln \sigma\bigl(\hat y_{c i^+} - \hat y_{c i^-}\bigr) + \Omega_{c i^+ i^-} \Bigr].

**The context-only terms cancel.** By the decomposition of :mod:`fmlib.ranking.scoring`,
:math:`\hat y_{ci} = a_c + b_i + \langle \mathbf p_c, \mathbf q_i\rangle` with
:math:`a_c = w_0 + \mathbf w^\top \mathbf x_c + \phi(\mathbf x_c)` the same for both items, so

.. math::

    & \hat y_{c i^+} - \hat y_{c i^-} = b_{i^+} - b_{i^-}
        + \langle \mathbf p_c,\, \mathbf q_{i^+} - \mathbf q_{i^-} \rangle , \\
    & b_i = \mathbf w^\top \mathbf x_i + \phi(\mathbf x_i),\;
    \mathbf p_c = \mathbf V^\top \mathbf x_c,\; \mathbf q_i = \mathbf V^\top \mathbf x_i .

:math:`w_0`, the linear weights of context features and the context's own pairwise term get
no gradient: the trainer never computes them and never updates them. The penalty is LearnBPR's
per-example L2 on the parameters a triple touches,


.. math::

    \Omega = \lambda_w \sum_{j \in i^+ \cup i^-} w_j^2
        + \lambda_v \sum_{j \in c \cup i^+ \cup i^-} \lVert \mathbf v_j\rVert^2

(sums over the features present in the rows).

Negatives are drawn in the compiled step: ``"uniform"`` draws exactly uniformly from the
items the context has *no* training interaction with (a binary search maps a uniform index
over those items to the item, no rejection loop); ``"popularity"`` draws the item of a
uniformly chosen training pair, i.e. proportionally to the item's number of interactions, and
drops a draw that is a positive of the context from the loss.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from fmlib.learning.divergence import TrainingDivergedError
from fmlib.learning.loop import EpochWatch, run_epochs
from fmlib.learning.optimizers import OPTIMIZERS
from fmlib.ranking.metrics import ranking_metrics
from fmlib.ranking.scoring import catalogue_scores, check_blocks
from fmlib.validation import check_float, check_int, check_learning_rate, check_seed

SAMPLINGS = ("uniform", "popularity")


class BPRDivergedError(TrainingDivergedError):
    """The BPR loss or the weights became NaN or infinite (usually: the learning rate is too large)."""


# --- rows as padded index lists --------------------------------------------------------------
def padded_rows(X, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """A host matrix as ``(indices, values)``, each ``(rows, m)``, ``m`` the most non-zeros of a
    row; shorter rows are padded with column 0 and value 0 (which adds nothing and gets no
    gradient). A batch of rows is then two ``tf.gather`` s, and ``tf.gather(V, indices)``
    makes the gradient of ``V`` touch only the rows of the batch's features."""
    X = sp.csr_matrix(X)
    X.eliminate_zeros()
    counts = np.diff(X.indptr)
    m = max(int(counts.max(initial=0)), 1)
    idx = np.zeros((X.shape[0], m), np.int32)
    val = np.zeros((X.shape[0], m), dtype.as_numpy_dtype)
    slot = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
    rows = np.repeat(np.arange(X.shape[0]), counts)
    idx[rows, slot] = X.indices
    val[rows, slot] = X.data
    return tf.constant(idx), tf.constant(val)


def _row_terms(w, V, rows: tuple[tf.Tensor, tf.Tensor], ids: tf.Tensor):
    r"""For the rows ``ids``: :math:`\mathbf w^\top\mathbf x + \phi(\mathbf x)` ``(B,)``,
    :math:`\mathbf V^\top \mathbf x` ``(B, k)``, the features present ``(B, m)`` and their
    ``V`` rows ``(B, m, k)`` (for the penalty)."""
    idx, val = tf.gather(rows[0], ids), tf.gather(rows[1], ids)
    V_rows = tf.gather(V, idx)  # (B, m, k)
    Vx = V_rows * val[..., None]
    q = tf.reduce_sum(Vx, axis=1)
    self_term = tf.reduce_sum(tf.gather(w, idx) * val, axis=1) + 0.5 * tf.reduce_sum(
        tf.square(q) - tf.reduce_sum(tf.square(Vx), axis=1), axis=1
    )
    present = tf.cast(tf.not_equal(val, 0), w.dtype)
    return self_term, q, present, idx, V_rows


def _objective(w, V, context_rows, item_rows, c, pos, neg, weight, lambda_w, lambda_v):
    """The BPR objective of a batch of triples (module docstring); ``weight`` 0 drops a triple."""
    _, p, present_c, _, Vc = _row_terms(w, V, context_rows, c)
    b_pos, q_pos, present_p, idx_p, Vp = _row_terms(w, V, item_rows, pos)
    b_neg, q_neg, present_n, idx_n, Vn = _row_terms(w, V, item_rows, neg)
    diff = b_pos - b_neg + tf.reduce_sum(p * (q_pos - q_neg), axis=1)
    penalty = lambda_w * (
        tf.reduce_sum(tf.square(tf.gather(w, idx_p)) * present_p, axis=1)
        + tf.reduce_sum(tf.square(tf.gather(w, idx_n)) * present_n, axis=1)
    ) + lambda_v * sum(
        tf.reduce_sum(tf.reduce_sum(tf.square(Vr), axis=2) * pr, axis=1)
        for Vr, pr in ((Vc, present_c), (Vp, present_p), (Vn, present_n))
    )
    n = tf.cast(tf.shape(c)[0], w.dtype)
    data = (
        tf.reduce_sum(weight * tf.math.softplus(-diff)) / n
    )  # -ln sigma(d) = softplus(-d)
    return data, data + tf.reduce_sum(weight * penalty) / n


# --- negative sampling ------------------------------------------------------------------------
class NegativeSampler:
    """Draws negatives for contexts inside a compiled step (module docstring).

    Args:
        context_ids, item_ids: the training pairs (int arrays of equal length).
        n_contexts, n_items: sizes of the context and item tables.
        sampling: ``"uniform"`` or ``"popularity"``.
        seed: seed of the ``tf.random.Generator`` (None: nondeterministic).
    """

    def __init__(
        self,
        context_ids: np.ndarray,
        item_ids: np.ndarray,
        n_contexts: int,
        n_items: int,
        sampling: str = "uniform",
        seed: int | None = None,
    ):
        self.n_items, self.sampling = n_items, sampling
        keys = np.unique(
            context_ids.astype(np.int64) * n_items + item_ids
        )  # sorted positives
        ctx = keys // n_items
        n_pos = np.bincount(ctx, minlength=n_contexts)
        full = np.flatnonzero(n_pos >= n_items)
        if full.size:
            raise ValueError(
                f"context {int(full[0])} has every item as a positive: it has no "
                "negative item to sample."
            )
        start = np.r_[0, np.cumsum(n_pos)[:-1]]
        # the r-th positive p_r of a context, shifted by r, is non-decreasing within the context:
        # the j-th non-positive item is j + #{r : p_r - r <= j}
        shifted = ctx * n_items + (keys % n_items) - (np.arange(len(keys)) - start[ctx])
        self.keys = tf.constant(keys)
        self.shifted = tf.constant(shifted)
        self.n_free = tf.constant(n_items - n_pos, tf.int64)
        self.pair_items = tf.constant(item_ids, tf.int64)
        self.gen = (
            tf.random.Generator.from_seed(seed)
            if seed is not None
            else tf.random.Generator.from_non_deterministic_state()
        )

    def is_positive(self, c: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """Whether each (context, item) is a training pair (a binary search in the sorted keys)."""
        q = c * self.n_items + items
        pos = tf.minimum(
            tf.searchsorted(self.keys, q, out_type=tf.int64),
            tf.size(self.keys, tf.int64) - 1,
        )
        return tf.equal(tf.gather(self.keys, pos), q)

    def __call__(self, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(negatives, weight)`` for the int64 contexts ``c``; weight 0 marks a dropped draw."""
        n = tf.shape(c, tf.int64)[0]
        if self.sampling == "uniform":
            u = self.gen.uniform(tf.reshape(n, [1]), dtype=tf.float64)
            j = tf.minimum(
                tf.cast(
                    tf.floor(u * tf.cast(tf.gather(self.n_free, c), tf.float64)),
                    tf.int64,
                ),
                tf.gather(self.n_free, c) - 1,
            )
            base = c * self.n_items
            below = tf.searchsorted(
                self.shifted, base + j, side="right", out_type=tf.int64
            ) - tf.searchsorted(self.shifted, base, side="left", out_type=tf.int64)
            return j + below, tf.ones(tf.reshape(n, [1]), tf.bool)
        draw = self.gen.uniform(
            tf.reshape(n, [1]), 0, tf.size(self.pair_items, tf.int64), dtype=tf.int64
        )
        neg = tf.gather(self.pair_items, draw)
        return neg, tf.logical_not(self.is_positive(c, neg))


# --- the compiled step --------------------------------------------------------------------------
class _BPRUpdate:
    """One BPR step (an object, not a closure: TensorFlow counts retracing per function)."""

    def __init__(self, model, opt, sampler, context_rows, item_rows, num_negatives):
        self.model, self.opt, self.sampler = model, opt, sampler
        self.context_rows, self.item_rows, self.num_negatives = (
            context_rows,
            item_rows,
            num_negatives,
        )

    def __call__(self, c, pos, lambda_w, lambda_v):
        c, pos = tf.repeat(c, self.num_negatives), tf.repeat(pos, self.num_negatives)
        neg, keep = self.sampler(c)
        variables = [
            self.model.w,
            self.model.V,
        ]  # w0 cancels in the difference: never trained
        with tf.GradientTape() as tape:
            data, objective = _objective(
                *variables,
                self.context_rows,
                self.item_rows,
                c,
                pos,
                neg,
                tf.cast(keep, self.model.dtype),
                lambda_w,
                lambda_v,
            )
        self.opt.apply_gradients(zip(tape.gradient(objective, variables), variables))
        return data


def bpr_loss(
    model,
    contexts,
    items,
    context_ids,
    positive_ids,
    negative_ids,
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
) -> float:
    r"""The BPR objective (module docstring) of given triples, for checking and teaching.

    Args:
        model: a :class:`fmlib.FactorizationMachine`.
        contexts, items: context and item rows (see :func:`fmlib.ranking.scoring.catalogue_scores`).
        context_ids, positive_ids, negative_ids: ``(B,)`` row indices of the triples.
        lambda_w, lambda_v: L2 strengths of the per-triple penalty.

    Returns:
        :math:`\frac1B\sum [-\ln\sigma(\hat y_{ci^+} - \hat y_{ci^-}) + \Omega]` as a float.
    """
    C, I = check_blocks(contexts, items, model)
    c = _ids(context_ids, C.shape[0], "context_ids")
    p = _ids(positive_ids, I.shape[0], "positive_ids")
    q = _ids(negative_ids, I.shape[0], "negative_ids")
    if not len(c) == len(p) == len(q):
        raise ValueError(
            f"`context_ids`, `positive_ids` and `negative_ids` must have the same "
            f"length; got {len(c)}, {len(p)} and {len(q)}."
        )
    dt = model.dtype
    _, objective = _objective(
        model.w,
        model.V,
        padded_rows(C, dt),
        padded_rows(I, dt),
        c,
        p,
        q,
        tf.ones(len(c), dt),
        tf.constant(check_float(lambda_w, "lambda_w"), dt),
        tf.constant(check_float(lambda_v, "lambda_v"), dt),
    )
    return float(objective)


def _ids(values: Any, n_rows: int, name: str) -> np.ndarray:
    """Row indices as a 1-D int64 array within ``[0, n_rows)``, else an error naming ``name``."""
    values = np.asarray(values)
    if (
        values.ndim != 1
        or values.size == 0
        or not np.issubdtype(values.dtype, np.integer)
    ):
        raise ValueError(
            f"`{name}` must be a non-empty 1-D array of integer row indices; got "
            f"shape {values.shape} and dtype {values.dtype}."
        )
    if values.min() < 0 or values.max() >= n_rows:
        raise ValueError(
            f"`{name}` must index rows in [0, {n_rows}); got values from "
            f"{values.min()} to {values.max()}."
        )
    return values.astype(np.int64)


def _optimizer(optimizer, lr) -> keras.optimizers.Optimizer:
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if not (isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS):
        raise ValueError(
            f"`optimizer` must be one of {sorted(OPTIMIZERS)} or a Keras optimizer; "
            f"got {optimizer!r}."
        )
    lr = check_learning_rate(lr)
    return OPTIMIZERS[optimizer.lower()](learning_rate=lr)


def fit_bpr(
    model,
    contexts,
    items,
    context_ids,
    item_ids,
    *,
    num_epochs: int = 10,
    batch_size: int = 1024,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    lr: float = 0.01,
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
    num_negatives: int = 1,
    sampling: str = "uniform",
    validation: tuple | None = None,
    k: int = 10,
    patience: int | None = None,
    seed: int | None = None,
    verbose: bool = False,
) -> pd.DataFrame:
    r"""Train ``model`` with BPR on implicit feedback: pairs (context, positive item).

    Each epoch visits the training pairs in a shuffled order, ``batch_size`` pairs per step;
    each pair gets ``num_negatives`` sampled negatives, and one optimizer step minimises the
    mean BPR objective of the batch's triples (module docstring: the context-only terms cancel,
    so only ``w`` on item features and ``V`` are updated).

    Args:
        model: a :class:`fmlib.FactorizationMachine` whose columns hold both blocks.
        contexts: ``(n_contexts, n)`` rows of context features (user one-hot, user side
            features), dense or sparse.
        items: ``(n_items, n)`` rows of item features; columns disjoint from ``contexts``'.
        context_ids, item_ids: ``(N,)`` the training interactions, as row indices into
            ``contexts`` and ``items``.
        num_epochs: passes over the pairs.
        batch_size: pairs per step.
        optimizer: ``"sgd"`` (LearnBPR's plain SGD), ``"adam"``, ``"adagrad"`` or a Keras
            optimizer instance (then ``lr`` is not used).
        lr: learning rate of a named optimizer.
        lambda_w, lambda_v: strengths of the per-triple L2 penalty.
        num_negatives: negatives per positive pair and step.
        sampling: ``"uniform"`` (over the context's non-positive items) or ``"popularity"``.
        validation: ``(context_ids, item_ids)`` of held-out interactions (one per context);
            after each epoch the full-catalogue HR@k and NDCG@k are computed, excluding each
            context's training items.
        k: cut-off of the validation metrics.
        patience: with ``validation``, stop after this many epochs without a better NDCG@k
            and restore the weights of the best epoch; None trains every epoch and keeps the
            last weights.
        seed: seed of the shuffling and of the negative sampler.
        verbose: print one line per epoch.

    Returns:
        The history, a DataFrame indexed by epoch with the columns ``loss`` (mean BPR data
        term of the epoch's batches, each measured before its update), ``seconds``, and with
        ``validation`` ``val_hr@k`` and ``val_ndcg@k``. ``history.attrs["best_epoch"]`` is set
        when ``patience`` is.

    Raises:
        BPRDivergedError: the loss or the weights became NaN or infinite.
    """
    C, I = check_blocks(contexts, items, model)
    c_ids = _ids(context_ids, C.shape[0], "context_ids")
    i_ids = _ids(item_ids, I.shape[0], "item_ids")
    if len(c_ids) != len(i_ids):
        raise ValueError(
            f"`context_ids` and `item_ids` must have the same length; got "
            f"{len(c_ids)} and {len(i_ids)}."
        )
    num_epochs, batch_size = (
        check_int(num_epochs, "num_epochs"),
        check_int(batch_size, "batch_size"),
    )
    num_negatives, k = check_int(num_negatives, "num_negatives"), check_int(k, "k")
    if not (isinstance(sampling, str) and sampling in SAMPLINGS):
        raise ValueError(f"`sampling` must be one of {SAMPLINGS}; got {sampling!r}.")
    if patience is not None:
        patience = check_int(patience, "patience")
        if validation is None:
            raise ValueError(
                "`patience` needs `validation` (early stopping watches its NDCG@k)."
            )
    seed = check_seed(seed)
    lambdas = [
        tf.constant(check_float(x, name), model.dtype)
        for x, name in ((lambda_w, "lambda_w"), (lambda_v, "lambda_v"))
    ]
    val = _validation(validation, C, I, c_ids, i_ids)
    opt = _optimizer(optimizer, lr)
    opt.build([model.w, model.V])
    sampler = NegativeSampler(c_ids, i_ids, C.shape[0], I.shape[0], sampling, seed)
    step = tf.function(
        _BPRUpdate(
            model,
            opt,
            sampler,
            padded_rows(C, model.dtype),
            padded_rows(I, model.dtype),
            num_negatives,
        ),
        input_signature=[tf.TensorSpec([None], tf.int64)] * 2
        + [tf.TensorSpec([], model.dtype)] * 2,
    )
    rng = np.random.default_rng(seed)

    def run_epoch() -> float:
        """One pass over the shuffled pairs; the mean BPR data term of its batches."""
        order = rng.permutation(len(c_ids))
        total = 0.0
        for s in range(0, len(order), batch_size):
            b = order[s : s + batch_size]
            total += float(
                step(tf.constant(c_ids[b]), tf.constant(i_ids[b]), *lambdas)
            ) * len(b)
        return total / len(order)

    run_epoch.whole_steps = True  # each step one compiled call
    watch = EpochWatch(
        evaluate=None if val is None else lambda: _val_metrics(model, val, I, k),
        monitor=f"val_ndcg@{k}",
        higher_is_better=True,
        error=BPRDivergedError,
        name="BPR training",
        seconds_column=True,
    )
    return run_epochs(
        model, run_epoch, num_epochs, "ranking", None, patience, verbose, lr, watch
    )


def _val_metrics(model, val: tuple, I, k: int) -> dict:
    """Full-catalogue HR@k and NDCG@k of the validation pairs (training items excluded)."""
    return {
        name: value
        for name, value in ranking_metrics(
            catalogue_scores(model, val[0], I), val[1], val[2], k=k
        ).items()
        if name.startswith(("hr", "ndcg"))
    }


def _validation(validation, C, I, c_ids, i_ids) -> tuple | None:
    """``(context rows, targets, exclusion)`` of the validation pairs, or None."""
    if validation is None:
        return None
    if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
        raise ValueError("`validation` must be a pair (context_ids, item_ids).")
    vc = _ids(validation[0], C.shape[0], "validation[0]")
    vi = _ids(validation[1], I.shape[0], "validation[1]")
    if len(vc) != len(vi):
        raise ValueError(
            "`validation`'s context_ids and item_ids must have the same length."
        )
    train = sp.csr_matrix(
        (np.ones(len(c_ids), bool), (c_ids, i_ids)), shape=(C.shape[0], I.shape[0])
    )
    exclude = train[vc]
    exclude = exclude.toarray()
    exclude[np.arange(len(vi)), vi] = False  # a re-consumed item stays the target
    return C[vc], vi, exclude
