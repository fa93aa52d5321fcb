r"""Top-K ranking metrics for leave-one-out evaluation (chapter "Ranking: learning from
implicit feedback").

Each evaluated context :math:`c` (a user) has one held-out target item :math:`t` and a
score :math:`\hat y_{cj}` for every item :math:`j`. The *candidates* are the items not excluded (the items the user
already interacted with in training are excluded; the target never is). The target's rank
counts the candidates scored at least as high, ties resolved against the target (a model that
scores everything alike gets the worst rank, not the best):

.. math::

    r = 1 + \bigl|\{\, j \ne t \text{ candidate} : \hat y_{cj} \ge \hat y_{ct} \,\}\bigr| .

With one relevant item per user and the cutoff :math:`K` (the argument ``k``; not the
number of factors) the metrics are, averaged over users,

.. math::

    & \mathrm{HR@}K = \mathbb 1[r \le K], \qquad \mathrm{RR} = \frac1r, \\
    & \mathrm{NDCG@}K = \frac{\mathbb 1[r \le K]}{\log_2(r + 1)}, \\
    & \mathrm{AUC} = \frac{|\{j : \hat y_{cj} < \hat y_{ct}\}|
        + \tfrac12 |\{j \ne t : \hat y_{cj} = \hat y_{ct}\}|}{n_{\mathrm{cand}} - 1},

where :math:`n_{\mathrm{cand}}` is the number of candidates (the target included) and the MRR
is the mean of RR. HR@K equals recall@K here (one relevant item), and the ideal DCG is 1, so
NDCG@K is the DCG.

*Full* ranking uses every candidate (the default). *Sampled* ranking (``n_negatives=100``,
common in papers before Krichene and Rendle, KDD 2020) ranks the target among
``n_negatives`` candidates drawn uniformly at random; it is cheaper but can reorder methods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmlib.validation import check_int, check_seed

METRIC_NAMES = ("hr", "ndcg", "mrr", "auc")


def exclusion_mask(
    exclude: Any, shape: tuple[int, int], name: str = "exclude"
) -> np.ndarray:
    """``exclude`` as a boolean ``(contexts, items)`` array: True where an item is excluded.

    ``exclude`` may be None (nothing excluded), a boolean or 0/1 array of ``shape``, a
    ``scipy.sparse`` matrix of ``shape`` (its stored non-zeros are excluded), or a sequence of
    one sequence of item indices per context.
    """
    n_rows, n_items = shape
    if exclude is None:
        return np.zeros(shape, bool)
    if sp.issparse(exclude):
        if exclude.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}; got {exclude.shape}.")
        coo = sp.coo_matrix(exclude)
        mask = np.zeros(shape, bool)
        mask[coo.row, coo.col] = coo.data != 0
        return mask
    if isinstance(exclude, np.ndarray) and exclude.ndim == 2:
        if exclude.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}; got {exclude.shape}.")
        if exclude.dtype != bool and not np.isin(exclude, (0, 1)).all():
            raise ValueError(f"`{name}` as an array must be boolean or 0/1.")
        return exclude.astype(bool)
    if isinstance(exclude, np.ndarray) and exclude.dtype != object:
        raise ValueError(
            f"`{name}` as an array must be 2-D of shape {shape} (a mask); got shape "
            f"{exclude.shape}."
        )
    try:
        rows = list(exclude)
    except TypeError:
        raise TypeError(
            f"`{name}` must be None, a boolean array, a scipy.sparse matrix or a "
            f"sequence of item-index sequences; got {type(exclude).__name__}."
        ) from None
    if len(rows) != n_rows:
        raise ValueError(
            f"`{name}` must hold one sequence of item indices per context "
            f"({n_rows}); got {len(rows)}."
        )
    mask = np.zeros(shape, bool)
    rows = [None if np.isscalar(items) else np.asarray(list(items)) for items in rows]
    if rows and all(items is not None and items.shape == (n_items,) for items in rows):
        # nested lists of full rows: a 0/1 or boolean mask written as lists would be read as
        # indices (0 and 1) if taken as index lists
        if all(items.dtype == bool for items in rows):
            return np.array(rows, bool)
        if all(
            np.issubdtype(items.dtype, np.number) and np.isin(items, (0, 1)).all()
            for items in rows
        ):
            raise ValueError(
                f"`{name}` looks like a 0/1 mask written as nested lists, which "
                "reads as item indices 0 and 1; pass it as a numpy boolean array "
                "(np.asarray(exclude, bool)), or one list of item indices per context."
            )
    for r, items in enumerate(rows):
        if items is None:
            raise TypeError(f"`{name}[{r}]` must be a sequence of item indices.")
        if items.size and not np.issubdtype(items.dtype, np.integer):
            raise TypeError(
                f"`{name}[{r}]` must hold integer item indices; got dtype "
                f"{items.dtype} (a float index would be truncated)."
            )
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(
                f"`{name}[{r}]` holds item indices outside [0, {n_items})."
            )
        if items.size != np.unique(items).size:
            raise ValueError(
                f"`{name}[{r}]` repeats item indices; give each excluded item once "
                "(or a boolean mask as a numpy array)."
            )
        mask[r, items.astype(np.int64)] = True
    return mask


def _checked_scores_targets(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    if not (
        np.issubdtype(scores.dtype, np.floating)
        or np.issubdtype(scores.dtype, np.integer)
    ):
        raise TypeError(
            f"`scores` must be real numbers (float or int); got dtype {scores.dtype}."
        )
    if scores.ndim != 2:
        raise ValueError(
            f"`scores` must be a 2-D numeric array (contexts, items); got shape "
            f"{scores.shape} and dtype {scores.dtype}."
        )
    if scores.shape[0] == 0:
        raise ValueError(
            "`scores` has no contexts (0 rows): there is nothing to average over."
        )
    if not np.isfinite(scores).all():
        raise ValueError("`scores` must be finite; it holds NaN or infinite values.")
    targets = np.asarray(targets)
    if targets.size and not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(
            f"`targets` must be integer item indices; got dtype {targets.dtype} (a "
            "float index would be truncated)."
        )
    if targets.shape != (scores.shape[0],) or not np.issubdtype(
        targets.dtype, np.integer
    ):
        raise ValueError(
            f"`targets` must be {scores.shape[0]} integer item indices (one per row "
            f"of `scores`); got shape {targets.shape} and dtype {targets.dtype}."
        )
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"`targets` must be item indices in [0, {scores.shape[1]}).")
    return scores, targets.astype(np.int64)


def sample_candidates(
    excluded: np.ndarray, targets: np.ndarray, n_negatives: int, seed: int | None = 0
) -> np.ndarray:
    """Boolean ``(contexts, items)`` mask of sampled candidates: the target plus
    ``n_negatives`` items drawn uniformly without replacement from the non-excluded ones.

    A context with fewer non-excluded items keeps all of them.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(targets))
    keys = rng.random(excluded.shape)
    keys[excluded] = np.inf
    keys[rows, targets] = np.inf
    n_neg = min(n_negatives, excluded.shape[1])
    drawn = np.argpartition(keys, n_neg - 1, axis=1)[:, :n_neg]
    candidates = np.zeros(excluded.shape, bool)
    candidates[rows[:, None], drawn] = np.isfinite(keys[rows[:, None], drawn])
    candidates[rows, targets] = True
    return candidates


def rank_counts(
    scores: Any,
    targets: Any,
    exclude: Any = None,
    n_negatives: int | None = None,
    seed: int | None = 0,
) -> dict[str, np.ndarray]:
    """Per context: the candidates scored above, equal to and below the target.

    Returns ``{"above", "ties", "below", "n_candidates", "rank"}`` (integer arrays; ``ties``
    does not count the target itself; ``rank = 1 + above + ties``). Arguments as in
    :func:`ranking_metrics`.
    """
    scores, targets = _checked_scores_targets(scores, targets)
    excluded = exclusion_mask(exclude, scores.shape)
    rows = np.arange(len(targets))
    if excluded[rows, targets].any():
        bad = int(np.flatnonzero(excluded[rows, targets])[0])
        raise ValueError(
            f"the target item of row {bad} ({targets[bad]}) is in `exclude`: a "
            "held-out item must not be excluded."
        )
    if n_negatives is None:
        candidates = ~excluded
    else:
        n_negatives = check_int(n_negatives, "n_negatives")
        candidates = sample_candidates(excluded, targets, n_negatives, check_seed(seed))
    candidates[rows, targets] = False  # the others
    s_t = scores[rows, targets][:, None]
    above = np.count_nonzero(candidates & (scores > s_t), axis=1)
    ties = np.count_nonzero(candidates & (scores == s_t), axis=1)
    n_others = np.count_nonzero(candidates, axis=1)
    return {
        "above": above,
        "ties": ties,
        "below": n_others - above - ties,
        "n_candidates": n_others + 1,
        "rank": 1 + above + ties,
    }


def ranking_metrics(
    scores: Any,
    targets: Any,
    exclude: Any = None,
    k: int = 10,
    n_negatives: int | None = None,
    seed: int | None = 0,
) -> dict[str, float]:
    r"""HR@k (= recall@k), NDCG@k, MRR and AUC of held-out targets, averaged over contexts.

    Definitions in the module docstring; chapter "Ranking: learning from implicit feedback".

    Args:
        scores: ``(contexts, items)`` scores, higher is better (e.g. from
            ``fmlib.ranking.catalogue_scores``).
        targets: ``(contexts,)`` index of each context's held-out item.
        exclude: items that are not candidates (a context's training items); see
            :func:`exclusion_mask` for the accepted forms. The target must not be excluded.
        k: the cut-off of HR@k and NDCG@k.
        n_negatives: None (default) ranks the target against every candidate (full ranking);
            an integer ranks it against that many candidates sampled uniformly.
        seed: seed of the sampled candidates (used only with ``n_negatives``).

    Returns:
        ``{"hr@k", "ndcg@k", "mrr", "auc"}`` with ``k`` written out, e.g. ``"ndcg@10"``.
        AUC is averaged over the contexts with at least one candidate besides the target
        (with none it is undefined: NaN if no context has one).

    Example:
        >>> m = ranking_metrics([[0.9, 0.1, 0.5, 0.3, 0.7]], [2], k=3)
        >>> round(m["ndcg@3"], 4), round(m["mrr"], 4), m["auc"]
        (0.5, 0.3333, 0.5)
    """
    k = check_int(k, "k")
    c = rank_counts(scores, targets, exclude, n_negatives, seed)
    rank = c["rank"]
    hit = rank <= k
    n_others = c["n_candidates"] - 1
    defined = (
        n_others > 0
    )  # AUC compares the target with other candidates: none, no AUC
    auc = (
        ((c["below"] + 0.5 * c["ties"])[defined] / n_others[defined]).mean()
        if defined.any()
        else math.nan
    )
    return {
        f"hr@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0).mean()),
        "mrr": float((1.0 / rank).mean()),
        "auc": float(auc),
    }
