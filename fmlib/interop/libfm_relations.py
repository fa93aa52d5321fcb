r"""libFM's block-structure (BS) relation files, read into a
:class:`~fmlib.RelationalDesign` (Rendle, "Scaling factorization machines to relational
data", VLDB 2013; libFM's ``-relation``).

A relation ``rel`` is a set of files next to each other:

* ``rel.x``: the relation's design matrix :math:`\mathbf B` (one row per entity, e.g. per
  user: the movies the user rated), in libFM's binary sparse format (written by libFM's
  ``convert`` tool; ``rel.xt`` is its transpose, written by ``transpose``). The reader here
  also takes a libFM text file (``target index:value ...``, targets ignored);
* ``rel.train``, ``rel.test``: one line per row of the training (test) file, the row of
  :math:`\mathbf B` that row uses (the map :math:`\phi`); libFM also reads its binary
  ``DVector`` format;
* ``rel.groups`` (optional): the group id of each column of :math:`\mathbf B`, one per
  line (as ``-meta`` for the main file).

Row :math:`i` of the design then is :math:`(\mathbf x_i, \mathbf B^{(1)}_{\phi_1(i)},
\dots)`: the columns of the main file first (as many as the widest of train, test and
validation), then each relation's, in the order of the ``-relation`` flag.

The binary sparse format (``fmatrix.h``): a 24-byte header ``uint32 id = 2, uint32
float_size = 4, uint64 num_values, uint32 num_rows, uint32 num_cols``, then per row a
``uint32`` count and that many ``(uint32 column, float32 value)`` pairs, little-endian.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from fmlib.interop.libfm_files import read_libfm_text
from fmlib.solvers.libfm import Rows, as_rows

MATRIX_ID, VECTOR_ID = 2, 1
_HEADER = np.dtype(
    [
        ("id", "<u4"),
        ("float_size", "<u4"),
        ("num_values", "<u8"),
        ("num_rows", "<u4"),
        ("num_cols", "<u4"),
    ]
)
_ENTRY = np.dtype([("id", "<u4"), ("value", "<f4")])


class LibFMRelationError(ValueError):
    """A relation file is malformed or does not fit the data; the message names the file."""


def _is_binary(path: str, first_id: int) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return (
        len(head) == 8
        and int.from_bytes(head[:4], "little") == first_id
        and int.from_bytes(head[4:8], "little") == 4
    )


def read_libfm_matrix(path: str | os.PathLike) -> Rows:
    """A libFM binary sparse matrix (or a libFM text file, targets dropped) as
    :class:`~fmlib.solvers.libfm.Rows`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no relation matrix at {path!r}.")
    if not _is_binary(path, MATRIX_ID):
        return read_libfm_text(path)[0]
    raw = np.fromfile(path, np.uint8)
    if raw.size < _HEADER.itemsize:
        raise LibFMRelationError(
            f"{path}: a binary libFM matrix needs a 24-byte header; "
            f"got {raw.size} bytes."
        )
    head = raw[: _HEADER.itemsize].view(_HEADER)[0]
    n_rows, n_cols, nnz = (
        int(head["num_rows"]),
        int(head["num_cols"]),
        int(head["num_values"]),
    )
    expected = _HEADER.itemsize + 4 * n_rows + _ENTRY.itemsize * nnz
    if raw.size != expected:
        raise LibFMRelationError(
            f"{path}: the header says {n_rows} rows and {nnz} values, which take "
            f"{expected} bytes; the file has {raw.size}."
        )
    indptr = np.zeros(n_rows + 1, np.int64)
    indices, data = np.empty(nnz, np.int64), np.empty(nnz, np.float64)
    pos, out = _HEADER.itemsize, 0
    body = raw.tobytes()
    for i in range(n_rows):
        size = int.from_bytes(body[pos : pos + 4], "little")
        pos += 4
        entries = np.frombuffer(body, _ENTRY, size, pos)
        indices[out : out + size] = entries["id"]
        data[out : out + size] = entries["value"]
        out += size
        pos += size * _ENTRY.itemsize
        indptr[i + 1] = out
    if out != nnz or (nnz and indices.max() >= n_cols):
        raise LibFMRelationError(
            f"{path}: the rows hold {out} values with columns up to "
            f"{indices.max() if nnz else -1}; the header says {nnz} "
            f"values in {n_cols} columns."
        )
    return Rows(indptr, indices, data, n_cols)


def write_libfm_matrix(path: str | os.PathLike, X: Any) -> str:
    """Write a matrix in libFM's binary sparse format (values as float32, as libFM
    stores them). Returns ``path``."""
    rows = as_rows(X)
    head = np.zeros(1, _HEADER)
    head[0] = (MATRIX_ID, 4, len(rows.indices), rows.n_rows, rows.n_cols)
    entries = np.empty(len(rows.indices), _ENTRY)
    entries["id"], entries["value"] = rows.indices, rows.data
    path = os.fspath(path)
    with open(path, "wb") as handle:
        handle.write(head.tobytes())
        for i in range(rows.n_rows):
            a, b = rows.indptr[i], rows.indptr[i + 1]
            handle.write(np.uint32(b - a).tobytes())
            handle.write(entries[a:b].tobytes())
    return path


def read_row_map(path: str | os.PathLike, n_rows: int, n_block_rows: int) -> np.ndarray:
    """A relation's ``.train``/``.test`` file: ``n_rows`` block-row numbers (text, one per
    line, or libFM's binary ``DVector<uint>``), each in ``0..n_block_rows-1``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no relation row map at {path!r}.")
    if _is_binary(path, VECTOR_ID):
        raw = np.fromfile(path, "<u4")
        index = raw[3 : 3 + int(raw[2])].astype(np.int64)
    else:
        try:
            index = np.loadtxt(path, dtype=np.int64, ndmin=1)
        except ValueError as err:
            raise LibFMRelationError(
                f"{path}: expected one integer per line; {err}"
            ) from None
    if index.size != n_rows:
        raise LibFMRelationError(
            f"{path}: expected one block row per data row, {n_rows}; got {index.size}."
        )
    if index.size and (index.min() < 0 or index.max() >= n_block_rows):
        raise LibFMRelationError(
            f"{path}: block rows must be in 0..{n_block_rows - 1}; "
            f"got values from {index.min()} to {index.max()}."
        )
    return index


def read_groups(path: str | os.PathLike, n_features: int) -> np.ndarray:
    """A ``-meta`` / ``.groups`` file: the group id (an integer >= 0) of each of the
    ``n_features`` columns, one per line; as libFM, lines beyond ``n_features`` are
    ignored (one file can serve data of different widths), fewer are an error."""
    path = os.fspath(path)
    try:
        groups = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as err:
        raise LibFMRelationError(
            f"{path}: expected one integer group id per line; {err}"
        ) from None
    if groups.size < n_features:
        raise LibFMRelationError(
            f"{path}: expected one group id per feature, {n_features}; "
            f"got {groups.size}."
        )
    groups = groups[:n_features]
    if groups.size and groups.min() < 0:
        raise LibFMRelationError(f"{path}: group ids must be >= 0; got {groups.min()}.")
    return groups


def take_rows(rows: Rows, index: np.ndarray) -> Rows:
    """``B[index]``: the rows of ``rows`` in the order of ``index`` (numpy only)."""
    counts = np.diff(rows.indptr)[index]
    indptr = np.zeros(len(index) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    starts = np.repeat(rows.indptr[index] - indptr[:-1], counts)
    pos = np.arange(indptr[-1], dtype=np.int64) + starts
    return Rows(indptr, rows.indices[pos], rows.data[pos], rows.n_cols)


def hstack_rows(parts: Sequence[Rows]) -> Rows:
    """The column-wise concatenation of matrices with the same rows (numpy only)."""
    n = parts[0].n_rows
    offsets = np.cumsum([0] + [p.n_cols for p in parts])
    counts = sum(np.diff(p.indptr) for p in parts)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], np.int64)
    data = np.empty(indptr[-1])
    fill = indptr[:-1].copy()
    for p, off in zip(parts, offsets):
        c = np.diff(p.indptr)
        dest = np.repeat(fill - p.indptr[:-1], c) + np.arange(len(p.indices))
        indices[dest], data[dest] = p.indices + off, p.data
        fill += c
    return Rows(indptr, indices, data, int(offsets[-1]))


class Relation:
    """One ``-relation`` prefix read: ``B`` (:class:`Rows`), ``groups`` (or None) and the
    row maps by part name (``"train"``, ``"test"``)."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = os.fspath(prefix)
        self.B = read_libfm_matrix(self.prefix + ".x")
        groups_path = self.prefix + ".groups"
        self.groups = (
            read_groups(groups_path, self.B.n_cols)
            if os.path.isfile(groups_path)
            else None
        )

    def index(self, part: str, n_rows: int) -> np.ndarray:
        return read_row_map(f"{self.prefix}.{part}", n_rows, self.B.n_rows)


def load_libfm_relational(
    path: str | os.PathLike,
    relations: Sequence[str | os.PathLike],
    part: str = "train",
    n_features: int | None = None,
):
    """A libFM data file with its ``-relation`` files as ``(RelationalDesign, y)``.

    Args:
        path: the libFM text file of the main block (e.g. ``train.libfm``).
        relations: the relation prefixes, as given to libFM's ``-relation`` (each with
            ``.x``, ``.train``/``.test``, optionally ``.groups``).
        part: which row map to read: ``"train"`` or ``"test"`` (``prefix.<part>``).
        n_features: the main block's width; None: the file's largest index + 1 (give
            the training file's width for a test file, as libFM takes the wider).

    Returns:
        ``design`` whose ``to_csr()`` is the flat matrix libFM stands for (main columns,
        then each relation's) and ``y``. ``design.groups`` maps ``"main"`` and each
        relation's file name to its columns.

    Raises:
        FileNotFoundError: a missing file.
        LibFMRelationError, LibFMFormatError: (``ValueError``) a malformed file or a row
            map of the wrong length or range.
    """
    import scipy.sparse as sp

    from fmlib.data.design import RelationalDesign, RelationBlock

    if part not in ("train", "test"):
        raise ValueError(f"`part` must be 'train' or 'test'; got {part!r}.")
    main, y = read_libfm_text(path)
    width = main.n_cols if n_features is None else int(n_features)
    if width < main.n_cols:
        raise ValueError(
            f"`n_features` must be >= the file's {main.n_cols} columns; "
            f"got {n_features}."
        )
    blocks, groups, start = [], {"main": slice(0, width)}, width
    for prefix in relations:
        rel = Relation(prefix)
        name = os.path.basename(os.fspath(prefix))
        B = sp.csr_matrix(
            (rel.B.data, rel.B.indices, rel.B.indptr),
            shape=(rel.B.n_rows, rel.B.n_cols),
        )
        blocks.append(RelationBlock(B, rel.index(part, len(y)), name))
        groups[name] = slice(start, start + rel.B.n_cols)
        start += rel.B.n_cols
    X = sp.csr_matrix((main.data, main.indices, main.indptr), shape=(len(y), width))
    return RelationalDesign(X, blocks, groups=groups), y


def save_libfm_relation(
    prefix: str | os.PathLike,
    data: Any,
    train_index: Any,
    test_index: Any = None,
    groups: Any = None,
) -> str:
    """Write one relation as libFM reads it: ``prefix.x`` and its transpose ``prefix.xt``
    (binary), ``prefix.train`` / ``prefix.test`` (text) and ``prefix.groups`` if given.
    ``data`` is the relation's matrix (e.g. a :class:`~fmlib.RelationBlock`'s ``data``).
    Returns ``prefix``."""
    from fmlib.solvers.libfm import transpose

    prefix = os.fspath(prefix)
    B = as_rows(data)
    write_libfm_matrix(prefix + ".x", B)
    write_libfm_matrix(prefix + ".xt", transpose(B))
    for part, index in (("train", train_index), ("test", test_index)):
        if index is not None:
            index = np.asarray(index, np.int64)
            if index.size and (index.min() < 0 or index.max() >= B.n_rows):
                raise ValueError(
                    f"`{part}_index` must hold rows 0..{B.n_rows - 1} of "
                    f"`data`; got values from {index.min()} to {index.max()}."
                )
            np.savetxt(f"{prefix}.{part}", index, fmt="%d")
    if groups is not None:
        np.savetxt(prefix + ".groups", np.asarray(groups, np.int64), fmt="%d")
    return prefix
