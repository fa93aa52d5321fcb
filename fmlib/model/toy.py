"""The toy data of Rendle (2010), Figure 1: seven ratings as sparse feature vectors.

Columns (n = 16), in the paper's order:

* users A, B, C (one-hot);
* the movie rated: TI (Titanic), NH (Notting Hill), SW (Star Wars), ST (Star Trek);
* "other movies rated" by the same user, normalised to sum to 1;
* time (the month of the rating);
* the last movie the user rated before this one (one-hot, all zero if none).

Targets: 5, 3, 1, 4, 5, 1, 5. Chapter "Sparse data and the FM model" builds this
table step by step; chapter "Learning" trains on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MOVIES = ("TI", "NH", "SW", "ST")
COLUMNS = (
    ["user=A", "user=B", "user=C"]
    + [f"movie={m}" for m in MOVIES]
    + [f"other={m}" for m in MOVIES]
    + ["time"]
    + [f"last={m}" for m in MOVIES]
)

# (user, movie, movies the user rated, time, last movie rated or None, rating)
_RATINGS = [
    ("A", "TI", ("TI", "NH", "SW"), 13, None, 5),
    ("A", "NH", ("TI", "NH", "SW"), 14, "TI", 3),
    ("A", "SW", ("TI", "NH", "SW"), 16, "NH", 1),
    ("B", "SW", ("SW", "ST"), 5, None, 4),
    ("B", "ST", ("SW", "ST"), 8, "SW", 5),
    ("C", "TI", ("TI", "SW"), 9, None, 1),
    ("C", "SW", ("TI", "SW"), 12, "TI", 5),
]


def rendle_figure1() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The design matrix ``X`` (7, 16), targets ``y`` (7,) and column names of Figure 1.

    Example:
        >>> X, y, columns = rendle_figure1()
        >>> X.shape, y.tolist()
        ((7, 16), [5.0, 3.0, 1.0, 4.0, 5.0, 1.0, 5.0])
    """
    col = {name: j for j, name in enumerate(COLUMNS)}
    X = np.zeros((len(_RATINGS), len(COLUMNS)))
    for r, (user, movie, rated, time, last, _) in enumerate(_RATINGS):
        X[r, col[f"user={user}"]] = 1.0
        X[r, col[f"movie={movie}"]] = 1.0
        for m in rated:
            X[r, col[f"other={m}"]] = 1.0 / len(rated)
        X[r, col["time"]] = time
        if last is not None:
            X[r, col[f"last={last}"]] = 1.0
    y = np.array([rating for *_, rating in _RATINGS], dtype=np.float64)
    return X, y, list(COLUMNS)


def rendle_figure1_frame() -> pd.DataFrame:
    """Figure 1 as a table: one row per rating, the 16 feature columns and ``y``."""
    X, y, columns = rendle_figure1()
    frame = pd.DataFrame(X, columns=columns)
    frame["y"] = y
    return frame
