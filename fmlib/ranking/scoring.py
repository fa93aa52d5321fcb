r"""Scoring a whole catalogue with the FM decomposition (chapter "Ranking: learning from
implicit feedback").

When the features split into a *context* block (the user and the user's side features)
and an *item* block (the item and its side features), an input is
:math:`\mathbf x = \mathbf x_c + \mathbf x_i` with disjoint supports, and eq. (1) of
Rendle (2010) separates into three parts:

.. math::

    & \hat y(\mathbf x_c + \mathbf x_i)
    = \underbrace{w_0 + \mathbf w^\top \mathbf x_c + \phi(\mathbf x_c)}_{a_c} \\
    & \qquad + \underbrace{\mathbf w^\top \mathbf x_i + \phi(\mathbf x_i)}_{b_i}
      + \langle \mathbf V^\top \mathbf x_c, \mathbf V^\top \mathbf x_i \rangle, \\
    & \phi(\mathbf x) = \sum_{j<l} \langle \mathbf v_j, \mathbf v_l\rangle x_j x_l .

The cross pairs :math:`(j, l)`, one feature in each block, sum to the inner product of the
two blocks' factor sums. For ``m`` contexts and a catalogue of ``n_items`` items the scores
are therefore one matrix product plus two broadcast vectors,

.. math::

    & \mathbf S = \mathbf a \mathbf 1^\top + \mathbf 1 \mathbf b^\top + \mathbf P \mathbf Q^\top,
    \\
    & \mathbf P = \mathbf X_c \mathbf V, \quad \mathbf Q = \mathbf X_i \mathbf V,

costing :math:`O(k\,(\mathrm{nnz}(\mathbf X_c) + \mathrm{nnz}(\mathbf X_i)) + k\, m\, n_\mathrm{items})`
instead of ``m * n_items`` model calls on concatenated rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.model.fm import FactorizationMachine
from fmlib.model.pairwise import factor_products, lemma31
from fmlib.ranking.metrics import exclusion_mask
from fmlib.validation import as_host_matrix, check_int, iter_batches


def _support(X: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """The columns holding a non-zero in some row of a host matrix."""
    if sp.issparse(X):
        X = X.tocsr()
        return np.unique(X.indices[X.data != 0])
    return np.flatnonzero((X != 0).any(axis=0))


def check_blocks(contexts, items, model) -> tuple:
    """``contexts`` and ``items`` as checked host matrices of the model's width whose non-zero
    columns are disjoint (the condition for the decomposition), else a ValueError; a ``model``
    that is not a :class:`fmlib.FactorizationMachine` is a TypeError."""
    if not isinstance(model, FactorizationMachine):
        raise TypeError(
            f"`model` must be a fmlib.FactorizationMachine; got {type(model).__name__}."
        )
    C = as_host_matrix(
        contexts, model.n_features, model.dtype, name="contexts", min_rows=1
    )
    I = as_host_matrix(items, model.n_features, model.dtype, name="items", min_rows=1)
    shared = np.intersect1d(_support(C), _support(I))
    if shared.size:
        raise ValueError(
            f"`contexts` and `items` must use disjoint feature columns (context "
            f"features and item features); both use columns {shared[:8].tolist()}"
            f"{' ...' if shared.size > 8 else ''}."
        )
    return C, I


def fm_parts(model, X) -> tuple[tf.Tensor, tf.Tensor]:
    r"""``(self_term, XV)`` of a checked batch: :math:`\mathbf w^\top \mathbf x + \phi(\mathbf x)`
    (no :math:`w_0`), shape ``(batch,)``, and :math:`\mathbf V^\top \mathbf x`, shape ``(batch, k)``.
    """
    k = model.k
    XVw, sum_v2x2 = factor_products(
        X, tf.concat([model.V, model.w[:, None]], axis=1), model.V
    )
    return XVw[:, k] + lemma31(XVw[:, :k], sum_v2x2), XVw[:, :k]


def _host_parts(model, X, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [fm_parts(model, Xb) for _, _, Xb in iter_batches(X, batch_size)]
    return (
        np.concatenate([p[0].numpy() for p in parts]),
        np.concatenate([p[1].numpy() for p in parts]),
    )


def catalogue_scores(model, contexts, items, batch_size: int = 4096) -> np.ndarray:
    r"""ŷ of every context against every item, ``(n_contexts, n_items)``, by the decomposition
    :math:`\mathbf S = \mathbf a \mathbf 1^\top + \mathbf 1 \mathbf b^\top + \mathbf P \mathbf Q^\top`
    (module docstring).

    Equal, up to rounding, to ``model(contexts[c] + items[i])`` for every pair.

    Args:
        model: a :class:`fmlib.FactorizationMachine`.
        contexts: ``(n_contexts, n)`` context rows (context features only), dense or sparse.
        items: ``(n_items, n)`` item rows (item features only), dense or sparse; no column may
            be non-zero in both ``contexts`` and ``items``.
        batch_size: rows per pass when computing the parts.

    Returns:
        A float numpy array of the model's dtype.
    """
    batch_size = check_int(batch_size, "batch_size")
    C, I = check_blocks(contexts, items, model)
    a, P = _host_parts(model, C, batch_size)
    b, Q = _host_parts(model, I, batch_size)
    return (model.w0.numpy() + a)[:, None] + b[None, :] + P @ Q.T


def recommend(
    model, context, items, k: int = 10, exclude: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best-scored items for each context, best first, and their scores.

    Args:
        model: a :class:`fmlib.FactorizationMachine`.
        context: one context row ``(n,)`` or several ``(m, n)``.
        items: ``(n_items, n)`` item rows (see :func:`catalogue_scores`).
        k: how many items to return (at most the number of items not excluded).
        exclude: items never recommended, e.g. those already seen: for one context a sequence
            of item indices; for several, any form :func:`fmlib.ranking.metrics.exclusion_mask`
            accepts.

    Returns:
        ``(item_indices, scores)``, each ``(k,)`` for one context or ``(m, k)`` for several.

    Example:
        >>> top, scores = recommend(fm, contexts[0], items, k=5, exclude=[3, 17])
        >>> top.shape
        (5,)
    """
    k = check_int(k, "k")
    sparse = sp.issparse(context) or isinstance(context, tf.SparseTensor)
    single = not sparse and np.ndim(context) == 1
    S = catalogue_scores(model, context, items)
    if single and exclude is not None:
        exclude = [exclude]
    excluded = exclusion_mask(exclude, S.shape)
    available = int(np.min(np.count_nonzero(~excluded, axis=1)))
    if k > available:
        raise ValueError(
            f"`k`={k} is more than the {available} items left after `exclude`."
        )
    S = np.where(excluded, -np.inf, S)
    top = np.argpartition(-S, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    scores = np.take_along_axis(S, top, axis=1)
    return (top[0], scores[0]) if single else (top, scores)
