r"""Synthetic user–item ratings drawn from a known Factorization Machine.

The point of synthetic data is that the truth is known: a test or a chapter can
train an FM on the ratings and compare what it learned with the parameters that
generated them (chapter "Synthetic ratings with known truth").

Every rating of user :math:`u` for item :math:`i` comes from the FM of Rendle
(2010), eq. (1), on the feature vector

.. math::

    \mathbf x = [\,\text{one-hot}(u),\ \text{one-hot}(i),\ \text{one-hot}(\text{age}(u)),\
    \text{genres}(i)/|\text{genres}(i)|\,]

(the side blocks only when ``n_age_groups`` / ``n_genres`` are > 0), plus noise:
:math:`y = w_0 + \mathbf w^\top \mathbf x + \sum_{a<b} \langle \mathbf v_a, \mathbf v_b\rangle x_a x_b + \varepsilon`,
:math:`\varepsilon \sim \mathcal N(0, \text{noise}^2)`. Everything is vectorised
with numpy: the cost is O(n_ratings · k) with no Python loop per rating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fmlib.validation import check_float, check_int, check_seed

MAX_DRAWS_PER_RATING = 20  # redraws allowed before the exact (dense) sampler takes over
MAX_DENSE_PAIRS = 5 * 10**7  # the exact sampler holds one float per (user, item) pair

OUTPUTS = ("continuous", "stars", "binary")


@dataclass
class PlantedFM:
    """The true parameters of a synthetic data set, indexed by feature name.

    Feature names are ``"user=<id>"``, ``"item=<id>"``, ``"age_group=<g>"`` and
    ``"genre=<g>"``, the names :class:`fmlib.FeatureEncoder` gives the same columns.

    Attributes:
        w0: global bias.
        w: ``pandas.Series`` of feature weights.
        V: ``pandas.DataFrame`` of factors, one row per feature, ``k`` columns.
    """

    w0: float
    w: pd.Series
    V: pd.DataFrame

    def interaction(self, a: str, b: str) -> float:
        """The true pairwise weight ⟨v_a, v_b⟩ of two features, by name."""
        return float(self.V.loc[a].to_numpy() @ self.V.loc[b].to_numpy())


@dataclass
class SyntheticRatings:
    """What :func:`make_ratings` returns.

    Attributes:
        ratings: one row per (user, item) pair, no duplicates: columns ``user``,
            ``item``, ``rating`` and the side columns ``age_group`` (users) and
            ``genres`` (items, a tuple of genre ids) when enabled.
        users: one row per user (``user``, ``age_group``).
        items: one row per item (``item``, ``genres``).
        truth: the planted parameters.
        score: the noise-free FM score of every rating (same order as ``ratings``).
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    truth: PlantedFM
    score: np.ndarray


def _power_law_weights(n: int, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Sampling weights ∝ rank^(-skew) over a random ranking (skew=0: uniform)."""
    ranks = rng.permutation(n) + 1.0
    weights = ranks ** (-skew)
    return weights / weights.sum()


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (by sorting: faster here than np.unique's hash table)."""
    values = np.sort(values)
    keep = np.empty(values.size, dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _sample_pairs_exact(
    n_users: int,
    n_items: int,
    n_ratings: int,
    p_user: np.ndarray,
    p_item: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sampling without replacement over all pairs (Gumbel top-k: the n largest of
    log p + Gumbel noise). Exact, but O(n_users * n_items) memory."""
    n_pairs = n_users * n_items
    if n_pairs > MAX_DENSE_PAIRS:
        raise ValueError(
            f"cannot draw `n_ratings`={n_ratings} distinct pairs: with popularity_skew and "
            "activity_skew this large, redrawing almost never finds a new pair, and the exact "
            f"sampler would need {n_pairs} pairs in memory. Lower the skews or ask for fewer ratings."
        )
    with np.errstate(
        divide="ignore"
    ):  # weight 0 -> key -inf: never chosen before a reachable pair
        keys = (np.log(p_user)[:, None] + np.log(p_item)[None, :]).ravel()
    keys = keys + rng.gumbel(size=n_pairs)
    chosen = np.argpartition(-keys, n_ratings - 1)[:n_ratings]
    chosen = chosen[rng.permutation(n_ratings)]
    return chosen // n_items, chosen % n_items


def _sample_pairs(
    n_users: int,
    n_items: int,
    n_ratings: int,
    p_user: np.ndarray,
    p_item: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_ratings`` distinct (user, item) pairs, user ~ p_user, item ~ p_item."""
    n_pairs = n_users * n_items
    reachable = np.count_nonzero(p_user) * np.count_nonzero(p_item)
    if reachable < n_ratings:
        raise ValueError(
            f"only {reachable} (user, item) pairs have a non-zero probability with "
            f"popularity_skew and activity_skew this large, fewer than `n_ratings`={n_ratings}; "
            "lower the skews or ask for fewer ratings."
        )
    if n_ratings > 0.3 * n_pairs:
        return _sample_pairs_exact(n_users, n_items, n_ratings, p_user, p_item, rng)
    # Sparse regime: draw pairs with replacement, keep the distinct ones (a sort, not a
    # hash set), top up until there are enough, then keep a random n_ratings of them.
    cdf_user, cdf_item = np.cumsum(p_user), np.cumsum(p_item)

    def draw(size: int) -> np.ndarray:
        u = np.minimum(
            np.searchsorted(cdf_user, rng.random(size) * cdf_user[-1], side="right"),
            n_users - 1,
        )
        i = np.minimum(
            np.searchsorted(cdf_item, rng.random(size) * cdf_item[-1], side="right"),
            n_items - 1,
        )
        return u.astype(np.int64) * n_items + i

    budget = MAX_DRAWS_PER_RATING * n_ratings  # bounds the time spent redrawing
    budget -= int(n_ratings * 1.1) + 16
    distinct = _distinct(draw(int(n_ratings * 1.1) + 16))
    while distinct.size < n_ratings and budget > 0:
        # draw enough for the rest, at the rate of new pairs per draw seen so far
        missing = n_ratings - distinct.size
        size = min(int(missing * 1.5 * n_ratings / distinct.size) + 16, budget)
        budget -= size
        distinct = _distinct(np.concatenate([distinct, draw(size)]))
    if distinct.size < n_ratings:
        # so skewed that redrawing almost never finds a new pair: sample exactly instead
        return _sample_pairs_exact(n_users, n_items, n_ratings, p_user, p_item, rng)
    pair_ids = distinct[rng.permutation(distinct.size)[:n_ratings]]
    return pair_ids // n_items, pair_ids % n_items


def make_ratings(
    n_users: int = 1000,
    n_items: int = 500,
    *,
    n_ratings: int | None = None,
    density: float | None = None,
    k: int = 4,
    n_age_groups: int = 0,
    n_genres: int = 0,
    max_genres_per_item: int = 3,
    popularity_skew: float = 0.8,
    activity_skew: float = 0.8,
    noise: float = 0.3,
    global_bias: float = 3.5,
    bias_std: float = 0.5,
    factor_std: float | None = None,
    output: str = "continuous",
    seed: int | None = 0,
) -> SyntheticRatings:
    """Generate ratings from a planted FM; see the module docstring for the model.

    Args:
        n_users, n_items: numbers of users and items (ids ``0 .. n-1``).
        n_ratings: number of distinct (user, item) ratings. Give this or ``density``.
        density: fraction of all user–item pairs that are rated (default 0.05).
        k: number of latent factors of the planted FM.
        n_age_groups: if > 0, every user gets an age group with its own bias and factors.
        n_genres: if > 0, every item gets 1..``max_genres_per_item`` genres; the genre
            block is multi-hot normalised to sum to 1.
        popularity_skew, activity_skew: power-law exponents of item popularity and user
            activity (0 = uniform; real rating data are long-tailed, about 0.5–1).
        noise: standard deviation of the Gaussian noise added to the score.
        global_bias: the planted ``w0``.
        bias_std: standard deviation of the planted feature weights ``w``.
        factor_std: standard deviation of the planted factors; by default
            ``k ** -0.25`` so that an interaction ⟨v_a, v_b⟩ has standard deviation 1.
        output: ``"continuous"`` (score + noise), ``"stars"`` (rounded and clipped to
            1..5) or ``"binary"`` (a click: 1 with probability σ(score + noise − w0)).
        seed: the same seed gives the same data, bit for bit.

    Example:
        >>> data = make_ratings(50, 40, n_ratings=300, k=2, seed=1)
        >>> data.ratings.shape, data.ratings[["user", "item"]].duplicated().any()
        ((300, 3), False)
    """
    n_users = check_int(n_users, "n_users", 1)
    n_items = check_int(n_items, "n_items", 1)
    k = check_int(k, "k", 1)
    n_age_groups = check_int(n_age_groups, "n_age_groups", 0)
    n_genres = check_int(n_genres, "n_genres", 0)
    max_genres_per_item = check_int(max_genres_per_item, "max_genres_per_item", 1)
    if not (isinstance(output, str) and output in OUTPUTS):
        raise ValueError(f"`output` must be one of {OUTPUTS}; got {output!r}.")
    n_pairs = n_users * n_items
    if n_ratings is not None and density is not None:
        raise ValueError("give `n_ratings` or `density`, not both.")
    if n_ratings is None:
        density = 0.05 if density is None else check_float(density, "density")
        if not 0 < density <= 1:
            raise ValueError(f"`density` must be in (0, 1]; got {density}.")
        n_ratings = max(1, int(round(density * n_pairs)))
    n_ratings = check_int(n_ratings, "n_ratings", 1)
    if n_ratings > n_pairs:
        raise ValueError(
            f"`n_ratings` must be <= n_users * n_items = {n_pairs}; got {n_ratings}."
        )
    noise = check_float(noise, "noise", 0.0)
    bias_std = check_float(bias_std, "bias_std", 0.0)
    popularity_skew = check_float(popularity_skew, "popularity_skew", 0.0)
    activity_skew = check_float(activity_skew, "activity_skew", 0.0)
    factor_std = (
        k**-0.25 if factor_std is None else check_float(factor_std, "factor_std", 0.0)
    )
    global_bias = check_float(global_bias, "global_bias", -np.inf)

    rng = np.random.default_rng(check_seed(seed))
    # --- the planted FM -------------------------------------------------------------
    w_user, w_item = rng.normal(0, bias_std, n_users), rng.normal(0, bias_std, n_items)
    V_user, V_item = (
        rng.normal(0, factor_std, (n_users, k)),
        rng.normal(0, factor_std, (n_items, k)),
    )
    w_age, V_age = (
        rng.normal(0, bias_std, n_age_groups),
        rng.normal(0, factor_std, (n_age_groups, k)),
    )
    w_genre, V_genre = (
        rng.normal(0, bias_std, n_genres),
        rng.normal(0, factor_std, (n_genres, k)),
    )

    # --- side features --------------------------------------------------------------
    age = rng.integers(0, n_age_groups, n_users) if n_age_groups else None
    if n_genres:
        n_g = rng.integers(1, min(max_genres_per_item, n_genres) + 1, n_items)
        # distinct genres per item: the first n_g of a random ordering of all genres
        order = np.argsort(rng.random((n_items, n_genres)), axis=1)
        member = np.zeros((n_items, n_genres))
        mask = np.arange(n_genres)[None, :] < n_g[:, None]
        member[np.repeat(np.arange(n_items), n_genres)[mask.ravel()], order[mask]] = 1.0
        genre_x = member / n_g[:, None]  # normalised multi-hot block
    # Per-user and per-item parts of the FM (the user and item blocks of x are fixed by u and i):
    # score(u, i) = w0 + lin_u + lin_i + 1/2 (|a_u + b_i|^2 - s_u - s_i), Lemma 3.1 per pair.
    lin_u, a_u, s_u = w_user.copy(), V_user.copy(), (V_user**2).sum(1)
    if n_age_groups:
        lin_u += w_age[age]
        a_u += V_age[age]
        s_u += (V_age[age] ** 2).sum(1)
    lin_i, b_i, s_i = w_item.copy(), V_item.copy(), (V_item**2).sum(1)
    if n_genres:
        lin_i += genre_x @ w_genre
        b_i += genre_x @ V_genre
        s_i += (genre_x**2) @ (V_genre**2).sum(1)

    # --- who rates what ---------------------------------------------------------------
    p_user = _power_law_weights(n_users, activity_skew, rng)
    p_item = _power_law_weights(n_items, popularity_skew, rng)
    users, items = _sample_pairs(n_users, n_items, n_ratings, p_user, p_item, rng)

    total = a_u[users] + b_i[items]
    score = (
        global_bias
        + lin_u[users]
        + lin_i[items]
        + 0.5 * ((total**2).sum(1) - s_u[users] - s_i[items])
    )
    noisy = score + rng.normal(0, noise, n_ratings) if noise > 0 else score.copy()
    if output == "continuous":
        rating = noisy
    elif output == "stars":
        rating = np.clip(np.rint(noisy), 1, 5).astype(np.int64)
    else:
        rating = (
            rng.random(n_ratings) < 1 / (1 + np.exp(-(noisy - global_bias)))
        ).astype(np.int64)

    ratings = pd.DataFrame({"user": users, "item": items, "rating": rating})
    user_table = pd.DataFrame({"user": np.arange(n_users)})
    item_table = pd.DataFrame({"item": np.arange(n_items)})
    if n_age_groups:
        user_table["age_group"] = age
        ratings["age_group"] = age[users]
    if n_genres:
        genre_lists = [tuple(np.flatnonzero(row).tolist()) for row in member]
        item_table["genres"] = genre_lists
        ratings["genres"] = item_table["genres"].to_numpy()[items]

    names = (
        [f"user={u}" for u in range(n_users)]
        + [f"item={i}" for i in range(n_items)]
        + [f"age_group={g}" for g in range(n_age_groups)]
        + [f"genre={g}" for g in range(n_genres)]
    )
    truth = PlantedFM(
        w0=global_bias,
        w=pd.Series(np.concatenate([w_user, w_item, w_age, w_genre]), index=names),
        V=pd.DataFrame(np.concatenate([V_user, V_item, V_age, V_genre]), index=names),
    )
    return SyntheticRatings(
        ratings=ratings, users=user_table, items=item_table, truth=truth, score=score
    )
