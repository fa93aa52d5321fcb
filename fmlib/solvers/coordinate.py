r"""One parameter at a time: the coordinate updates shared by ALS and MCMC.

The chapter "Coordinate descent" derives them (and the chapter "The Bayesian factorization
machine" the Gibbs conditionals). The FM is linear in
every single parameter :math:`\theta` (Rendle, ACM TIST 2012, sec. 4):

.. math::

    & \hat y(\mathbf x) = g_\theta(\mathbf x) + \theta\, h_\theta(\mathbf x), \qquad
    h_{w_0} = 1,\quad h_{w_l} = x_l, \\
    & h_{v_{l,f}} = x_l \big(q_f(\mathbf x) - v_{l,f}\, x_l\big),\quad
    q_f(\mathbf x) = \sum_j v_{j,f}\, x_j .

With the residuals :math:`e_i = y_i - \hat y_i` we have :math:`y_i - g_{\theta,i} = e_i +
\theta h_{\theta,i}`. Under a Gaussian likelihood of precision :math:`\alpha` and a prior
:math:`\theta \sim \mathcal N(\mu_\theta, 1/\lambda_\theta)`, the conditional of
:math:`\theta` given everything else is Gaussian with

.. math::

    P_\theta &= \alpha \sum_i h_{\theta,i}^2 + \lambda_\theta, \\
    m_\theta &= \frac{\alpha \sum_i h_{\theta,i}\,(e_i + \theta\, h_{\theta,i})
                     + \lambda_\theta \mu_\theta}{P_\theta}.

ALS (coordinate descent) sets :math:`\theta \leftarrow m_\theta` with :math:`\alpha = 1,
\mu_\theta = 0`: the minimiser of :math:`\sum_i e_i^2 + \lambda_\theta \theta^2` in
:math:`\theta`. MCMC draws :math:`\theta \sim \mathcal N(m_\theta, 1/P_\theta)`. After the
change :math:`\delta = \theta_{\text{new}} - \theta`, the caches follow in O(nnz of the
column): :math:`e_i \leftarrow e_i - \delta h_{\theta,i}` and, for :math:`v_{l,f}`,
:math:`q_{i,f} \leftarrow q_{i,f} + \delta x_{i,l}`.

**Blocks.** Two features that never appear in the same row do not enter each other's
:math:`h` or :math:`e`, so their conditionals are independent and both can be updated at
once. :func:`block_schedule` colours the columns so that no two columns of one colour
share a row: every one-hot block (all users, all items) is one colour; a multi-hot block
(genres, the movies a user rated) is split greedily. Updating colour after colour is then
*exactly* the sequential one-feature-at-a-time sweep in that order, with every colour
done by segment sums (``numpy.bincount``) over its non-zeros.

**Why numpy here.** These sweeps are gathers, scatters and segment sums over the
non-zeros of one block at a time, thousands of small steps per sweep. On the CPU,
TensorFlow's kernels for them cost about ten times numpy's per element (measured on
80,000 values: a gather 0.65 ms against 0.07 ms, a scatter-add 1.9 ms against 0.26 ms,
a segment sum 0.65 ms against 0.20 ms), so the solvers keep their state in numpy, as
libFM and myFM keep theirs in C++. Only the colouring of the schedule, a loop over
the neighbours of one column at a time, is compiled with numba. The model they train is
the same :class:`~fmlib.FactorizationMachine`, and predictions go through TensorFlow as
everywhere else.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numba
import numpy as np
import scipy.sparse as sp

from fmlib.validation import column_groups


# --- the schedule ------------------------------------------------------------------------
def _distinct_rows(B: sp.csr_matrix) -> sp.csr_matrix:
    """The distinct sparsity patterns among the rows of a canonical CSR ``B`` (sorted
    indices, no duplicates).

    Rows of one length ``L`` are compared as the rows of an ``(rows, L)`` array of
    column indices (``numpy.unique`` along axis 0), so the work and the memory are O(nnz),
    with no Python object per row.
    """
    length = np.diff(B.indptr)
    keep = []
    for L in np.unique(length):
        rows = np.flatnonzero(length == L)
        if L == 0:
            keep.append(rows[:1])
            continue
        patterns = B.indices[B.indptr[rows][:, None] + np.arange(L)]
        keep.append(rows[np.unique(patterns, axis=0, return_index=True)[1]])
    return B[np.sort(np.concatenate(keep))] if keep else B


def _jit(function):
    """``numba.njit`` with the on-disk cache when a writable cache directory exists
    (else compiled anew in every process), as in :mod:`fmlib.solvers.kernels`."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError:
        return numba.njit(function)


@_jit
def _degrees(row_ptr, row_cols, col_ptr, col_rows):
    """Degree of every column in the co-occurrence graph: the number of *other* columns
    that share a row with it. Column ``v``'s neighbours are found by walking its rows
    and their columns; ``seen[u] == v`` marks ``u`` as already counted for ``v``."""
    n = col_ptr.size - 1
    seen = np.full(n, -1, np.int64)
    degree = np.zeros(n, np.int64)
    for v in range(n):
        seen[v] = v  # not its own neighbour
        for p in range(col_ptr[v], col_ptr[v + 1]):
            r = col_rows[p]
            for s in range(row_ptr[r], row_ptr[r + 1]):
                u = row_cols[s]
                if seen[u] != v:
                    seen[u] = v
                    degree[v] += 1
    return degree


@_jit
def _colour_in_order(order, row_ptr, row_cols, col_ptr, col_rows):
    """Greedy colouring: column after column in ``order``, the smallest colour that no
    already coloured neighbour has. ``taken[c] == v`` marks colour ``c`` as used by a
    neighbour of ``v``."""
    n = col_ptr.size - 1
    colour = np.full(n, -1, np.int64)
    taken = np.full(n + 1, -1, np.int64)  # a column has at most n - 1 neighbours
    for v in order:
        for p in range(col_ptr[v], col_ptr[v + 1]):
            r = col_rows[p]
            for s in range(row_ptr[r], row_ptr[r + 1]):
                c = colour[row_cols[s]]  # -1 for v itself and uncoloured columns
                if c >= 0:
                    taken[c] = v
        c = 0
        while taken[c] == v:
            c += 1
        colour[v] = c
    return colour


def _greedy_colouring(pattern: sp.csr_matrix) -> np.ndarray:
    r"""Colour the columns of ``pattern`` so that columns sharing a row differ: largest
    degree first (ties by column index), each the smallest colour its neighbours leave.

    These are the colours of the greedy algorithm on the co-occurrence graph
    :math:`G = D^\top D` of the pattern, without forming :math:`G` (at 10^7 ratings the
    implicit block's :math:`G` has hundreds of millions of entries): neighbours are
    found by walking column -> its rows -> their columns. Time O(sum over rows of
    nnz(row)^2), memory O(n + nnz). Repeated rows give the same colours and only cost
    time; ``block_schedule`` removes them where rows are long.
    """
    csc = pattern.tocsc()
    walk = (pattern.indptr, pattern.indices, csc.indptr, csc.indices)
    order = np.argsort(-_degrees(*walk), kind="stable")
    return _colour_in_order(order, *walk)


def block_schedule(X: sp.spmatrix, groups: Any = None) -> list[np.ndarray]:
    """Split the columns of ``X`` into blocks of columns that never share a row.

    Within each group (see ``fmlib.validation.column_groups``), columns are coloured greedily on
    their co-occurrence graph (``_greedy_colouring``, which walks the group's rows
    instead of forming the graph; where rows are long, as the implicit block of a user
    that repeats on every rating of the user, only the distinct row patterns are
    walked). Blocks come out group by group, so a group's features are updated
    together.

    Returns:
        A list of sorted int arrays of column indices; every column appears exactly once.
    """
    X = sp.csr_matrix(X)
    n = X.shape[1]
    group_of = column_groups(groups, n)
    # the structure only (one byte per entry); X's own index arrays unless sorting and
    # merging duplicates would change them
    canonical = X.has_canonical_format
    pattern = sp.csr_matrix(
        (
            np.ones(X.nnz, bool),
            X.indices if canonical else X.indices.copy(),
            X.indptr if canonical else X.indptr.copy(),
        ),
        shape=X.shape,
    )
    pattern.sum_duplicates()
    blocks = []
    for g in range(int(group_of.max()) + 1 if n else 0):
        cols = np.flatnonzero(group_of == g)
        sub = pattern if cols.size == n else pattern[:, cols]
        if (
            sub.shape[0] == 0 or np.diff(sub.indptr).max() <= 1
        ):  # one-hot: a single colour
            blocks.append(cols)
            continue
        if np.sum(np.diff(sub.indptr) ** 2) > 16 * sub.nnz:  # long rows: walk each once
            sub = _distinct_rows(sub)
        colour = _greedy_colouring(sub)
        blocks.extend(cols[colour == c] for c in range(int(colour.max()) + 1))
    return blocks


# --- the sweeper -------------------------------------------------------------------------
class _Block(NamedTuple):
    """The non-zeros of one block of columns, sorted by row (cache-friendly).

    ``rows`` is ``slice(None)`` when the block has exactly one non-zero in every row (a
    one-hot block), so that gathers and scatters over the rows become plain vector
    operations; ``x`` and ``x_sq`` are ``None`` when every value is 1 (then
    :math:`h_{w_l} = 1` and :math:`h_{v_{l,f}} = q_f - v_{l,f}`), and ``counts`` is the
    number of non-zeros of every column.
    """

    cols: np.ndarray
    rows: np.ndarray | slice
    seg: np.ndarray
    x: np.ndarray | None
    x_sq: np.ndarray | None
    counts: np.ndarray


class CoordinateSweeper:
    r"""Cached state and block updates for ALS and Gibbs sampling of one FM.

    Holds :math:`w_0, \mathbf w, \mathbf V`, the residuals :math:`e_i` and the sums
    :math:`q_{i,f}` as float64 arrays, and the non-zeros of ``X`` column by column in
    the order of ``schedule``. Every update sets
    :math:`\theta \leftarrow m_\theta + \text{sample}\cdot z_\theta / \sqrt{P_\theta}`
    (see the module docstring): ``sample=False`` is ALS, ``sample=True`` a Gibbs step with
    the standard normal draws ``z`` given by the caller, one per parameter, so that any
    schedule uses the same draw for the same parameter.

    Args:
        X: ``(N, n)`` CSR matrix, checked by the caller.
        y: ``(N,)`` targets.
        w0, w, V: starting parameters.
        schedule: blocks of columns that never share a row (:func:`block_schedule`).
    """

    def __init__(
        self,
        X: sp.csr_matrix,
        y: np.ndarray,
        w0: float,
        w: np.ndarray,
        V: np.ndarray,
        schedule: Sequence[np.ndarray],
    ):
        self.N, self.n = X.shape
        self.k = V.shape[1]
        order = (
            np.concatenate([np.asarray(b, np.int64) for b in schedule])
            if len(schedule)
            else np.zeros(0, np.int64)
        )
        if order.size != self.n or np.any(np.sort(order) != np.arange(self.n)):
            raise ValueError("`schedule` must list every column exactly once.")
        self.X = sp.csr_matrix(X, dtype=np.float64)
        self._X_sq = self.X.multiply(self.X).tocsr()
        Xc = sp.csc_matrix(self.X)
        self.blocks = [self._block(Xc, np.asarray(cols, np.int64)) for cols in schedule]
        self.y = np.array(y, np.float64)
        self.w0 = float(w0)
        self.w = np.array(w, np.float64)
        self.Vt = np.array(np.asarray(V, np.float64).T)  # (k, n): row f is v_{., f}
        self.refresh()

    def _block(self, Xc: sp.csc_matrix, cols: np.ndarray) -> _Block:
        sub = Xc[:, cols]
        # int32 positions (half the memory of int64; numpy.bincount gives the same sums)
        seg_type = np.int32 if cols.size < 2**31 else np.int64
        seg = np.repeat(np.arange(cols.size, dtype=seg_type), np.diff(sub.indptr))
        by_row = np.argsort(sub.indices, kind="stable")
        rows, seg, x = (
            sub.indices[by_row].astype(np.int64),
            seg[by_row],
            sub.data[by_row],
        )
        if rows.size == self.N and np.array_equal(rows, np.arange(self.N)):
            rows = slice(None)
        binary = bool(np.all(x == 1.0))
        return _Block(
            cols,
            rows,
            seg,
            None if binary else x,
            None if binary else x * x,
            np.bincount(seg, minlength=cols.size).astype(np.float64),
        )

    # --- state -----------------------------------------------------------------------
    @property
    def V(self) -> np.ndarray:
        return self.Vt.T.copy()

    def weights(self) -> dict[str, Any]:
        """A copy of the parameters: ``{"w0", "w", "V"}`` (float64)."""
        return {"w0": self.w0, "w": self.w.copy(), "V": self.V}

    def refresh(self) -> None:
        r"""Recompute :math:`q_{i,f}` and :math:`e_i` from the parameters, O(k nnz).

        The updates keep both caches exact up to rounding; a refresh at the start of every
        sweep stops rounding errors from accumulating over thousands of sweeps.
        """
        q = self.X @ np.ascontiguousarray(self.Vt.T)  # one pass over X: (N, k)
        self.qt = np.ascontiguousarray(q.T)  # (k, N): row f is q_{., f}
        y_hat = (
            self.w0
            + self.X @ self.w
            + 0.5
            * (np.sum(self.qt**2, axis=0) - self._X_sq @ np.sum(self.Vt**2, axis=0))
        )
        self.e = self.y - y_hat

    def set_targets(self, y: np.ndarray) -> None:
        """Replace the targets (the probit sampler's latent variables), keeping e = y - ŷ."""
        self.e += y - self.y
        self.y = np.array(y, np.float64)

    def predictions(self) -> np.ndarray:
        """ŷ on the training rows, from the cache: y - e."""
        return self.y - self.e

    # --- the conditional of a block --------------------------------------------------
    @staticmethod
    def _draw(theta, h_e, h_sq, block, alpha, mu, lam, z, sample):
        """New values of one block's parameters, m + sample z / sqrt(P) (module docstring),
        from the products h e and h^2 of its non-zeros (``h_sq`` None: all ones)."""
        size = theta.size
        den = (
            block.counts
            if h_sq is None
            else np.bincount(block.seg, h_sq, minlength=size)
        )
        num = np.bincount(block.seg, h_e, minlength=size) + theta * den
        prec = alpha * den + lam
        with np.errstate(divide="ignore", invalid="ignore"):
            new = (alpha * num + lam * mu) / prec
            if sample:
                new += z / np.sqrt(prec)
        # P = 0 (no data and lambda = 0: an infinite variance): 0, as libFM sets it
        return np.where(prec > 0, new, 0.0)

    def update_w0(
        self, alpha: float, lam: float, mu: float, z: float, sample: bool
    ) -> None:
        """:math:`w_0` from its conditional (:math:`h = 1` for every row)."""
        prec = alpha * self.N + lam
        new = (alpha * (self.e.sum() + self.N * self.w0) + lam * mu) / prec
        if sample:
            new += z / np.sqrt(prec)
        self.e -= new - self.w0
        self.w0 = float(new)

    def update_w(self, alpha: float, mu, lam, z, sample: bool) -> None:
        """Every :math:`w_l`, block by block (:math:`h = x_l`); ``mu, lam, z`` of shape (n,)."""
        for b in self.blocks:
            self._update_w_block(b, alpha, mu, lam, z, sample)

    def _update_w_block(
        self, b: _Block, alpha: float, mu, lam, z, sample: bool
    ) -> None:
        theta, e_rows = self.w[b.cols], self.e[b.rows]
        h_e = e_rows if b.x is None else b.x * e_rows
        new = self._draw(
            theta, h_e, b.x_sq, b, alpha, mu[b.cols], lam[b.cols], z[b.cols], sample
        )
        delta = (new - theta)[b.seg]
        self.e[b.rows] = e_rows - (delta if b.x is None else delta * b.x)
        self.w[b.cols] = new

    def update_V(self, alpha: float, mu, lam, z, sample: bool) -> None:
        r"""Every :math:`v_{l,f}`: factor by factor, block by block; ``mu, lam, z`` (n, k).

        :math:`h = x_l (q_f - v_{l,f} x_l)`; the rows of one block are distinct, so the
        caches are updated by plain (scatter) assignments.
        """
        for f in range(self.k):
            for b in self.blocks:
                self._update_v_block(f, b, alpha, mu, lam, z, sample)

    def _update_v_block(
        self, f: int, b: _Block, alpha: float, mu, lam, z, sample: bool
    ) -> None:
        v, q = self.Vt[f], self.qt[f]
        theta, q_rows, e_rows = v[b.cols], q[b.rows], self.e[b.rows]
        if b.x is None:  # x = 1: h = q - v
            h = q_rows - theta[b.seg]
        else:
            h = b.x * q_rows - theta[b.seg] * b.x_sq
        new = self._draw(
            theta,
            h * e_rows,
            h * h,
            b,
            alpha,
            mu[b.cols, f],
            lam[b.cols, f],
            z[b.cols, f],
            sample,
        )
        delta = (new - theta)[b.seg]
        self.e[b.rows] = e_rows - delta * h
        q[b.rows] = q_rows + (delta if b.x is None else delta * b.x)
        v[b.cols] = new
