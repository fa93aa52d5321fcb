r"""libFM's text model file (``-save_model`` / ``-load_model``), read and written.

libFM 1.4.4 (``fm_model::saveModel``) writes, for ``n`` features and ``k`` factors,

.. code-block:: text

    #global bias W0
    w0
    #unary interactions Wj
    w_0
    ...            (n lines)
    #pairwise interactions Vj,f
    v_{0,0} v_{0,1} ... v_{0,k-1}
    ...            (n lines, k values each, separated by one space)

the first two sections only when the model has a bias and a linear term (``-dim``'s
first two numbers). libFM writes six significant digits; :func:`write_libfm_model`
writes every float with the shortest text that reads back to the same double
(``repr``), so a round trip is exact. The model is
:math:`\hat y(\mathbf x) = w_0 + \sum_j w_j x_j + \sum_{j<l} \langle \mathbf v_j,
\mathbf v_l\rangle x_j x_l`. Chapter "Using fmlib with scikit-learn and libFM files".
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fmlib.solvers.libfm import Params

W0_HEADER = "#global bias W0"
W_HEADER = "#unary interactions Wj"
V_HEADER = "#pairwise interactions Vj,f"


class LibFMModelError(ValueError):
    """A libFM model file is malformed; the message names the file, the line and what was
    expected there."""


def read_libfm_model(path: str | os.PathLike, n_features: int | None = None) -> Params:
    """Read a libFM model file into :class:`~fmlib.solvers.libfm.Params` (float64).

    ``n`` is the number of lines of the pairwise section, ``k`` the number of values on
    each (0 for a model with ``-dim 'k0,k1,0'``). Without the bias section ``w0`` is 0 and
    ``k0`` False; without the unary section ``w`` is 0 and ``k1`` False.

    Args:
        path: the file.
        n_features: if given, the number of features the file must have.

    Raises:
        FileNotFoundError: no file at ``path``.
        LibFMModelError: (a ``ValueError``) a missing header, a value that is not a
            number, rows of different lengths, sections of different sizes, or a number of
            features other than ``n_features``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path`: no libFM model file at {path!r}.")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    def fail(line_no: int, expected: str, got: str) -> LibFMModelError:
        return LibFMModelError(
            f"{path}, line {line_no}: expected {expected}; got {got!r}."
        )

    def number(line_no: int, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise fail(line_no, "a number", text) from None
        if not np.isfinite(value):
            raise fail(line_no, "a finite number", text)
        return value

    pos, k0, k1, w0 = 0, False, False, 0.0
    if pos < len(lines) and lines[pos].strip() == W0_HEADER:
        if pos + 1 >= len(lines):
            raise fail(pos + 2, "the value of w0", "end of file")
        w0, k0, pos = number(pos + 2, lines[pos + 1].strip()), True, pos + 2
    w_values: list[float] = []
    if pos < len(lines) and lines[pos].strip() == W_HEADER:
        k1, pos = True, pos + 1
        while pos < len(lines) and lines[pos].strip() != V_HEADER:
            w_values.append(number(pos + 1, lines[pos].strip()))
            pos += 1
    if pos >= len(lines) or lines[pos].strip() != V_HEADER:
        expected = (
            f"{V_HEADER!r}"
            if k0 or k1
            else f"{W0_HEADER!r}, {W_HEADER!r} or {V_HEADER!r}"
        )
        raise fail(pos + 1, expected, lines[pos] if pos < len(lines) else "end of file")
    rows = lines[pos + 1 :]
    k = len(rows[0].split()) if rows else 0
    V = np.empty((len(rows), k))
    for i, text in enumerate(rows):
        tokens = text.split()
        if len(tokens) != k:
            raise fail(
                pos + 2 + i, f"{k} factor values (as on the first row of V)", text
            )
        V[i] = [number(pos + 2 + i, t) for t in tokens]
    n = len(rows)
    if k1 and len(w_values) != n:
        raise LibFMModelError(
            f"{path}: the unary section has {len(w_values)} values but the "
            f"pairwise section {n} rows; both must have one per feature."
        )
    if n_features is not None and n != n_features:
        raise LibFMModelError(
            f"{path}: the model has {n} features; expected n_features={n_features}."
        )
    w = np.asarray(w_values, np.float64) if k1 else np.zeros(n)
    return Params(np.array([w0]), w, V, k0, k1)


def write_libfm_model(path: str | os.PathLike, params: Params) -> str:
    """Write :class:`~fmlib.solvers.libfm.Params` in libFM's model format, every float
    exact (``repr``). Returns ``path``."""
    out = []
    if params.k0:
        out += [W0_HEADER, repr(float(params.w0[0]))]
    if params.k1:
        out.append(W_HEADER)
        out += [repr(v) for v in np.asarray(params.w, np.float64).tolist()]
    out.append(V_HEADER)
    out += [
        " ".join(repr(v) for v in row)
        for row in np.asarray(params.V, np.float64).tolist()
    ]
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")
    return path


def load_libfm_model(path: str | os.PathLike, dtype: Any = None):
    """A :class:`~fmlib.FactorizationMachine` with the parameters of a libFM model file.

    Args:
        path: a file written by libFM's ``-save_model`` or :func:`save_libfm_model`.
        dtype: the model's dtype; default ``tf.float64`` (libFM computes in double).

    Returns:
        A ``FactorizationMachine(n, k)`` whose predictions are the file's model. A file
        without the bias (or linear) section gives ``w0 = 0`` (``w = 0``).

    Raises:
        FileNotFoundError, LibFMModelError: see :func:`read_libfm_model`.

    Example:
        >>> fm = fmlib.load_libfm_model("fm.model")   # doctest: +SKIP
    """
    import tensorflow as tf

    from fmlib.model.fm import FactorizationMachine

    params = read_libfm_model(path)
    n, k = params.V.shape
    model = FactorizationMachine(
        n, k, init_std=0.0, dtype=tf.float64 if dtype is None else dtype
    )
    model.set_weights(w0=params.w0[0], w=params.w, V=params.V)
    return model


def save_libfm_model(path: str | os.PathLike, model) -> str:
    """Write a :class:`~fmlib.FactorizationMachine` as a libFM model file (bias, unary and
    pairwise sections; floats exact), which ``libFM -load_model`` reads. Returns ``path``.

    Raises:
        TypeError: ``model`` is not a ``FactorizationMachine``.
    """
    from fmlib.model.fm import FactorizationMachine

    if not isinstance(model, FactorizationMachine):
        raise TypeError(
            f"`model` must be a FactorizationMachine; got {type(model).__name__}."
        )
    weights = model.get_weights()
    params = Params(
        np.array([float(weights["w0"])]),
        np.asarray(weights["w"], np.float64),
        np.asarray(weights["V"], np.float64),
    )
    return write_libfm_model(path, params)
