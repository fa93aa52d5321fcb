r"""Reading and writing the libFM / libSVM text format.

One line per row: the target, then the row's non-zero entries as ``index:value``,

.. code-block:: text

    4 0:1 943:1 2625:0.333 2631:0.333
    3 1:1 944:1

so that row :math:`i` holds :math:`x_{i,j} = ` value for each ``j:value`` and zero
elsewhere. libFM numbers the columns from 0 (libSVM files usually from 1: pass
``zero_based=False``). Chapter "Using fmlib with scikit-learn and libFM files".

:func:`save_libfm` writes each value with the fewest digits that read back as the same float64
(:func:`fmlib.fileio.format_float`), atomically (a failed write keeps the previous file). :func:`load_libfm`
parses the file itself, so that a malformed line is reported with its number and what was
expected there (scikit-learn's reader stops at the first problem without saying where).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from fmlib.fileio import atomic_write, format_float

MAX_INDEX = 2**62  # a column index beyond any matrix scipy or TensorFlow can hold


class LibFMFormatError(ValueError):
    """A line of a libFM file is malformed; the message names the file and the line."""


def _parse_line(text: str, line_no: int, path: str, offset: int):
    """The target and the ``(columns, values)`` of one line, or a :class:`LibFMFormatError`."""
    where = f"{path}, line {line_no}"
    if "\x00" in text:
        raise LibFMFormatError(
            f"{where}: the line holds NUL bytes; expected UTF-8 text (is the "
            "file binary or UTF-16?)."
        )
    tokens = text.split("#", 1)[0].split()
    if not tokens:
        raise LibFMFormatError(
            f"{where}: expected a target value followed by index:value "
            "pairs; got an empty line."
        )
    try:
        target = float(tokens[0])
    except ValueError:
        raise LibFMFormatError(
            f"{where}: expected the target (a number) first; got {tokens[0]!r}."
        ) from None
    if not math.isfinite(target):
        raise LibFMFormatError(
            f"{where}: the target must be finite; got {tokens[0]!r}."
        )
    cols, vals = [], []
    for token in tokens[1:]:
        index, colon, value = token.partition(":")
        try:
            col, val = int(index) - offset, float(value)
        except ValueError:
            col, val = -1, math.nan
        if colon and col + offset >= MAX_INDEX:
            raise LibFMFormatError(
                f"{where}: the index of {token!r} is too large (the largest "
                f"index a matrix can hold here is 2^62 - 1)."
            )
        if not colon or col < 0 or not math.isfinite(val):
            lowest = "0" if offset == 0 else "1"
            raise LibFMFormatError(
                f"{where}: expected index:value with an integer index >= "
                f"{lowest} and a finite value; got {token!r}."
            )
        cols.append(col)
        vals.append(val)
    if len(set(cols)) != len(cols):
        repeated = sorted({c + offset for c in cols if cols.count(c) > 1})
        raise LibFMFormatError(
            f"{where}: each index may appear once per line; repeated: {repeated}."
        )
    return target, cols, vals


def load_libfm(
    path: str | os.PathLike, n_features: int | None = None, zero_based: bool = True
) -> tuple[Any, np.ndarray]:
    """Read a libFM / libSVM text file into ``(X, y)``.

    Args:
        path: the file. Text after ``#`` on a line is a comment.
        n_features: the number of columns of ``X``; None (default) takes the largest index
            + 1. Give it to keep trailing all-zero columns (a test file must have the
            training file's width).
        zero_based: True (default, libFM) if the first column is ``0``; False for libSVM
            files that start at ``1``.

    Returns:
        ``X``, a ``scipy.sparse.csr_matrix`` of float64 with sorted indices, and ``y``, a
        float64 array with one target per line.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        LibFMFormatError: (a ``ValueError``) a malformed line, e.g.
            ``train.libfm, line 3: expected index:value ... got '5'``; or an index beyond
            ``n_features``.

    Example:
        >>> X, y = load_libfm("train.libfm")   # doctest: +SKIP
    """
    import scipy.sparse as sp

    from fmlib.validation import check_bool, check_int

    zero_based = check_bool(zero_based, "zero_based")
    if n_features is not None:
        n_features = check_int(n_features, "n_features", 0)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path`: no libFM file at {path!r}.")
    offset = 0 if zero_based else 1
    targets, indptr, indices, data = [], [0], [], []
    for line_no, text in _text_lines(path):
        target, cols, vals = _parse_line(text, line_no, path, offset)
        if n_features is not None and cols and max(cols) >= n_features:
            raise LibFMFormatError(
                f"{path}, line {line_no}: index {max(cols) + offset} is beyond "
                f"n_features={n_features} (the largest allowed index is "
                f"{n_features - 1 + offset})."
            )
        targets.append(target)
        indices.extend(cols)
        data.extend(vals)
        indptr.append(len(indices))
    if not targets:
        raise LibFMFormatError(f"{path}: the file has no rows.")
    width = (max(indices) + 1 if indices else 0) if n_features is None else n_features
    X = sp.csr_matrix(
        (
            np.asarray(data, np.float64),
            np.asarray(indices, np.int64),
            np.asarray(indptr, np.int64),
        ),
        shape=(len(targets), width),
    )
    X.sort_indices()
    return X, np.asarray(targets, np.float64)


def save_libfm(path: str | os.PathLike, X: Any, y: Any, zero_based: bool = True) -> str:
    """Write ``(X, y)`` as a libFM text file.

    Only non-zero entries are written, each value with the fewest digits that read back as the
    same float64 (:func:`fmlib.fileio.format_float`), so :func:`load_libfm` (with
    ``n_features=X.shape[1]``) gives back exactly the same CSR matrix and targets. The file is
    written to a temporary file beside ``path`` and renamed onto it when complete: a failed
    write (full disk, Ctrl-C) leaves a previous file at ``path`` as it was.

    Args:
        path: the file to write (replaced).
        X: ``(N, n)`` dense array, ``scipy.sparse`` matrix or ``tf.SparseTensor``; finite.
        y: ``(N,)`` targets; finite.
        zero_based: True (default, libFM) numbers columns from 0; False from 1 (libSVM).

    Returns:
        ``path``.
    """
    import scipy.sparse as sp
    import tensorflow as tf

    from fmlib.validation import as_host_matrix, as_targets, check_bool

    zero_based = check_bool(zero_based, "zero_based")
    X = sp.csr_matrix(as_host_matrix(X, None, tf.float64, name="X"), copy=True)
    y = as_targets(y, X.shape[0], name="y")
    X.sum_duplicates()  # canonical: sorted, unique indices
    X.eliminate_zeros()
    offset = 0 if zero_based else 1
    with atomic_write(path, "w") as handle:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            pairs = " ".join(
                f"{j + offset}:{format_float(v)}"
                for j, v in zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist())
            )
            handle.write(format_float(y[i]) + (" " + pairs if pairs else "") + "\n")
    return os.fsdecode(os.fspath(path))


def _text_lines(path: str):
    """``(line number, text)`` of each line of a libFM file that is not a comment line; a line
    that is not UTF-8 text (a binary or UTF-16 file) is a :class:`LibFMFormatError`."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise LibFMFormatError(
                    f"{path}, line {line_no}: not UTF-8 text ({err.reason} at byte "
                    f"{err.start}); a libFM file is plain text (is the file binary or UTF-16?)."
                ) from None
            if text.lstrip().startswith("#"):  # a comment line
                continue
            yield line_no, text


def read_libfm_text(path: str | os.PathLike):
    """A libFM text file (``target index:value ...``) as ``(Rows, targets)``
    (:class:`fmlib.solvers.libfm.Rows`: CSR arrays), quickly and without TensorFlow or
    scipy: what ``python -m fmlib`` reads. :func:`load_libfm` gives a scipy matrix and
    also rejects repeated indices."""
    if os.path.isfile(path) and _plain_bytes(raw := np.fromfile(path, np.uint8)):
        from fmlib.interop import libfm_parse  # numba: only for files that can be plain
        from fmlib.solvers.libfm import Rows

        ok, y, indptr, idx, values = libfm_parse.parse(raw)
        if ok and y.size and np.all(np.isfinite(values)) and np.all(np.isfinite(y)):
            return Rows(indptr, idx, values, int(idx.max()) + 1 if idx.size else 0), y
    path = os.fspath(path)
    targets, indptr, indices, data = [], [0], [], []
    for line_no, text in _text_lines(path):
        if "\x00" in text:
            _parse_line(text, line_no, path, 0)  # raises: NUL bytes
        tokens = text.split("#", 1)[0].split()
        if not tokens:
            raise LibFMFormatError(
                f"{path}, line {line_no}: expected a target value "
                "followed by index:value pairs; got an empty line."
            )
        try:
            targets.append(float(tokens[0]))
            for token in tokens[1:]:
                col, value = token.split(":")
                if int(col) >= MAX_INDEX or int(col) < 0:
                    raise ValueError(col)
                indices.append(int(col))
                data.append(float(value))
        except ValueError:
            _parse_line(text, line_no, path, 0)  # raises the precise message
            raise
        indptr.append(len(indices))
    if not targets:
        raise LibFMFormatError(f"{path}: the file has no rows.")
    idx = np.asarray(indices, np.int64)
    values = np.asarray(data, np.float64)
    y = np.asarray(targets, np.float64)
    if idx.size and idx.min() < 0:
        raise LibFMFormatError(f"{path}: indices must be >= 0; got {idx.min()}.")
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(y))):
        raise LibFMFormatError(f"{path}: targets and values must be finite numbers.")
    from fmlib.solvers.libfm import Rows

    return Rows(
        np.asarray(indptr, np.int64), idx, values, int(idx.max()) + 1 if idx.size else 0
    ), y


_PLAIN = np.zeros(256, bool)
_PLAIN[list(b"0123456789.-+eE: \t\r\n")] = True


def _plain_bytes(raw: np.ndarray) -> bool:
    """Whether a file can be in the plain form the compiled reader takes: only digits,
    signs, ``.eE:``, blanks and newlines, and no empty line. A file with a comment, a
    letter or an empty line goes straight to the line parser (and a malformed one to its
    message) without loading numba."""
    if raw.size == 0 or not _PLAIN[raw].all():
        return False
    newline = raw == 10
    if newline[0] or np.any(newline[1:] & newline[:-1]):
        return False
    # a run of more than 18 digits may not fit an int64 index: the line parser reports it
    digit = np.r_[False, (raw >= 48) & (raw <= 57), False].astype(np.int8)
    edges = np.flatnonzero(np.diff(digit))
    return not (edges.size and (edges[1::2] - edges[::2]).max() > 18)
