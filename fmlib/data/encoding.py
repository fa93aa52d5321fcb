r"""From a table of events to the FM design matrix: a sparse feature encoder.

Rendle's Figure 1 (chapter "Sparse data and the FM model") lays out each event as
blocks of features. :class:`FeatureEncoder` builds that matrix for any
``pandas.DataFrame``, as a ``scipy.sparse`` CSR matrix (memory O(nnz), never dense):

* **categorical** columns become one-hot blocks (``user``, ``item``, ``gender``, …);
* **multi-hot** columns, holding a set of values per row (an item's genres), become
  blocks normalised to sum to 1;
* an **implicit-feedback** block: for each row, the set of items that the row's user
  rated in the training data, normalised to sum to 1 (the "other movies rated" block
  of Figure 1, and the implicit part of SVD++, Koren 2008), and its mirror image, the
  set of users who rated the row's item;
* **numeric** columns are copied as they are (scale them yourself).

The encoder is *fitted* on training rows, which fixes the columns, and then
*applied* to any rows. A category, set member, or user not seen during ``fit``
maps to nothing by default: its block is all zero for that row, so the model falls back on
the other features (for an unseen user: the item, the side features, ``w0``).
``transform`` counts such rows per column (``unseen_``) and can warn about them
(``handle_unknown="warn"``), or give each categorical column an extra "unknown" column
(``handle_unknown="bucket"``) that unseen and missing values share.
:meth:`FeatureEncoder.field_ids` gives the same categories as integer ids per field, for
:class:`fmlib.FieldFMLayer` (chapter "The Keras interface").
"""

from __future__ import annotations

import numbers
import warnings
from itertools import chain
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from fmlib.data.design import RelationalDesign, RelationBlock, hstack_csr

IMPLICIT_NORMS = ("sum", "sqrt")
HANDLE_UNKNOWN = ("ignore", "warn", "bucket")
UNKNOWN = "<unknown>"


def _object_array(values: Iterable) -> np.ndarray:
    """A 1-D object array of ``values`` (a Series is converted without a Python-level loop)."""
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy(dtype=object)
    return pd.Series(list(values), dtype=object).to_numpy()  # a tuple stays one cell


_FAST_KINDS = {
    "string": "str",
    "integer": "number",
    "floating": "number",
    "mixed-integer-float": "number",
    "decimal": "number",
    "boolean": "bool",
    "empty": None,
}


def _value_kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, str):
        return "str"
    return "number" if isinstance(value, numbers.Number) else type(value).__name__


def _kinds(values: np.ndarray) -> set[str]:
    """The kinds of ids in ``values`` ("str", "number", "bool", or a type name); one C pass if uniform."""
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in _FAST_KINDS:
        return {_FAST_KINDS[inferred]} - {None}
    return {_value_kind(v) for v in values}


class IndexMap:
    """A map from ids (any hashable values) to contiguous column indices ``0..n-1``.

    Ids not seen when the map was built get ``unknown`` (-1 by default, meaning
    "no column"), or, with ``reserve_unknown=True``, a reserved last index ``n``
    (the original TF2 project's convention).

    All ids are of one kind (all strings, all numbers, ...), and ``index`` refuses
    values of another kind: ``"1"`` and ``1`` are different ids, and a table whose ids
    were read as text at ``fit`` and as numbers later would otherwise map to nothing.

    Example:
        >>> m = IndexMap(["b", "a", "b"])
        >>> m.index(["a", "b", "z"]).tolist(), len(m)
        ([0, 1, -1], 2)
    """

    def __init__(self, ids: Iterable, reserve_unknown: bool = False, name: str = "ids"):
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise TypeError(
                f"`{name}` must be a collection of ids; got {type(ids).__name__} {ids!r} "
                f"(for one id write [{ids!r}])."
            )
        values = pd.unique(_object_array(ids))
        kinds = _kinds(values)
        if len(kinds) > 1:
            raise TypeError(
                f"`{name}` mixes kinds of ids {sorted(kinds)}; use one kind (e.g. all "
                "strings or all numbers), since '1' and 1 would be different ids."
            )
        self.kind = next(iter(kinds), None)
        self.ids = pd.Index(values, dtype=object).sort_values()
        self.reserve_unknown = reserve_unknown
        self.unknown = len(self.ids) if reserve_unknown else -1

    def __len__(self) -> int:
        return len(self.ids) + (1 if self.reserve_unknown else 0)

    def index(self, values: Iterable, name: str = "values") -> np.ndarray:
        values = _object_array(values)
        other = _kinds(values) - {self.kind}
        if self.kind is not None and other:
            raise TypeError(
                f"`{name}` holds ids of kind {sorted(other)}, but they were {self.kind!r} "
                "when the map was built: no value would be found. Convert them first "
                "(e.g. .astype(str))."
            )
        idx = self.ids.get_indexer(pd.Index(values, dtype=object))
        if self.reserve_unknown:
            idx[idx < 0] = self.unknown
        return idx


def _one_hot(idx: np.ndarray, width: int) -> sp.csr_matrix:
    known = idx >= 0
    rows = np.flatnonzero(known)
    return sp.csr_matrix(
        (np.ones(rows.size), (rows, idx[known])), shape=(idx.size, width)
    )


def _column_list(columns, name: str) -> list:
    """Column names as a list; a single string is an error (it would be split into letters)."""
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
        raise TypeError(
            f"`{name}` must be a list of column names; got {type(columns).__name__} "
            f"{columns!r} (for one column write [{columns!r}])."
        )
    return list(columns)


class FeatureEncoder(TransformerMixin, BaseEstimator):
    """Encode a DataFrame as an FM design matrix (``scipy.sparse.csr_matrix``).

    A scikit-learn transformer: ``fit``/``transform``/``fit_transform`` take an optional
    ``y`` (ignored), :meth:`get_feature_names_out` names the columns, ``get_params`` /
    ``set_params`` / ``clone`` work, so it runs inside a ``Pipeline`` (e.g.
    ``make_pipeline(FeatureEncoder(...), fmlib.FMRegressor())``) or a ``ColumnTransformer``
    (chapter "Using fmlib with scikit-learn and libFM files").

    Args:
        categorical: columns to one-hot encode.
        multi_hot: columns whose cells are collections (list, tuple, set) of values;
            each becomes a block normalised to sum to 1 over the values known at ``fit``.
        implicit: ``(user_column, item_column)`` to add the block "items this user
            rated in the training data", named ``rated=<item>``.
        implicit_items: ``(item_column, user_column)`` to add the block "users who rated
            this item in the training data", named ``rated_by=<user>``.
        numeric: columns copied as numbers (must be finite).
        implicit_norm: how an implicit block of a user :math:`u` with rated set
            :math:`N(u)` (or of an item and the users who rated it) is scaled: ``"sum"`` gives each item :math:`1/|N(u)|` (the block
            sums to 1, as in Figure 1 of Rendle 2010); ``"sqrt"`` gives
            :math:`|N(u)|^{-1/2}`, the scaling of SVD++ (Koren 2008).
        handle_unknown: what :meth:`transform` does with a value unseen at ``fit``:
            ``"ignore"`` (default) leaves its block all zero, ``"warn"`` does so with a
            ``UserWarning`` counting such rows per column, ``"bucket"`` gives every categorical
            column a last column ``"<column>=<unknown>"`` that unseen *and missing* (NaN, None)
            values share (missing values are then allowed in categorical columns, in ``fit``
            too, where they train the bucket). Multi-hot and implicit blocks drop unseen
            values in every mode.

    After :meth:`fit`: ``feature_names_`` (one name per column, ``"<column>=<value>"``
    for encoded blocks), ``groups_`` (block name → ``slice`` of columns),
    ``n_features_`` (output columns), and scikit-learn's ``n_features_in_`` and
    ``feature_names_in_`` (the input frame's columns). After :meth:`transform`: ``unseen_``, the number of rows per column
    whose value (or a set member, or the implicit block's key) was not seen at ``fit``.

    Example:
        >>> df = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]})
        >>> enc = FeatureEncoder(categorical=["user", "item"], implicit=("user", "item"))
        >>> enc.fit_transform(df).toarray().tolist()[0]
        [1.0, 0.0, 1.0, 0.0, 0.5, 0.5]
    """

    def __init__(
        self,
        categorical: Sequence[str] = (),
        multi_hot: Sequence[str] = (),
        implicit: tuple[str, str] | None = None,
        numeric: Sequence[str] = (),
        implicit_norm: str = "sum",
        implicit_items: tuple[str, str] | None = None,
        handle_unknown: str = "ignore",
    ):
        # scikit-learn's contract: the arguments are stored as given (``clone`` and
        # ``get_params`` rely on it). They are checked here, so that a bad configuration
        # fails where it is written, and again in ``fit`` (after ``set_params``).
        self.categorical = categorical
        self.multi_hot = multi_hot
        self.implicit = implicit
        self.numeric = numeric
        self.implicit_norm = implicit_norm
        self.implicit_items = implicit_items
        self.handle_unknown = handle_unknown
        self._configure()

    def _configure(self) -> None:
        """Check the arguments and keep them as lists and pairs (``_categorical``, ...)."""
        implicit_norm, handle_unknown = self.implicit_norm, self.handle_unknown
        implicit, implicit_items = self.implicit, self.implicit_items
        if implicit_norm not in IMPLICIT_NORMS:
            raise ValueError(
                f"`implicit_norm` must be one of {IMPLICIT_NORMS}; got {implicit_norm!r}."
            )
        if not (isinstance(handle_unknown, str) and handle_unknown in HANDLE_UNKNOWN):
            raise ValueError(
                f"`handle_unknown` must be one of {HANDLE_UNKNOWN}; got {handle_unknown!r}."
            )
        self._categorical = _column_list(self.categorical, "categorical")
        self._multi_hot = _column_list(self.multi_hot, "multi_hot")
        self._implicit = (
            tuple(_column_list(implicit, "implicit")) if implicit is not None else None
        )
        self._numeric = _column_list(self.numeric, "numeric")
        if self._implicit is not None and len(self._implicit) != 2:
            raise ValueError(
                f"`implicit` must be a pair (user_column, item_column); got {implicit!r}."
            )
        self._implicit_items = (
            tuple(_column_list(implicit_items, "implicit_items"))
            if implicit_items is not None
            else None
        )
        if self._implicit_items is not None and len(self._implicit_items) != 2:
            raise ValueError(
                "`implicit_items` must be a pair (item_column, user_column); "
                f"got {implicit_items!r}."
            )
        names = self._categorical + self._multi_hot + self._numeric
        duplicated = sorted({c for c in names if names.count(c) > 1})
        if duplicated:
            raise ValueError(
                f"each column may appear in one block only; repeated: {duplicated}."
            )
        if not names and not self._implicit_blocks():
            raise ValueError("FeatureEncoder needs at least one column to encode.")

    def _implicit_blocks(self) -> list[tuple[str, str, str]]:
        """``(group name, key column, member column)`` of every implicit block."""
        blocks = []
        if self._implicit is not None:
            blocks.append(("rated", *self._implicit))
        if self._implicit_items is not None:
            blocks.append(("rated_by", *self._implicit_items))
        return blocks

    # --- checks ------------------------------------------------------------------------
    def _needed_columns(self) -> list[str]:
        cols = self._categorical + self._multi_hot + self._numeric
        for _, key, member in self._implicit_blocks():
            cols += [c for c in (key, member) if c not in cols]
        return cols

    def _check_frame(
        self, df: pd.DataFrame, name: str, columns: list[str] | None = None
    ) -> None:
        """Check the ``columns`` of ``df`` this encoder reads (by default all of them)."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(
                f"`{name}` must be a pandas DataFrame; got {type(df).__name__}."
            )
        columns = self._needed_columns() if columns is None else columns
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(
                f"`{name}` lacks the column(s) {missing}; it has {list(df.columns)}."
            )
        bucketed = self._categorical if self.handle_unknown == "bucket" else []
        keys = [c for b in self._implicit_blocks() for c in b[1:]]
        for c in [
            c for c in self._categorical + keys if c in columns and c not in bucketed
        ]:
            n_missing = int(df[c].isna().sum())
            if n_missing:
                raise ValueError(
                    f"column {c!r} of `{name}` has {n_missing} missing value(s); "
                    "fill or drop them first."
                )
        for c in [c for c in self._numeric if c in columns]:
            values = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
            bad = int(np.sum(~np.isfinite(values)))
            if bad:
                raise ValueError(
                    f"numeric column {c!r} of `{name}` has {bad} missing, non-numeric or "
                    "infinite value(s)."
                )
        for c in [
            c for c in self._multi_hot if c in columns
        ]:  # every row: a string in row 5,000 would be split into letters
            bad = [
                v
                for v in df[c]
                if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__")
            ]
            if bad:
                raise ValueError(
                    f"multi-hot column {c!r} must hold collections (list, tuple, set) "
                    f"of values per row; got e.g. {bad[0]!r}."
                )

    # --- fit / transform ---------------------------------------------------------------
    def fit(self, df: pd.DataFrame, y=None) -> "FeatureEncoder":
        """Learn the columns (categories, set members, users' rated items) from ``df``.

        ``y`` is ignored (it is there for ``Pipeline``)."""
        self._configure()
        self._check_frame(df, "df")
        if len(df) == 0:
            raise ValueError(
                "`df` has no rows: fit learns the columns from them; got an empty frame."
            )
        bucket = self.handle_unknown == "bucket"
        self.maps_ = {
            c: IndexMap(
                df[c].dropna() if bucket else df[c],
                reserve_unknown=bucket,
                name=f"df[{c!r}]",
            )
            for c in self._categorical
        }
        for c in self._multi_hot:
            self.maps_[c] = IndexMap(
                chain.from_iterable(df[c]), name=f"df[{c!r}] (set members)"
            )
        names, groups, start = [], {}, 0

        def add(group: str, block_names: list[str]) -> None:
            nonlocal start
            names.extend(block_names)
            groups[group] = slice(start, start + len(block_names))
            start += len(block_names)

        for c in self._categorical + self._multi_hot:
            add(
                c,
                [f"{c}={v}" for v in self.maps_[c].ids]
                + [f"{c}={UNKNOWN}"] * (c in self._categorical and bucket),
            )
        self.implicit_ = {}
        for group, key_col, member_col in self._implicit_blocks():
            keys, members, matrix = self._fit_implicit(df, key_col, member_col)
            self.implicit_[group] = (keys, matrix)
            add(group, [f"{group}={v}" for v in members.ids])
        for c in self._numeric:
            add(c, [c])
        self.feature_names_, self.groups_, self.n_features_ = names, groups, start
        self.n_features_in_ = df.shape[1]
        if all(isinstance(c, str) for c in df.columns):
            self.feature_names_in_ = np.asarray(df.columns, dtype=object)
        else:
            self.__dict__.pop("feature_names_in_", None)
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The output column names, ``feature_names_`` as an object array (scikit-learn's API).

        ``input_features`` is accepted for ``ColumnTransformer``; if given, it must be the
        columns seen at ``fit``.
        """
        if not hasattr(self, "feature_names_"):
            raise RuntimeError(
                "call fit (or fit_transform) before get_feature_names_out."
            )
        seen = getattr(self, "feature_names_in_", None)
        if (
            input_features is not None
            and seen is not None
            and list(input_features) != list(seen)
        ):
            raise ValueError(
                f"`input_features` must be the columns seen at fit, {list(seen)}; "
                f"got {list(input_features)}."
            )
        return np.asarray(self.feature_names_, dtype=object)

    def _fit_implicit(self, df: pd.DataFrame, key_col: str, member_col: str):
        """The normalised "members seen with this key" matrix, one extra all-zero row for
        keys unseen in ``fit``."""
        keys = IndexMap(df[key_col], name=f"df[{key_col!r}]")
        members = IndexMap(df[member_col], name=f"df[{member_col!r}]")
        pairs = pd.DataFrame(
            {"k": keys.index(df[key_col]), "m": members.index(df[member_col])}
        )
        pairs = pairs.drop_duplicates()
        seen = sp.csr_matrix(
            (np.ones(len(pairs)), (pairs["k"], pairs["m"])),
            shape=(len(keys), len(members)),
        )
        counts = np.asarray(seen.sum(axis=1)).ravel()
        scale = 1.0 / counts if self.implicit_norm == "sum" else 1.0 / np.sqrt(counts)
        matrix = sp.vstack(
            [sp.diags(scale) @ seen, sp.csr_matrix((1, len(members)))], format="csr"
        )
        return keys, members, matrix

    def transform(self, df: pd.DataFrame) -> sp.csr_matrix:
        """Encode ``df`` with the columns learned in :meth:`fit`; returns CSR of shape ``(len(df), n_features_)``."""
        blocks = self._encode(df, "transform")
        flat = [
            b[0][b[1]] if isinstance(b, tuple) else b for b in blocks
        ]  # (matrix, rows)
        return hstack_csr(flat, len(df))

    def transform_design(self, df: pd.DataFrame):
        """:meth:`transform` as a :class:`~fmlib.RelationalDesign`: the implicit blocks stay
        one row per user (item) with an index per row, the other blocks form the main block.

        The columns are those of :meth:`transform`, in the design's order: the main block's
        groups (categorical, multi-hot, numeric, as in ``groups_``), then one relation block
        per implicit group (``"rated"``, ``"rated_by"``); the design's ``feature_names`` and
        ``groups`` follow that order. Without ``numeric`` columns the order is
        :meth:`transform`'s. Relation blocks pay off when each key has many rows and many
        implicit members (chapter "Relation blocks").
        """

        blocks = self._encode(df, "transform_design")
        kinds = list(zip(self.groups_, blocks))
        main = [(g, b) for g, b in kinds if not isinstance(b, tuple)]
        relations = [(g, b) for g, b in kinds if isinstance(b, tuple)]
        groups, names, start = {}, [], 0
        for group, _ in main + relations:
            cols = self.groups_[group]
            groups[group] = slice(start, start + cols.stop - cols.start)
            names += self.feature_names_[cols]
            start += cols.stop - cols.start
        X = hstack_csr([b for _, b in main], len(df)) if main else None
        return RelationalDesign(
            X,
            [RelationBlock(b[0], b[1], g) for g, b in relations],
            groups=groups,
            feature_names=names,
        )

    def _encode(self, df: pd.DataFrame, method: str) -> list:
        """The blocks of ``df`` in the order of ``groups_``: CSR matrices, and for an
        implicit block the pair (matrix of the keys seen at ``fit`` plus an all-zero row,
        the row of every row of ``df``). Sets ``unseen_``."""
        if not hasattr(self, "feature_names_"):
            raise RuntimeError(f"call fit (or fit_transform) before {method}.")
        self._check_frame(df, "df")
        n = len(df)
        blocks, unseen = [], {}
        for c in self._categorical:
            idx = self.maps_[c].index(df[c], f"df[{c!r}]")
            unseen[c] = int(np.sum(idx == self.maps_[c].unknown))  # -1, or the bucket
            blocks.append(_one_hot(idx, len(self.maps_[c])))
        for c in self._multi_hot:
            cells = [list(v) for v in df[c].to_numpy(dtype=object)]
            lengths = np.fromiter((len(v) for v in cells), dtype=np.int64, count=n)
            idx = self.maps_[c].index(
                chain.from_iterable(cells), f"df[{c!r}] (set members)"
            )
            rows = np.repeat(np.arange(n), lengths)
            known = idx >= 0
            unseen[c] = int(np.count_nonzero(np.bincount(rows[~known], minlength=n)))
            per_row = np.bincount(rows[known], minlength=n)  # known members per row
            weights = 1.0 / per_row[rows[known]]
            blocks.append(
                sp.csr_matrix(
                    (weights, (rows[known], idx[known])), shape=(n, len(self.maps_[c]))
                )
            )
        for group, key_col, _ in self._implicit_blocks():
            keys, matrix = self.implicit_[group]
            idx = keys.index(df[key_col], f"df[{key_col!r}]")
            unseen[group] = int(np.sum(idx < 0))
            idx[idx < 0] = matrix.shape[0] - 1  # the all-zero row
            blocks.append((matrix, idx))
        for c in self._numeric:
            values = pd.to_numeric(df[c]).to_numpy(dtype=float)
            blocks.append(sp.csr_matrix(values[:, None]))
        self.unseen_ = unseen
        if self.handle_unknown == "warn" and any(unseen.values()):
            warnings.warn(
                "rows with values unseen at fit (their blocks are all zero), per column: "
                f"{ {c: k for c, k in unseen.items() if k} }",
                UserWarning,
                stacklevel=3,
            )
        return blocks

    def fit_transform(self, df: pd.DataFrame, y=None) -> sp.csr_matrix:
        """``fit(df)`` then ``transform(df)`` (``y`` is ignored)."""
        return self.fit(df).transform(df)

    def field_ids(self, df: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
        r"""The categorical columns of ``df`` as integer ids per field, for the Keras field model.

        Returns ``(ids, vocab_sizes)``: ``ids`` of shape ``(len(df), F)`` (int64), one field
        per column of ``categorical`` in order, and ``vocab_sizes[f]``, the width of that
        column's one-hot block. Id :math:`c` of field :math:`f` is column
        ``groups_[name].start + c`` of :meth:`transform`, so :class:`fmlib.FieldFMLayer` (or
        ``build_fm_model(vocab_sizes=vocab_sizes)``) computes the FM on the categorical
        blocks of :meth:`transform` (chapter "The Keras interface").

        Raises:
            ValueError: a value unseen at ``fit``, which has no id unless the encoder was made
                with ``handle_unknown="bucket"`` (then it gets the bucket's id).
        """
        if not hasattr(self, "feature_names_"):
            raise RuntimeError("call fit (or fit_transform) before field_ids.")
        if not self._categorical:
            raise ValueError(
                "field_ids needs categorical columns; this encoder has none."
            )
        self._check_frame(df, "df", columns=self._categorical)
        ids = np.stack(
            [self.maps_[c].index(df[c], f"df[{c!r}]") for c in self._categorical],
            axis=1,
        )
        unseen = {
            c: int(n) for c, n in zip(self._categorical, np.sum(ids < 0, axis=0)) if n
        }
        if unseen:
            raise ValueError(
                f"`df` has values unseen at fit (rows per column: {unseen}), which have "
                "no id; make the encoder with handle_unknown='bucket' to give them one."
            )
        return ids.astype(np.int64), [len(self.maps_[c]) for c in self._categorical]

    def __repr__(self) -> str:
        defaults = {
            "multi_hot": [],
            "implicit": None,
            "numeric": [],
            "implicit_norm": "sum",
            "implicit_items": None,
            "handle_unknown": "ignore",
        }
        args = [f"categorical={self._categorical!r}"] if self._categorical else []
        current = {
            name: getattr(self, "_" + name, getattr(self, name)) for name in defaults
        }
        args += [
            f"{name}={current[name]!r}"
            for name, default in defaults.items()
            if current[name] != default
        ]
        text = f"FeatureEncoder({', '.join(args)})"
        if hasattr(self, "groups_"):
            blocks = ", ".join(
                f"{g}: {b.stop - b.start:,}" for g, b in self.groups_.items()
            )
            text += f" fitted: {self.n_features_:,} columns ({blocks})"
        return text
