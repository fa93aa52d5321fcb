"""Leave-last-out split of implicit feedback by time (chapter "Ranking: learning from
implicit feedback").

Each user's interactions are ordered by timestamp; the last one is the test item, the one
before it the validation item, the rest is training data. This is the protocol of most
next-item recommendation papers: the model is asked what the user does *next*, never about
the past with the future in its training set.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def leave_last_out(
    users: Any, timestamps: Any, n_holdout: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, validation, test)`` of a leave-last-out split per user.

    The user's last interaction (largest timestamp) goes to ``test`` and, with
    ``n_holdout=2`` (default), the one before it to ``validation``; ``n_holdout=1`` gives no
    validation rows. Equal timestamps keep the order of the rows (a stable sort), so the split
    is deterministic. A user with too few interactions keeps at least one in training: with
    ``n`` interactions, ``min(n_holdout, n - 1)`` are held out, test first.

    Args:
        users: ``(N,)`` user ids (any sortable type).
        timestamps: ``(N,)`` numeric times.
        n_holdout: 1 (test only) or 2 (validation and test).

    Returns:
        Three sorted int arrays of row indices that partition ``range(N)``.

    Example:
        >>> leave_last_out([7, 7, 7, 8, 8], [3, 1, 2, 5, 9])
        (array([1, 3]), array([2]), array([0, 4]))
    """
    users, timestamps = np.asarray(users), np.asarray(timestamps)
    if users.ndim != 1 or timestamps.shape != users.shape:
        raise ValueError(
            f"`users` and `timestamps` must be 1-D of the same length; got shapes "
            f"{users.shape} and {timestamps.shape}."
        )
    if not (
        np.issubdtype(timestamps.dtype, np.floating)
        or np.issubdtype(timestamps.dtype, np.integer)
        or np.issubdtype(timestamps.dtype, np.datetime64)
    ):
        raise TypeError(
            f"`timestamps` must be real numbers or datetimes; got dtype {timestamps.dtype}."
        )
    if (
        np.issubdtype(timestamps.dtype, np.floating)
        and not np.isfinite(timestamps).all()
    ):
        bad = int(np.flatnonzero(~np.isfinite(timestamps))[0])
        raise ValueError(
            f"`timestamps` must be finite; row {bad} holds {timestamps[bad]} (a NaN "
            "would sort as the latest interaction)."
        )
    if np.issubdtype(timestamps.dtype, np.datetime64) and np.isnat(timestamps).any():
        raise ValueError("`timestamps` must not hold NaT (not-a-time).")
    if n_holdout not in (1, 2) or isinstance(n_holdout, bool):
        raise ValueError(f"`n_holdout` must be 1 or 2; got {n_holdout!r}.")
    order = np.lexsort(
        (np.arange(len(users)), timestamps, users)
    )  # user, then time, then row
    u = users[order]
    last = np.r_[u[1:] != u[:-1], True] if len(u) else np.zeros(0, bool)
    first = np.r_[True, u[1:] != u[:-1]] if len(u) else np.zeros(0, bool)
    # position from the end within the user (0 = last) and the user's count
    group_end = np.flatnonzero(last)
    group_id = np.cumsum(first) - 1
    from_end = group_end[group_id] - np.arange(len(u))
    count = np.diff(np.r_[-1, group_end])[group_id]
    held = from_end < np.minimum(n_holdout, count - 1)
    test = np.sort(order[held & (from_end == 0)])
    valid = np.sort(order[held & (from_end == 1)])
    train = np.sort(order[~held])
    return train, valid, test
