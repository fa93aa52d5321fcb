"""MovieLens as relation blocks: one block of user features, one of item features.

Every feature of the book's richest MovieLens design depends on the user alone (the user
one-hot, age bucket, gender, occupation, and the movies the user rated) or on the item
alone (the item one-hot, release year, genres, and the users who rated it). So each
rating needs no main block at all: it points to its user's row of the user block and its
movie's row of the item block (chapter "Relation blocks").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.data.encoding import FeatureEncoder

USER_COLUMNS = ("user", "age_bucket", "gender", "occupation")
ITEM_COLUMNS = ("item", "release_year")


def _entity_block(encoder: FeatureEncoder, frame: pd.DataFrame, key: str, name: str):
    """The encoder applied to one rating per distinct ``key``, and every rating's
    row."""
    codes, uniques = pd.factorize(frame[key], sort=True)
    first = np.unique(codes, return_index=True)[1]  # first rating of every key
    return RelationBlock(encoder.transform(frame.iloc[first]), codes, name)


def movielens_design(
    train: pd.DataFrame,
    test: pd.DataFrame | None = None,
    user_columns: Sequence[str] = USER_COLUMNS,
    item_columns: Sequence[str] = ITEM_COLUMNS,
    item_multi_hot: Sequence[str] = ("genres",),
    implicit: bool = True,
    implicit_items: bool = True,
    implicit_norm: str = "sqrt",
):
    """Relational designs of MovieLens ratings: a user block and an item block, no
    main block.

    The columns are those of ``FeatureEncoder(categorical=user_columns + item_columns,
    multi_hot=item_multi_hot, implicit=("user", "item"), implicit_items=("item",
    "user"), implicit_norm=implicit_norm)`` fitted on ``train`` (the benchmark's
    "+implicit" design), in another order: the user block (``user_columns`` one-hot,
    then ``rated=<item>``), then the item block (``item_columns``, ``item_multi_hot``,
    then ``rated_by=<user>``). Both encoders are fitted on ``train`` only, so the test
    design uses the training vocabulary and the training implicit sets, as the flat
    encoder would.

    Args:
        train, test: ratings with side features (``MovieLens.with_side_features``).
        user_columns, item_columns: categorical columns of the user and the item block.
        item_multi_hot: multi-hot columns of the item block.
        implicit, implicit_items: add "items this user rated" to the user block and
            "users who rated this item" to the item block.
        implicit_norm: ``"sum"`` or ``"sqrt"`` (see :class:`fmlib.FeatureEncoder`).

    Returns:
        ``(design_train, design_test)`` (:class:`fmlib.RelationalDesign`;
        ``design_test`` is ``None`` without ``test``); their ``groups`` are one group
        per encoded column of the flat encoder (``"user"``, ``"rated"``, ``"genres"``,
        ...).
    """
    for frame, frame_name in ((train, "train"), (test, "test")):
        if frame is None:
            continue
        _check_per_entity(frame, frame_name, "user", user_columns, "user_columns")
        _check_per_entity(
            frame,
            frame_name,
            "item",
            list(item_columns) + list(item_multi_hot),
            "item_columns",
        )
    user_enc = FeatureEncoder(
        categorical=list(user_columns),
        implicit_norm=implicit_norm,
        implicit=("user", "item") if implicit else None,
    ).fit(train)
    item_enc = FeatureEncoder(
        categorical=list(item_columns),
        multi_hot=list(item_multi_hot),
        implicit_norm=implicit_norm,
        implicit_items=("item", "user") if implicit_items else None,
    ).fit(train)
    groups, start = {}, 0
    for enc in (user_enc, item_enc):
        for group, cols in enc.groups_.items():
            groups[group] = slice(start + cols.start, start + cols.stop)
        start += enc.n_features_
    names = user_enc.feature_names_ + item_enc.feature_names_

    def design(frame: pd.DataFrame) -> RelationalDesign:
        blocks = [
            _entity_block(user_enc, frame, "user", "user"),
            _entity_block(item_enc, frame, "item", "item"),
        ]
        return RelationalDesign(None, blocks, groups=groups, feature_names=names)

    return design(train), (None if test is None else design(test))


def _check_per_entity(
    frame: pd.DataFrame, frame_name: str, key: str, columns, arg: str
) -> None:
    """Each of ``columns`` must hold one value per ``key`` (user or item): the block stores one
    row per entity, so a column that varies within an entity would be copied from one rating to
    all of that entity's ratings (a silently wrong design)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"`{frame_name}` must be a pandas DataFrame; got {type(frame).__name__}."
        )
    missing = [c for c in [key, *columns] if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`{arg}`: `{frame_name}` has no column(s) {missing}; it has "
            f"{list(frame.columns)}."
        )
    for col in columns:
        if col == key:
            continue
        values = frame[col].map(
            lambda v: (
                tuple(sorted(v, key=str))
                if isinstance(v, (list, tuple, set, np.ndarray))
                else v
            )
        )
        distinct = values.groupby(frame[key], sort=False).nunique(dropna=False)
        if (distinct > 1).any():
            who = distinct.index[np.argmax(distinct.to_numpy() > 1)]
            raise ValueError(
                f"`{arg}`: column {col!r} is not a property of the {key}: in `{frame_name}`, "
                f"{key} {who!r} has {int(distinct[who])} different values. A relation block "
                f"holds one row per {key}; put per-rating columns in a flat FeatureEncoder "
                "design instead."
            )
