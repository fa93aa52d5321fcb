r"""Synthetic ratings with implicit feedback, generated as a relational design.

The design of the chapter "Relation blocks" at any size: rating :math:`i` of user :math:`u`
for item :math:`j` has the row

.. math::

    \mathbf x_i = \big(\underbrace{\text{one-hot}(u),\ \text{one-hot}(j)}_{\text{main
        block}},\ \underbrace{\tfrac{1}{\sqrt{|N(u)|}}\,\mathbb 1_{N(u)}}_{\text{user
        block, row } u}\big),

where :math:`N(u)` is the set of items user :math:`u` rated (the "rated=<item>" columns
of :func:`fmlib.movielens_design`, scaled the same way), and the target is a planted FM
on that row plus noise, :math:`y_i = \hat y(\mathbf x_i) + \varepsilon_i`,
:math:`\varepsilon_i \sim \mathcal N(0, \text{noise}^2)`. The user block is stored once
per user: :math:`N` ratings of :math:`N / \bar n` users take :math:`2N` non-zeros in
the main block and :math:`N` in the user block, where the flat matrix would take
:math:`N(2 + \bar n)`. The targets are computed on the blocks
(:func:`fmlib.data.design_predict.predict`), so a design whose flat matrix would not
fit in memory can still be generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.data.design_predict import predict
from fmlib.data.synthetic import PlantedFM, _power_law_weights
from fmlib.validation import check_float, check_int, check_seed


@dataclass
class RelationalRatings:
    """What :func:`make_relational_ratings` returns.

    Attributes:
        design: the :class:`~fmlib.RelationalDesign` (main block: user and item
            one-hot; relation block ``"user"``: the items each user rated, scaled by
            :math:`1/\\sqrt{|N(u)|}`), with ``groups`` ``"user"``, ``"item"`` and
            ``"rated"``.
        y: ``(N,)`` float64 targets.
        truth: the planted parameters, indexed by the column names ``user=<u>``,
            ``item=<j>`` and ``rated=<j>``.
    """

    design: RelationalDesign
    y: np.ndarray
    truth: PlantedFM


MAX_REDRAWS = 1000  # rounds of redrawing a user's repeated items


def _rated_items(counts, p_item, rng) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)`` int32 sorted by user then item: ``counts[u]`` distinct items
    per user, drawn by popularity ``p_item`` (repeats within a user are drawn again)."""
    n_items = p_item.size
    users = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    cdf = np.cumsum(p_item)

    def draw(size: int) -> np.ndarray:
        at = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
        return np.minimum(at, n_items - 1).astype(np.int32)

    items = draw(users.size)
    for _ in range(MAX_REDRAWS):
        key = users.astype(np.int64) * n_items + items
        order = np.argsort(key, kind="stable")
        key = key[order]
        repeated = order[1:][key[1:] == key[:-1]]  # all but the first of equal pairs
        if repeated.size == 0:
            return users, items[order]  # users are sorted already
        items[repeated] = draw(repeated.size)
    raise RuntimeError("could not draw distinct items per user; lower popularity_skew.")


def make_relational_ratings(
    n_ratings: int,
    *,
    ratings_per_user: int = 60,
    n_items: int = 20_000,
    k: int = 4,
    popularity_skew: float = 0.5,
    noise: float = 0.3,
    global_bias: float = 3.5,
    bias_std: float = 0.3,
    factor_std: float | None = None,
    seed: int | None = 0,
) -> RelationalRatings:
    """Generate ratings with a per-user implicit block from a planted FM.

    Args:
        n_ratings: number of distinct (user, item) ratings ``N``.
        ratings_per_user: the mean ratings per user, :math:`\\bar n`; there are
            ``round(N / ratings_per_user)`` users, each rating's user drawn uniformly
            (so the number of ratings, and the size of the implicit row, of a user is
            about Poisson(:math:`\\bar n`)), its item by popularity, distinct per user.
        n_items: number of items (must exceed ``ratings_per_user``).
        k: factors of the planted FM.
        popularity_skew: power-law exponent of item popularity (0 = uniform).
        noise: standard deviation of the Gaussian noise.
        global_bias, bias_std: the planted ``w0`` and the standard deviation of ``w``.
        factor_std: standard deviation of the planted factors; by default
            ``k ** -0.25``.
        seed: the same seed gives the same data.

    Returns:
        :class:`RelationalRatings`.

    Example:
        >>> data = make_relational_ratings(2000, ratings_per_user=50, n_items=300)
        >>> data.design.blocks[0].data.shape, data.y.shape
        ((40, 300), (2000,))
    """
    n_ratings = check_int(n_ratings, "n_ratings", 1)
    ratings_per_user = check_int(ratings_per_user, "ratings_per_user", 1)
    n_items = check_int(n_items, "n_items", 1)
    k = check_int(k, "k", 1)
    if n_items <= ratings_per_user:
        raise ValueError(
            f"`n_items` must exceed `ratings_per_user` ({ratings_per_user}) so that "
            f"users can rate that many distinct items; got {n_items}."
        )
    popularity_skew = check_float(popularity_skew, "popularity_skew", 0.0)
    noise = check_float(noise, "noise", 0.0)
    bias_std = check_float(bias_std, "bias_std", 0.0)
    global_bias = check_float(global_bias, "global_bias", -np.inf)
    factor_std = (
        k**-0.25 if factor_std is None else check_float(factor_std, "factor_std", 0.0)
    )
    n_users = max(1, round(n_ratings / ratings_per_user))
    rng = np.random.default_rng(check_seed(seed))
    counts = rng.multinomial(
        n_ratings, np.full(n_users, 1.0 / n_users)
    )  # user ~ uniform
    if counts.max() > n_items:
        raise ValueError(
            f"a user drew {counts.max()} ratings, more than `n_items` ({n_items}); "
            "ask for more items."
        )
    p_item = _power_law_weights(n_items, popularity_skew, rng)
    users, items = _rated_items(counts, p_item, rng)
    scale = 1.0 / np.sqrt(np.maximum(counts, 1))
    implicit = sp.csr_matrix(
        (scale[users], items, np.r_[0, np.cumsum(counts)]), shape=(n_users, n_items)
    )
    order = rng.permutation(n_ratings)  # the ratings in random order
    users, items = users[order], items[order]
    del order
    main = sp.csr_matrix(
        (
            np.ones(2 * n_ratings),
            np.stack([users, n_users + items], 1).ravel(),
            np.arange(0, 2 * n_ratings + 1, 2, dtype=np.int64),
        ),
        shape=(n_ratings, n_users + n_items),
    )
    del items
    block = RelationBlock(implicit, users, "user")
    names = (
        [f"user={u}" for u in range(n_users)]
        + [f"item={j}" for j in range(n_items)]
        + [f"rated={j}" for j in range(n_items)]
    )
    groups = {  # one prior group per kind of column, as movielens_design gives
        "user": slice(0, n_users),
        "item": slice(n_users, n_users + n_items),
        "rated": slice(n_users + n_items, n_users + 2 * n_items),
    }
    design = RelationalDesign(main, [block], groups=groups, feature_names=names)
    n = design.n_features
    w, V = rng.normal(0, bias_std, n), rng.normal(0, factor_std, (n, k))
    y = predict(design, global_bias, w, V) + rng.normal(0, noise, n_ratings)
    truth = PlantedFM(
        global_bias, pd.Series(w, index=names), pd.DataFrame(V, index=names)
    )
    return RelationalRatings(design, y, truth)
