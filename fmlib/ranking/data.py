"""Implicit feedback from MovieLens: context and item rows, interactions and the split
(chapter "Ranking: learning from implicit feedback")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fmlib.data.encoding import FeatureEncoder
from fmlib.ranking.split import leave_last_out


@dataclass
class ImplicitData:
    """Implicit feedback in the layout of :func:`fmlib.ranking.bpr.fit_bpr`.

    Attributes:
        contexts: ``(n_users, n)`` CSR rows of context features (left block of columns).
        items: ``(n_items, n)`` CSR rows of item features (right block of columns).
        user_ids, item_ids: ``(N,)`` every interaction as row indices into them.
        train, valid, test: row indices of the interactions in each part of the split.
        feature_names: one name per column.
    """

    contexts: sp.csr_matrix
    items: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    feature_names: list

    @property
    def n_features(self) -> int:
        return self.contexts.shape[1]

    def pairs(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(user_ids, item_ids)`` of ``"train"``, ``"valid"`` or ``"test"``."""
        rows = getattr(self, part)
        return self.user_ids[rows], self.item_ids[rows]

    def seen(self, part: str = "train") -> sp.csr_matrix:
        """``(n_users, n_items)`` boolean matrix of the interactions in ``part``."""
        u, i = self.pairs(part)
        return sp.csr_matrix(
            (np.ones(len(u), bool), (u, i)),
            shape=(self.contexts.shape[0], self.items.shape[0]),
        )


def movielens_implicit(ml, side_features: bool = True) -> ImplicitData:
    """MovieLens as implicit feedback: every rating is a positive, split leave-last-out by time.

    Contexts are the users (one-hot), with ``side_features`` also their age group, gender and
    occupation; items are the movies (one-hot), with ``side_features`` also their genres
    (multi-hot, normalised to sum 1). Users and items are numbered in the order of
    ``ml.users`` and ``ml.items``.

    Args:
        ml: a :class:`fmlib.MovieLens` (from :func:`fmlib.load_movielens`).
        side_features: add the user and item attributes.
    """
    users = ml.with_side_features(
        ml.users[["user"]].assign(item=ml.items["item"].iloc[0])
    )
    items = ml.items[["item", "genres"]]
    ucols = ["user"] + (["age_bucket", "gender", "occupation"] if side_features else [])
    uenc = FeatureEncoder(categorical=ucols)
    ienc = FeatureEncoder(
        categorical=["item"], multi_hot=["genres"] if side_features else ()
    )
    U, I = uenc.fit_transform(users), ienc.fit_transform(items)
    contexts = sp.hstack([U, sp.csr_matrix((U.shape[0], I.shape[1]))], format="csr")
    item_rows = sp.hstack([sp.csr_matrix((I.shape[0], U.shape[1])), I], format="csr")
    user_index = {u: r for r, u in enumerate(ml.users["user"])}
    item_index = {i: r for r, i in enumerate(ml.items["item"])}
    r = ml.ratings
    user_ids = r["user"].map(user_index).to_numpy(np.int64)
    item_ids = r["item"].map(item_index).to_numpy(np.int64)
    train, valid, test = leave_last_out(user_ids, r["timestamp"].to_numpy())
    return ImplicitData(
        contexts,
        item_rows,
        user_ids,
        item_ids,
        train,
        valid,
        test,
        list(uenc.feature_names_) + list(ienc.feature_names_),
    )
