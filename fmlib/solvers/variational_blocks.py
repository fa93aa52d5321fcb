r"""Mean-field variational inference on relation blocks, with per-block-row caches.

The coordinate steps of ``fmlib.solvers.variational`` (chapter "Star ratings and
variational inference", section "Variational inference") read, per rating :math:`i` and
factor :math:`f`, three sums over the rating's non-zeros, :math:`q_i = \sum_l a_{i,l}`,
:math:`s_i = \sum_l \sigma^2_{i,l}` and :math:`t_i = \sum_l \sigma^2_{i,l} a_{i,l}`
(:math:`a_{i,l} = x_{i,l}\mathbb E[v_{l,f}]`, :math:`\sigma^2_{i,l} = x_{i,l}^2
\operatorname{Var}[v_{l,f}]`). On a relational design (chapter "Relation blocks") the
columns of block :math:`r` take, for every rating with :math:`\phi(i) = b`, the values of
block row :math:`b`, so each sum splits into the block row's own part and the rest,

.. math::

    q_i = o_i + Q_b, \qquad s_i = s^o_i + S_b, \qquad t_i = t^o_i + T_b,

:math:`Q_b = \sum_l B_{b,l}\mathbb E[v_{l,f}]` (and :math:`S_b, T_b` likewise), and the
other blocks' parts :math:`o_i, s^o_i, t^o_i` do not change while block :math:`r`'s
columns are updated. For column :math:`l`, with :math:`m_l, s_l` the current mean and
variance of :math:`v_{l,f}`, :math:`x = B_{b,l}`, :math:`\rho_b = Q_b - x m_l`,
:math:`\varsigma_b = S_b - x^2 s_l`, :math:`\tau_b = T_b - x^3 s_l m_l` (the row's parts
without column :math:`l`), the flat step's precision :math:`P = \bar\alpha \sum_b x^2
\sum_{\phi(i)=b} (Q_i^2 + S_i) + \bar\lambda` and mean :math:`\big(\bar\alpha \sum_b x
\sum_{\phi(i)=b} (Q_i r_i + x m_l Q_i^2 - S_i Q_i + T_i) + \bar\lambda\bar\mu\big) / P`
need, over the ratings of row :math:`b`,

.. math::

    \sum_{\phi(i)=b} Q_i^2 &= O^{(2)}_b + 2\rho_b O_b + n_b \rho_b^2, \\
    \sum_{\phi(i)=b} S_i &= S^o_b + n_b \varsigma_b, \\
    \sum_{\phi(i)=b} Q_i r_i &= (OR)_b + \rho_b R_b, \\
    \sum_{\phi(i)=b} S_i Q_i &= (S^o O)_b + \rho_b S^o_b + \varsigma_b O_b
        + n_b \varsigma_b \rho_b, \\
    \sum_{\phi(i)=b} T_i &= T^o_b + n_b \tau_b,

(:math:`Q_i = o_i + \rho_b`, :math:`S_i = s^o_i + \varsigma_b`, :math:`T_i = t^o_i +
\tau_b`: the rating's sums without column :math:`l`), with :math:`n_b` the ratings of the
row, :math:`O_b = \sum o_i`, :math:`O^{(2)}_b = \sum o_i^2`, :math:`S^o_b = \sum s^o_i`,
:math:`(S^o O)_b = \sum s^o_i o_i`, :math:`T^o_b = \sum t^o_i` fixed during the block's pass,
and :math:`R_b = \sum r_i`, :math:`(OR)_b = \sum o_i r_i` following the residuals: a
change :math:`\delta` of the mean moves :math:`r_i` by :math:`-\delta x (o_i + \rho_b)`,
so :math:`R_b \mathrel{-}= \delta x (O_b + n_b\rho_b)` and :math:`(OR)_b \mathrel{-}=
\delta x (O^{(2)}_b + \rho_b O_b)`. The ratings' :math:`r_i, q_i, s_i, t_i` follow once
at the end of the block's pass. So one factor of one block costs :math:`O(N +
\mathrm{nnz}(B))` instead of :math:`O(\mathrm{nnz})` of the flattened block, and the
same holds for :math:`w_l` (:math:`\sum_i x^2 = x^2 n_b`, :math:`\sum_i x r_i = x R_b`).

The moments of the scores split the same way: every per-row term of
``fmlib.solvers.variational.prediction_moments`` is a sum over the rating's blocks,
computed once per block row and gathered (:func:`gather_moments`).

The updates are those of the flat matrix in the same order (columns in increasing flat
index, factor by factor), so a fit on the blocks equals the fit on ``design.to_csr()``
up to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from fmlib.solvers.kernels import _jit


class _Relation(NamedTuple):
    """One relation block as the column loops read it (CSC of its rows)."""

    start: int  # first flat column
    row0: int  # first row of the block in the stacked relation rows
    index: np.ndarray  # (N,) int64 block row of every rating
    n_b: np.ndarray  # (M,) ratings per block row, float
    ptr: np.ndarray  # (n_B + 1,) int64 column pointers
    rows: np.ndarray  # block rows of the non-zeros, increasing per column
    x: np.ndarray  # the non-zeros

    @property
    def loops(self) -> tuple:
        """The arguments ``index, n_b, start, ptr, rows, x`` of the column loops
        (:func:`sweep_w_block`, :func:`sweep_v_block`)."""
        return self.index, self.n_b, self.start, self.ptr, self.rows, self.x


class BlockPowers:
    r"""A design prepared once per fit: a relational design, or a flat matrix as a
    design with only a main block.

    The main block is kept row-major (for the moments) and column-major (for the flat
    column loops). The relation blocks are stacked as the rows of one matrix
    :math:`\mathbf Z` (block-diagonal over the flat columns: the rows of the first block,
    then of the next), with its powers :math:`Z^2, Z^3, Z^4`; rating :math:`i`'s flat row
    is its main row followed by the rows ``gather[i]`` of :math:`\mathbf Z` (row
    :math:`\phi_r(i)` of every block). Every relation block is also kept column-major,
    with its ratings per row :math:`n_b`.

    A flat matrix is the design with only a main block (no relation blocks): the flat
    path of :class:`fmlib.VariationalFM` is this one.

    Args:
        design: a :class:`fmlib.RelationalDesign` with float64 values, or a sparse
            matrix (its main block).
    """

    def __init__(self, design):
        if isinstance(design, np.ndarray):
            if design.ndim != 2:
                raise ValueError(f"`X` must be 2-d; got shape {design.shape}")
            design = sp.csr_matrix(design)
        if sp.issparse(design):
            design = _MainOnly(sp.csr_matrix(design, dtype=np.float64))
        elif not (hasattr(design, "X") and hasattr(design, "blocks")):
            raise TypeError(
                "`X` must be a sparse matrix, a 2-d array or a fmlib.RelationalDesign; "
                f"got {type(design).__name__}"
            )
        self.N, self.n = design.shape
        X0 = sp.csr_matrix(design.X, dtype=np.float64)
        X0.sort_indices()
        self.n0 = X0.shape[1]
        self.main_csr = (
            X0.indptr.astype(np.int64),
            X0.indices.astype(np.int64),
            X0.data,
        )
        main = X0.tocsc()
        main.sort_indices()
        self.main_ptr = main.indptr.astype(np.int64)
        self.main_idx = main.indices.astype(np.int64)
        self.main_x = main.data
        off = design.offsets
        parts, self.relations, gather = [], [], []
        row0 = 0
        for j, block in enumerate(design.blocks, start=1):
            B = sp.csr_matrix(block.data, dtype=np.float64)
            index = np.asarray(block.index, np.int64)
            Bc = B.tocsc()
            Bc.sort_indices()
            self.relations.append(
                _Relation(
                    int(off[j]),
                    row0,
                    index,
                    np.bincount(index, minlength=B.shape[0]).astype(np.float64),
                    Bc.indptr.astype(np.int64),
                    Bc.indices.astype(np.int64),
                    Bc.data,
                )
            )
            parts.append(B)
            gather.append(index + row0)
            row0 += B.shape[0]
        self.gather = (
            np.ascontiguousarray(np.stack(gather, axis=1))
            if gather
            else np.zeros((self.N, 0), np.int64)
        )
        self.Z = _block_diagonal(parts, off[1:], int(off[-1]))
        self.Z2 = self.Z.multiply(self.Z).tocsr()
        self.Z3 = self.Z2.multiply(self.Z).tocsr()
        self.Z4 = self.Z2.multiply(self.Z2).tocsr()


class _MainOnly(NamedTuple):
    """A sparse matrix read as a design: the main block, no relation blocks."""

    X: sp.csr_matrix

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape

    @property
    def offsets(self) -> np.ndarray:
        return np.array([0, self.X.shape[1]])

    @property
    def blocks(self) -> list:
        return []


def _block_diagonal(parts: list[sp.csr_matrix], starts, n: int) -> sp.csr_matrix:
    """The CSR blocks stacked as rows, block ``j`` in columns ``starts[j]..``."""
    indptr = [np.zeros(1, np.int64)]
    base = 0
    for B in parts:
        indptr.append(B.indptr[1:].astype(np.int64) + base)
        base += B.nnz
    indices = [B.indices.astype(np.int64) + starts[j] for j, B in enumerate(parts)]
    data = [B.data for B in parts]
    rows = sum(B.shape[0] for B in parts)
    return sp.csr_matrix(
        (
            np.concatenate(data or [np.zeros(0)]),
            np.concatenate(indices or [np.zeros(0, np.int64)]),
            np.concatenate(indptr),
        ),
        shape=(rows, n),
    )


class BlockSums(NamedTuple):
    r"""The sums the V step starts from: per rating ``q, s2, t``, ``(k, N)``, and per
    row of the stacked relation blocks (:class:`BlockPowers`' :math:`\mathbf Z`) their
    own parts ``Q, S, T``, ``(k, rows)``; one factor a contiguous row."""

    q: np.ndarray
    s2: np.ndarray
    t: np.ndarray
    Q: np.ndarray
    S: np.ndarray
    T: np.ndarray


def block_moments(BP: BlockPowers, m0, s0, mw, sw, MV, SV, out: BlockSums = None):
    r""":math:`\mathbb E_q[\hat y_i]`, :math:`\operatorname{Var}_q[\hat y_i]` and the
    :class:`BlockSums` of a relational design: the per-row terms of
    ``fmlib.solvers.variational.prediction_moments`` computed once per row of the
    relation blocks, then added to the main block's per rating by
    :func:`gather_moments`. ``out``: a :class:`BlockSums` of the same shapes to write
    the per-rating sums into (a fit's previous ones), instead of new arrays."""
    Z, Z2, Z3, Z4 = BP.Z, BP.Z2, BP.Z3, BP.Z4
    SVMV = SV * MV
    D, U, W = (np.sum(a, axis=1) for a in (MV**2, SVMV * MV, SV**2))
    Q, S, T = (np.ascontiguousarray(a.T) for a in (Z @ MV, Z2 @ SV, Z3 @ SVMV))
    a_row = Z @ mw - 0.5 * (Z2 @ D)
    c_row = Z2 @ sw + Z4 @ U - 0.5 * (Z4 @ W)
    k = MV.shape[1]
    mean, var = np.empty(BP.N), np.empty(BP.N)
    if out is None:
        out = BlockSums(*(np.empty((k, BP.N)) for _ in range(3)), Q, S, T)
    else:
        for name in ("q", "s2", "t"):  # the compiled loop writes without bounds checks
            a = getattr(out, name)
            if (
                a.shape != (k, BP.N)
                or a.dtype != np.float64
                or not a.flags.c_contiguous
            ):
                raise ValueError(
                    f"`out.{name}` must be a C-contiguous float64 array of shape "
                    f"{(k, BP.N)}; got {a.dtype} {a.shape}"
                )
        out = out._replace(Q=Q, S=S, T=T)
    params = (*(np.ascontiguousarray(a.T) for a in (MV, SV, SVMV)), mw, sw, D, U, W)
    rows = (BP.gather, Q, S, T, a_row, c_row)
    gather_moments(
        float(m0), float(s0), *BP.main_csr, *params, *rows, mean, var, *out[:3]
    )
    return mean, var, out


@_jit
def gather_moments(
    m0,
    s0,
    indptr,
    indices,
    data,
    MV,
    SV,
    SVMV,
    mw,
    sw,
    D,
    U,
    W,
    gather,
    Q,
    S,
    T,
    a_row,
    c_row,
    mean,
    var,
    q,
    s2,
    t,
):
    r"""Per rating :math:`i`: :math:`q_{i,f} = \sum_l x_{i,l} \bar v_{l,f} + \sum_g
    Q_{g,f}` over its main row and its rows :math:`g` of the relation blocks
    (``gather[i]``), :math:`s, t` likewise from :math:`\operatorname{Var}[v]` and
    :math:`\operatorname{Var}[v]\,\bar v`, then

    .. math::

        \mathbb E[\hat y_i] &= \bar w_0 + a_i + \tfrac12 \sum_f q_{i,f}^2, \\
        \operatorname{Var}[\hat y_i] &= \operatorname{Var}[w_0] + c_i \\
            &\quad + \sum_f \big(q_{i,f}^2 s_{i,f} - 2 q_{i,f} t_{i,f}
            + \tfrac12 s_{i,f}^2\big),

    with :math:`a_i = \sum_l x_{i,l}\bar w_l - \tfrac12 \sum_{l} x_{i,l}^2 D_l` and
    :math:`c_i = \sum_l x_{i,l}^2 \operatorname{Var}[w_l] + \sum_l x_{i,l}^4 (U_l -
    \tfrac12 W_l)`, :math:`D_l = \sum_f \bar v_{l,f}^2`, :math:`U_l = \sum_f
    \operatorname{Var}[v_{l,f}]\bar v_{l,f}^2`, :math:`W_l = \sum_f
    \operatorname{Var}[v_{l,f}]^2` (module docstring of
    ``fmlib.solvers.variational``), the relation blocks' parts of :math:`a_i, c_i`
    read from their rows (``a_row, c_row``). ``MV, SV, SVMV`` and the rows' ``Q, S,
    T`` one factor a row, ``(k, n)`` and ``(k, rows)``. Writes ``mean, var`` ``(N,)``
    and ``q, s2, t`` ``(k, N)``, factor by factor (each factor's arrays in order)."""
    N, J = gather.shape
    for i in range(N):  # a_i, c_i
        a, c = 0.0, 0.0
        for p in range(indptr[i], indptr[i + 1]):
            l, x = indices[p], data[p]
            x2 = x * x
            a += x * mw[l] - 0.5 * x2 * D[l]
            c += x2 * sw[l] + x2 * x2 * (U[l] - 0.5 * W[l])
        for j in range(J):
            a += a_row[gather[i, j]]
            c += c_row[gather[i, j]]
        mean[i], var[i] = m0 + a, s0 + c
    for f in range(MV.shape[0]):
        _gather_factor(
            indptr, indices, data, MV[f], SV[f], SVMV[f], gather, Q[f], S[f], T[f],
            mean, var, q[f], s2[f], t[f],
        )  # fmt: skip


@_jit
def _gather_factor(
    indptr, indices, data, mv, sv, svmv, gather, Q, S, T, mean, var, q, s, t
):
    """Factor :math:`f` of :func:`gather_moments`: ``q, s, t`` of every rating, and
    their terms added to ``mean, var``."""
    N, J = gather.shape
    for i in range(N):
        qi, si, ti = 0.0, 0.0, 0.0
        for p in range(indptr[i], indptr[i + 1]):
            l, x = indices[p], data[p]
            x2 = x * x
            qi += x * mv[l]
            si += x2 * sv[l]
            ti += x2 * x * svmv[l]
        for j in range(J):
            g = gather[i, j]
            qi += Q[g]
            si += S[g]
            ti += T[g]
        q[i], s[i], t[i] = qi, si, ti
        mean[i] += 0.5 * qi * qi
        var[i] += qi * qi * si - 2.0 * qi * ti + 0.5 * si * si


@_jit
def sweep_w_block(mw, sw, r, index, n_b, start, ptr, rows, x, El, Emu, alpha):
    r"""Every :math:`\tilde p(w_l)` of one relation block, in place: with :math:`R_b =
    \sum_{\phi(i)=b} r_i`, precision :math:`P = \bar\alpha \sum_b B_{b,l}^2 n_b +
    \bar\lambda` and mean :math:`(\bar\alpha \sum_b B_{b,l}(R_b + B_{b,l} m_{\text{old}}
    n_b) + \bar\lambda\bar\mu) / P`; a change :math:`\delta` moves :math:`R_b` by
    :math:`-\delta B_{b,l} n_b`, and the residuals follow once at the end.

    Args:
        mw, sw: ``(n,)`` means and variances of all linear weights (updated).
        r: ``(N,)`` residuals target - E[ŷ] (updated).
        index: ``(N,)`` block row of every rating; ``n_b``: ``(M,)`` ratings per row.
        start: the block's first flat column.
        ptr, rows, x: the block column-major (column ``c`` = flat ``start + c``).
        El, Emu: ``(n,)`` prior precision and mean means of every column.
        alpha: :math:`\bar\alpha`.
    """
    M = n_b.size
    C = np.zeros((M, 3))  # R_b, n_b, change of the row's linear term
    for b in range(M):
        C[b, 1] = n_b[b]
    for i in range(index.size):
        C[index[i], 0] += r[i]
    for c in range(ptr.size - 1):
        l = start + c
        m_old = mw[l]
        P = El[l]
        num = El[l] * Emu[l]
        for p in range(ptr[c], ptr[c + 1]):
            b, xb = rows[p], x[p]
            P += alpha * xb * xb * C[b, 1]
            num += alpha * xb * (C[b, 0] + xb * m_old * C[b, 1])
        m = num / P
        for p in range(ptr[c], ptr[c + 1]):
            b = rows[p]
            d = (m - m_old) * x[p]
            C[b, 0] -= d * C[b, 1]
            C[b, 2] += d
        mw[l] = m
        sw[l] = 1.0 / P
    for i in range(index.size):
        r[i] -= C[index[i], 2]


# per block row, side by side in one (M, 15) array (a row's numbers share cache lines):
# n_b, O_b, O2_b, S^o_b, (S^o O)_b, T^o_b, R_b, (OR)_b (module docstring), the row's own
# Q_b, S_b, T_b now and at the start of the pass, and A_b = sum of delta x rho_b
_N, _O, _O2, _So, _SoO, _To, _R, _OR, _Q, _S, _T, _Q0, _S0, _T0, _A = range(15)


@_jit
def sweep_v_block(
    mv, sv, q, s2, t, r, Q, S, T, index, n_b, start, ptr, rows, x, El, Emu, alpha
):
    r"""Every :math:`\tilde p(v_{l,f})` of one relation block for one factor, in place
    (module docstring): precision :math:`P = \bar\alpha \sum_b x^2 \big(\sum Q_i^2 +
    \sum S_i\big) + \bar\lambda`, mean :math:`\big(\bar\alpha \sum_b x \big(\sum Q_i r_i
    + x m_{\text{old}} \sum Q_i^2 - \sum S_i Q_i + \sum T_i\big) + \bar\lambda\bar\mu
    \big) / P`, the sums over the ratings of row :math:`b` from the row's caches; the
    flat step of ``fmlib.solvers.variational`` summed per block row.

    Args:
        mv, sv: ``(n,)`` means and variances of factor :math:`f` of all features
            (updated).
        q, s2, t: ``(N,)`` the ratings' sums :math:`q, s, t` of factor :math:`f`
            (updated).
        r: ``(N,)`` residuals (updated).
        Q, S, T: ``(M,)`` the block rows' own parts (updated).
        index, n_b, start, ptr, rows, x: as in :func:`sweep_w_block`.
        El, Emu: ``(n,)`` prior precision and mean means of factor :math:`f`.
        alpha: :math:`\bar\alpha`.
    """
    M = n_b.size
    C = np.zeros((M, 15))
    for b in range(M):
        C[b, _N] = n_b[b]
        C[b, _Q] = C[b, _Q0] = Q[b]
        C[b, _S] = C[b, _S0] = S[b]
        C[b, _T] = C[b, _T0] = T[b]
    for i in range(index.size):  # the other blocks' parts, summed per row
        b = index[i]
        o = q[i] - C[b, _Q0]
        so = s2[i] - C[b, _S0]
        C[b, _O] += o
        C[b, _O2] += o * o
        C[b, _So] += so
        C[b, _SoO] += so * o
        C[b, _To] += t[i] - C[b, _T0]
        C[b, _R] += r[i]
        C[b, _OR] += o * r[i]
    for c in range(ptr.size - 1):
        l = start + c
        m_old, s_old = mv[l], sv[l]
        P = El[l]
        num = El[l] * Emu[l]
        for p in range(ptr[c], ptr[c + 1]):
            b, xb = rows[p], x[p]
            n, O = C[b, _N], C[b, _O]
            rho = C[b, _Q] - xb * m_old
            sig = C[b, _S] - xb * xb * s_old
            tau = C[b, _T] - xb * xb * xb * s_old * m_old
            QQ = C[b, _O2] + 2.0 * rho * O + n * rho * rho
            QR = C[b, _OR] + rho * C[b, _R]
            SQ = C[b, _SoO] + rho * C[b, _So] + sig * O + n * sig * rho
            TT = C[b, _To] + n * tau
            P += alpha * xb * xb * (QQ + C[b, _So] + n * sig)
            num += alpha * xb * (QR + xb * m_old * QQ - SQ + TT)
        m = num / P
        s = 1.0 / P
        for p in range(ptr[c], ptr[c + 1]):
            b, xb = rows[p], x[p]
            rho = C[b, _Q] - xb * m_old
            d = (m - m_old) * xb
            C[b, _R] -= d * (C[b, _O] + C[b, _N] * rho)
            C[b, _OR] -= d * (C[b, _O2] + rho * C[b, _O])
            C[b, _A] += d * rho
            C[b, _Q] += d
            C[b, _S] += xb * xb * (s - s_old)
            C[b, _T] += xb * xb * xb * (s * m - s_old * m_old)
        mv[l] = m
        sv[l] = s
    # r_i moved by -sum_l d_l (o_i + rho_b): -(A_b + (Q_b - Q_b,0) o_i)
    for i in range(index.size):
        b = index[i]
        dQ = C[b, _Q] - C[b, _Q0]
        r[i] -= C[b, _A] + dQ * (q[i] - C[b, _Q0])
        q[i] += dQ
        s2[i] += C[b, _S] - C[b, _S0]
        t[i] += C[b, _T] - C[b, _T0]
    for b in range(M):
        Q[b], S[b], T[b] = C[b, _Q], C[b, _S], C[b, _T]
