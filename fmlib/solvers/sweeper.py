r"""ALS and Gibbs sweeps on relation blocks, with libFM's and myFM's per-block caches.

The coordinate updates of :mod:`fmlib.solvers.coordinate` need, for one parameter
:math:`\theta`, the sums :math:`\sum_i h_{\theta,i} e_i` and :math:`\sum_i
h_{\theta,i}^2` over the ratings. For a feature :math:`l` of relation block :math:`r`
(chapter "Relation blocks"), every
rating :math:`i` with :math:`\phi_r(i) = b` has the same :math:`x_l = B_{b,l}`, and for
:math:`v_{l,f}`

.. math::

    h_i &= B_{b,l}\,\big(q_{f,i} - v_{l,f} B_{b,l}\big)
        = B_{b,l}\,\big(o_i + \rho_b\big), \\
    o_i &= q_{f,i} - Q_{b,f}, \quad \rho_b = Q_{b,f} - v_{l,f} B_{b,l},

where :math:`Q = B^{(r)} V` is the block's own part of :math:`q` and :math:`o_i` the
part of the *other* blocks, which does not change while block :math:`r` is updated. So
the sums over the ratings of row :math:`b` need only five numbers per block row,

.. math::

    & n_b = |\{i: \phi(i) = b\}|,\quad O_b = \sum_{\phi(i)=b} o_i, \\
    & O^{(2)}_b = \sum_{\phi(i)=b} o_i^2,\quad E_b = \sum_{\phi(i)=b} e_i, \\
    & (EO)_b = \sum_{\phi(i)=b} e_i o_i :

    \sum_{\phi(i)=b} h_i e_i &= B_{b,l}\big((EO)_b + \rho_b E_b\big), \\
    \sum_{\phi(i)=b} h_i^2 &= B_{b,l}^2\big(O^{(2)}_b + 2\rho_b O_b + \rho_b^2 n_b\big).

After the change :math:`\delta` of :math:`v_{l,f}`, every :math:`e_i` of those ratings
moves by :math:`-\delta B_{b,l}(o_i + \rho_b)`, linear in :math:`o_i`, so the caches
follow in O(1) per non-zero of the block: :math:`E_b \mathrel{-}= \delta B_{b,l}(O_b +
\rho_b n_b)`, :math:`(EO)_b \mathrel{-}= \delta B_{b,l}(O^{(2)}_b + \rho_b O_b)`,
:math:`Q_{b,f} \mathrel{+}= \delta B_{b,l}`. The residuals and :math:`q_f` of the
ratings are brought up to date once per block and factor. For :math:`w_l`, :math:`h_i =
B_{b,l}` and only :math:`n_b` and :math:`E_b` are needed. One sweep costs O(k (N R + nnz
of the distinct rows)) instead of O(k nnz of the flat matrix); this is what libFM's BS
and myFM's relation blocks do.

The columns of a relation block are visited in the order of
:func:`fmlib.solvers.coordinate.block_schedule`, whose colouring this module applies to each
group's columns inside its block: the blocks of columns and their order are those
``block_schedule`` gives for the flat matrix (each group lying in one block), so a sweep
equals the flat sweep up to rounding. Within a block the columns run one after another in
compiled loops (:mod:`fmlib.solvers.kernels`): columns of one colour share no block
row, so this is the colour-at-once update, without one round of numpy calls per colour.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from fmlib.data.design import RelationalDesign
from fmlib.solvers import kernels
from fmlib.solvers.coordinate import CoordinateSweeper, _Block, block_schedule
from fmlib.validation import column_groups


class _Columns(NamedTuple):
    """Some columns of a relation block, in update order, with their non-zeros in the
    block's used rows column by column (CSC): column ``cols[c]`` has the values
    ``x[indptr[c]:indptr[c + 1]]`` in the rows ``rows[indptr[c]:indptr[c + 1]]``."""

    cols: np.ndarray  # flat column indices
    indptr: np.ndarray
    rows: np.ndarray  # increasing within a column
    x: np.ndarray


class _Relation(NamedTuple):
    """A relation block restricted to the block rows some rating uses."""

    start: int  # first flat column
    data: sp.csr_matrix  # (M, n_B): the used rows
    index: np.ndarray  # (N,) row of every rating in ``data``
    n: np.ndarray  # (M,) ratings per row, float
    Qt: np.ndarray  # (k, M): the block's own part of q


def default_groups(design: RelationalDesign) -> dict[str, Any]:
    """``design.groups``, or else one group per block (``"main"``, then the block
    names)."""
    if design.groups is not None:
        return design.groups
    off = design.offsets
    names = ["main"] + [b.name for b in design.blocks]
    return {
        f"{name}#{j}": slice(int(off[j]), int(off[j + 1]))
        for j, name in enumerate(names)
        if off[j + 1] > off[j]
    }


def relational_schedule(
    design: RelationalDesign, groups: Any = None
) -> list[tuple[int, list[np.ndarray]]]:
    """Blocks of flat columns that share no row, as segments ``(block, [columns,
    ...])``.

    Group by group (``groups`` as in :func:`fmlib.solvers.coordinate.column_groups`; ``None``:
    :func:`default_groups`), the columns of a group are coloured by
    :func:`fmlib.solvers.coordinate.block_schedule` on its block's used rows; consecutive
    colours of one block form a segment. Flattened, the list is
    ``block_schedule(design.to_csr(), groups)``.

    Raises:
        ValueError: a group with columns in two blocks.
    """
    groups = default_groups(design) if groups is None else groups
    n, off = design.n_features, design.offsets
    group_of = column_groups(groups, n)
    names = list(groups) if hasattr(groups, "keys") else np.unique(np.asarray(groups))
    mats = design.block_matrices()
    segments: list[tuple[int, list[np.ndarray]]] = []
    for g in range(int(group_of.max()) + 1):
        cols = np.flatnonzero(group_of == g)
        owners = np.unique(np.searchsorted(off, cols, side="right") - 1)
        if owners.size > 1:
            raise ValueError(
                f"`groups` entry {names[g]!r} has columns in {owners.size} blocks "
                f"of the relational design; every group must lie in one block."
            )
        j = int(owners[0])
        B, index = mats[j]
        if index is not None and np.any(np.bincount(index, minlength=B.shape[0]) == 0):
            B = B[np.unique(index)]  # the used rows (no copy when all are used)
        if cols.size != B.shape[1]:  # (no copy for a group of the whole block)
            B = B[:, cols - off[j]]
        colours = [cols[c] for c in block_schedule(B)]
        if segments and segments[-1][0] == j:
            segments[-1][1].extend(colours)
        else:
            segments.append((j, colours))
    return segments


class RelationalSweeper(CoordinateSweeper):
    r""":class:`fmlib.solvers.coordinate.CoordinateSweeper` on a relational design.

    The same parameters (``w0``, ``w``, ``Vt``), residuals ``e`` and updates, but
    :math:`q_{f,i}` for one factor at a time (:meth:`factor_q`); the main block's colours by compiled loops over their
    non-zeros (:func:`fmlib.solvers.kernels.sweep_v_colour`: the numpy update
    without its temporaries of the size of the ratings), the relation blocks through
    their per-row caches (module docstring).

    Memory: the per-rating state is two ``(N,)`` float64 arrays, ``e`` and ``q`` (the
    flat sweeper keeps ``q`` for all k factors); the design's matrices, its block indices
    and ``y`` are used in place, not copied (the sweeps never write to them), and
    ``refresh`` rewrites ``e`` in place.

    Args:
        design: the ratings (checked by the caller).
        y: ``(N,)`` targets.
        w0, w, V: starting parameters over the flat columns.
        groups: how columns are grouped for the schedule (:func:`relational_schedule`).
    """

    def __init__(
        self,
        design: RelationalDesign,
        y: np.ndarray,
        w0: float,
        w: np.ndarray,
        V: np.ndarray,
        groups: Any = None,
    ):
        self.N, self.n = design.shape
        self.k = V.shape[1]
        # the schedule first: its temporaries are gone before the state is built
        schedule = relational_schedule(design, groups)
        # the design's arrays are shared, not copied (float64 already: make_sweeper);
        # the sweeps never write to them, nor to y (set_targets replaces it)
        self.X = _float64_csr(design.X)
        self.y = np.asarray(y, np.float64)
        self.w0 = float(w0)
        self.w = np.array(w, np.float64)
        self.Vt = np.array(np.asarray(V, np.float64).T, order="C")  # rows: one factor
        off = design.offsets
        self.relations: dict[int, _Relation] = {}
        for j, (B, index) in enumerate(design.block_matrices()):
            if index is not None:
                self.relations[j] = self._relation(int(off[j]), B, index)
        # (0, [_Block per colour]) for the main block, (j, _Columns) for relation j
        self.segments: list[tuple[int, Any]] = []
        self.schedule = []
        for j, colours in schedule:
            self.schedule.extend(colours)
            if j == 0:
                self.segments.append((0, [self._colour(cols) for cols in colours]))
            else:
                cols = np.concatenate(colours)
                self.segments.append((j, self._columns(self.relations[j], cols)))
        self.blocks = [b for j, parts in self.segments if j == 0 for b in parts]
        self.refresh()

    def _relation(self, start: int, B: sp.csr_matrix, index: np.ndarray) -> _Relation:
        """The block's rows that some rating uses, renumbered; when every row is used
        (the common case) the block and its index are the design's own arrays."""
        n_b = np.bincount(index, minlength=B.shape[0]).astype(float)
        if np.all(n_b > 0):
            data, index = _float64_csr(B), np.asarray(index, np.int64)
        else:
            used = np.flatnonzero(n_b)
            data = sp.csr_matrix(B[used], dtype=np.float64)
            index = np.searchsorted(used, index)
            n_b = n_b[used]
        return _Relation(start, data, index, n_b, np.zeros((self.k, data.shape[0])))

    def _colour(self, cols: np.ndarray) -> _Block:
        """One colour of the main block as ``CoordinateSweeper._block`` builds it (the
        non-zeros in row order), read from the CSR arrays by a compiled pass instead of
        through a column-major copy of the block and a sort: at 10^7 ratings those
        temporaries made the sampler's peak memory."""
        position = np.full(self.X.shape[1], -1, np.int64)
        position[cols] = np.arange(cols.size)
        X = self.X
        rows, seg, x, one_per_row, binary = kernels.colour_entries(
            X.indptr, X.indices, X.data, position
        )
        return _Block(
            cols,
            slice(None) if one_per_row else rows,
            seg,
            None if binary else x,
            None if binary else x * x,
            np.bincount(seg, minlength=cols.size).astype(np.float64),
        )

    @staticmethod
    def _columns(rel: _Relation, cols: np.ndarray) -> _Columns:
        sub = sp.csc_matrix(rel.data[:, cols - rel.start])
        sub.sort_indices()
        return _Columns(
            cols.astype(np.int64),
            sub.indptr.astype(np.int64),
            sub.indices,  # int32 for fewer than 2^31 block rows: half the memory
            np.ascontiguousarray(sub.data, np.float64),
        )

    # --- state -----------------------------------------------------------------------
    def refresh(self) -> None:
        r"""Recompute :math:`Q` of every block and the residuals :math:`e_i` from the
        parameters, by the block split of :mod:`fmlib.data.design_predict` written as

        .. math::

            \hat y_i &= w_0 + \sum_r \big(\ell_r - \tfrac12 \textstyle\sum_f
            s_{r,f}\big) \\
            &\quad + \tfrac12 \sum_f \big(\textstyle\sum_r q_{r,f}\big)^2 :

        the first sum once per block row (:func:`fmlib.solvers.kernels.add_row_terms`)
        gathered per rating, the second factor by factor through :meth:`factor_q`.
        Compiled passes over the non-zeros; no ``(N, k)`` or ``(k, N)`` array is formed.
        """
        v_sq = np.sum(self.Vt * self.Vt, axis=0)  # |v_l|^2 of every column
        n0 = self.X.shape[1]
        if getattr(self, "e", None) is None:
            self.e, self.q = np.zeros(self.N), np.zeros(self.N)
        y_hat = self.e  # e holds y_hat until it is turned into y - y_hat, in place
        y_hat.fill(self.w0)
        X = self.X
        kernels.add_row_terms(
            y_hat, X.indptr, X.indices, X.data, self.w[:n0], v_sq[:n0]
        )
        for rel in self.relations.values():
            cols = slice(rel.start, rel.start + rel.data.shape[1])
            B = rel.data
            per_row = np.zeros(B.shape[0])
            kernels.add_row_terms(
                per_row, B.indptr, B.indices, B.data, self.w[cols], v_sq[cols]
            )
            kernels.add_gathered(y_hat, per_row, rel.index)
            for f in range(self.k):
                kernels.csr_matvec(
                    rel.Qt[f], B.indptr, B.indices, B.data, self.Vt[f, cols]
                )
        for f in range(self.k):
            kernels.add_half_square(y_hat, self.factor_q(f))
        np.subtract(self.y, y_hat, out=self.e)

    def factor_q(self, f: int) -> np.ndarray:
        r""":math:`q_{f,i} = \sum_l x_{i,l} v_{l,f}` of every rating for factor ``f``:
        the main block's sparse product plus every relation block's :math:`Q_{b,f}`
        gathered through its index, in the one ``(N,)`` buffer ``self.q`` (overwritten;
        the sweeps keep it up to date while factor ``f`` is updated). libFM keeps the
        same one-factor cache: O(nnz of the main block + R N) per factor, about what the
        sweep of the factor itself reads, instead of a ``(k, N)`` array."""
        n0 = self.X.shape[1]
        X = self.X
        kernels.csr_matvec(self.q, X.indptr, X.indices, X.data, self.Vt[f, :n0])
        for rel in self.relations.values():
            kernels.add_gathered(self.q, rel.Qt[f], rel.index)
        return self.q

    # --- updates ---------------------------------------------------------------------
    def update_w(self, alpha: float, mu, lam, z, sample: bool) -> None:
        """Every :math:`w_l` in the order of the schedule; ``mu, lam, z`` of shape
        (n,)."""
        prior = [np.ascontiguousarray(a, np.float64) for a in (mu, lam, z)]
        for j, parts in self.segments:
            if j == 0:
                for b in parts:
                    kernels.sweep_w_colour(
                        self.w,
                        self.e,
                        *_loop_arrays(b),
                        float(alpha),
                        *prior,
                        bool(sample),
                    )
                continue
            rel = self.relations[j]
            kernels.sweep_w(
                self.w,
                self.e,
                rel.index,
                rel.n,
                *parts,
                float(alpha),
                *prior,
                bool(sample),
            )

    def update_V(self, alpha: float, mu, lam, z, sample: bool) -> None:
        r"""Every :math:`v_{l,f}`: factor by factor, in the order of the schedule."""
        prior = [
            np.ascontiguousarray(np.transpose(a), np.float64) for a in (mu, lam, z)
        ]
        for f in range(self.k):
            q = self.factor_q(f)
            for j, parts in self.segments:
                if j == 0:
                    for b in parts:
                        kernels.sweep_v_colour(
                            self.Vt[f],
                            q,
                            self.e,
                            *_loop_arrays(b),
                            float(alpha),
                            *(a[f] for a in prior),
                            bool(sample),
                        )
                    continue
                rel = self.relations[j]
                kernels.sweep_v(
                    self.Vt[f],
                    q,
                    self.e,
                    rel.Qt[f],
                    rel.index,
                    rel.n,
                    *parts,
                    float(alpha),
                    *(a[f] for a in prior),
                    bool(sample),
                )


_EMPTY_INT, _EMPTY_FLOAT = np.zeros(0, np.int64), np.zeros(0)


def _loop_arrays(b: Any) -> tuple:
    """A main-block colour (``CoordinateSweeper``'s ``_Block``) as the arrays of
    :func:`fmlib.solvers.kernels.sweep_w_colour`: ``rows`` empty for one non-zero
    per row, ``x`` and ``x_sq`` empty for values all 1."""
    rows = _EMPTY_INT if isinstance(b.rows, slice) else b.rows
    x = _EMPTY_FLOAT if b.x is None else b.x
    x_sq = _EMPTY_FLOAT if b.x_sq is None else b.x_sq
    return b.cols, rows, b.seg, x, x_sq


def _float64_csr(X: sp.spmatrix) -> sp.csr_matrix:
    """``X`` itself when it is a float64 CSR matrix, else a float64 CSR copy."""
    if isinstance(X, sp.csr_matrix) and X.dtype == np.float64:
        return X
    return sp.csr_matrix(X, dtype=np.float64)


def make_sweeper(
    X, y: np.ndarray, w0: float, w: np.ndarray, V: np.ndarray, groups: Any = None
) -> CoordinateSweeper:
    """The sweeper for checked data: :class:`RelationalSweeper` for a relational design,
    else :class:`fmlib.solvers.coordinate.CoordinateSweeper` on ``block_schedule(X, groups)``.
    """
    if isinstance(X, RelationalDesign):
        if X.X.dtype != np.float64:  # (astype copies every block, even as float64)
            X = X.astype(np.float64)
        return RelationalSweeper(X, y, w0, w, V, groups)
    X = sp.csr_matrix(X, dtype=np.float64)
    return CoordinateSweeper(X, y, w0, w, V, block_schedule(X, groups))
