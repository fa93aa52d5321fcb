r"""The per-column loops of a relation block's sweep, compiled with numba.

Chapter "Relation blocks", section "Sweeps on relation blocks",
derives the updates; :mod:`fmlib.solvers.sweeper` states them. For a relation block
with rows :math:`b` and ratings :math:`i` pointing to row :math:`\phi(i)`, one factor
:math:`f` needs five sums per block row,

.. math::

    & n_b = |\{i: \phi(i) = b\}|,\quad O_b = \sum_{\phi(i)=b} o_i, \\
    & O^{(2)}_b = \sum_{\phi(i)=b} o_i^2,\quad E_b = \sum_{\phi(i)=b} e_i, \\
    & (EO)_b = \sum_{\phi(i)=b} e_i o_i, \\
    & o_i = q_{f,i} - Q_{b,f},

and then, column :math:`l` after column :math:`l` with :math:`\rho_b = Q_{b,f} - v_{l,f}
B_{b,l}`,

.. math::

    \sum_i h_i e_i &= \sum_b B_{b,l}\big((EO)_b + \rho_b E_b\big), \\
    \sum_i h_i^2 &= \sum_b B_{b,l}^2\big(O^{(2)}_b + 2\rho_b O_b + \rho_b^2 n_b\big),

the draw :math:`v_{l,f} \leftarrow m + \text{sample}\cdot z/\sqrt{P}` of
:mod:`fmlib.solvers.coordinate`, and with :math:`\delta` its change, for every non-zero
:math:`B_{b,l}`: :math:`E_b \mathrel{-}= \delta B_{b,l}(O_b + \rho_b n_b)`,
:math:`(EO)_b \mathrel{-}= \delta B_{b,l}(O^{(2)}_b + \rho_b O_b)`, :math:`Q_{b,f}
\mathrel{+}= \delta B_{b,l}`. The residuals and :math:`q_{f,i}` of the ratings follow once
at the end.

**Why compiled loops.** Columns that share no block row could be updated together with
numpy, one colour at a time, but the implicit block of MovieLens ("movies this user
rated") needs hundreds of colours, so every factor would cost thousands of small numpy
calls whose overhead, not arithmetic, makes the sweep's time. Here the columns run one
after another in the schedule's order (colour by colour). Within a colour no two columns
share a block row, so the sequential loop gives exactly the colour-at-once result, and
each column reads its own pre-drawn :math:`z`: a sweep still equals the flat sweep with
the same draws. Sums over a column's non-zeros run in increasing block row.

The main block's colours are also run here (:func:`sweep_w_colour`,
:func:`sweep_v_colour`): the same arithmetic as the numpy update of
:class:`fmlib.solvers.coordinate.CoordinateSweeper`, in the same order, without its half-dozen
temporaries of the size of the ratings (at 10^7 ratings, 76 MiB each).

The functions are compiled on first use (about two seconds; numba caches the machine code
next to this file, or in the user's cache directory, when one of them is writable).
"""

from __future__ import annotations

import numba
import numpy as np


def _jit(function):
    """``numba.njit`` with the on-disk cache when a writable cache directory exists;
    numba raises ``RuntimeError`` at decoration when none does (a read-only install
    without a home directory), and then every process compiles anew."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError:
        return numba.njit(function)


@_jit
def draw(theta, h_e, h_sq, alpha, mu, lam, z, sample):
    r"""One parameter from its conditional (:mod:`fmlib.solvers.coordinate`):
    :math:`P = \alpha \sum h^2 + \lambda`, :math:`m = (\alpha(\sum h e + \theta \sum
    h^2) + \lambda\mu) / P`, then :math:`m + z/\sqrt P` if ``sample``; 0 when
    :math:`P \le 0` (an empty column with :math:`\lambda = 0`: libFM sets it to 0), as
    ``CoordinateSweeper._draw``."""
    prec = alpha * h_sq + lam
    if not prec > 0:
        return 0.0
    new = (alpha * (h_e + theta * h_sq) + lam * mu) / prec
    if sample:
        new += z / np.sqrt(prec)
    return new


@_jit
def sweep_w(w, e, index, n_b, cols, indptr, rows, x, alpha, mu, lam, z, sample):
    r"""Every :math:`w_l` of one relation block, in place (:math:`h_i = B_{b,l}`, so
    :math:`\sum_i h_i e_i = \sum_b B_{b,l} E_b` and :math:`\sum_i h_i^2 = \sum_b
    B_{b,l}^2 n_b`).

    Args:
        w: ``(n,)`` all linear weights (updated).
        e: ``(N,)`` residuals of the ratings (updated).
        index: ``(N,)`` block row of every rating.
        n_b: ``(M,)`` ratings per block row (float).
        cols: ``(C,)`` the block's flat columns in the schedule's order.
        indptr, rows, x: column ``cols[c]`` has the non-zeros ``x[p]`` in block rows
            ``rows[p]``, ``indptr[c] <= p < indptr[c + 1]``, rows increasing.
        alpha, mu, lam, z, sample: as in ``CoordinateSweeper.update_w``; ``mu, lam, z``
            of shape ``(n,)``.
    """
    # per block row, side by side: E_b, n_b and the change of its linear term
    S = np.zeros((n_b.size, 3))
    S[:, 1] = n_b
    for i in range(index.size):
        S[index[i], 0] += e[i]
    for c in range(cols.size):
        l = cols[c]
        theta, h_e, h_sq = w[l], 0.0, 0.0
        for p in range(indptr[c], indptr[c + 1]):
            b = rows[p]
            h_e += x[p] * S[b, 0]
            h_sq += x[p] * x[p] * S[b, 1]
        new = draw(theta, h_e, h_sq, alpha, mu[l], lam[l], z[l], sample)
        for p in range(indptr[c], indptr[c + 1]):
            b = rows[p]
            dx = (new - theta) * x[p]
            S[b, 0] -= dx * S[b, 1]
            S[b, 2] += dx
        w[l] = new
    for i in range(index.size):
        e[i] -= S[index[i], 2]


# the per-row sums of sweep_v, side by side in one (M, 8) array: one block row's
# numbers share a cache line, and the ratings' and the columns' loops reach the rows in
# random order (at 10^5 block rows, eight separate arrays no longer fit the caches)
_O, _O2, _E, _EO, _Q, _Q0, _A, _N = range(8)


@_jit
def sweep_v(v, q, e, Q, index, n_b, cols, indptr, rows, x, alpha, mu, lam, z, sample):
    r"""Every :math:`v_{l,f}` of one relation block for one factor :math:`f`, in place
    (module docstring).

    Args:
        v: ``(n,)`` factor :math:`f` of all features (updated).
        q: ``(N,)`` :math:`q_{f,i}` of the ratings (updated).
        e: ``(N,)`` residuals of the ratings (updated).
        Q: ``(M,)`` the block's own part :math:`Q_{b,f}` of every block row (updated).
        index, n_b, cols, indptr, rows, x: as in :func:`sweep_w`.
        alpha, mu, lam, z, sample: the prior and draws of factor :math:`f`, ``(n,)``.
    """
    M = n_b.size
    S = np.zeros((M, 8))  # O, O2, E, EO, Q, Q at the start, a, n of every block row
    for b in range(M):
        S[b, _Q] = Q[b]
        S[b, _Q0] = Q[b]
        S[b, _N] = n_b[b]
    for i in range(index.size):
        b = index[i]
        o = q[i] - S[b, _Q]  # the other blocks' part of q
        S[b, _O] += o
        S[b, _O2] += o * o
        S[b, _E] += e[i]
        S[b, _EO] += e[i] * o
    # e_i moves by -dx (o_i + rho_b) at every change: a_b collects the dx rho_b
    for c in range(cols.size):
        l = cols[c]
        theta, h_e, h_sq = v[l], 0.0, 0.0
        for p in range(indptr[c], indptr[c + 1]):
            b = rows[p]
            O, rho = S[b, _O], S[b, _Q] - theta * x[p]
            h_e += x[p] * (S[b, _EO] + rho * S[b, _E])
            h_sq += x[p] * x[p] * ((S[b, _O2] + rho * O) + rho * (O + rho * S[b, _N]))
        new = draw(theta, h_e, h_sq, alpha, mu[l], lam[l], z[l], sample)
        for p in range(indptr[c], indptr[c + 1]):
            b = rows[p]
            O, rho = S[b, _O], S[b, _Q] - theta * x[p]
            dx = (new - theta) * x[p]
            S[b, _E] -= dx * (O + rho * S[b, _N])
            S[b, _EO] -= dx * (S[b, _O2] + rho * O)
            S[b, _Q] += dx
            S[b, _A] += dx * rho
        v[l] = new
    for i in range(index.size):
        b = index[i]
        dQ = S[b, _Q] - S[b, _Q0]
        e[i] -= S[b, _A] + dQ * (q[i] - S[b, _Q0])
        q[i] += dQ
    for b in range(M):
        Q[b] = S[b, _Q]


@_jit
def sweep_w_colour(w, e, cols, rows, seg, x, x_sq, alpha, mu, lam, z, sample):
    r"""Every :math:`w_l` of one colour of the main block, in place: the update of
    ``CoordinateSweeper._update_w_block`` (:math:`h_i = x_{i,l}`) as loops over the
    colour's non-zeros, with no temporary of the size of the ratings. The sums run in
    the same order as ``numpy.bincount`` there, so the results are the same.

    Args:
        w: ``(n,)`` all linear weights (updated).
        e: ``(N,)`` residuals (updated).
        cols: ``(C,)`` the colour's columns.
        rows, seg, x, x_sq: non-zero ``p`` is ``x[p]`` (``x_sq[p]`` its square) in row
            ``rows[p]`` and column ``cols[seg[p]]``; ``rows`` empty: non-zero ``p`` is in
            row ``p`` (one per row); ``x`` empty: every value is 1.
        alpha, mu, lam, z, sample: as in ``CoordinateSweeper.update_w``, ``(n,)``.
    """
    all_rows, binary = rows.size == 0, x.size == 0
    h_e, h_sq = np.zeros(cols.size), np.zeros(cols.size)
    for p in range(seg.size):
        r = p if all_rows else rows[p]
        c = seg[p]
        if binary:
            h_e[c] += e[r]
            h_sq[c] += 1.0
        else:
            h_e[c] += x[p] * e[r]
            h_sq[c] += x_sq[p]
    change = np.empty(cols.size)
    for c in range(cols.size):
        l = cols[c]
        new = draw(w[l], h_e[c], h_sq[c], alpha, mu[l], lam[l], z[l], sample)
        change[c] = new - w[l]
        w[l] = new
    for p in range(seg.size):
        r = p if all_rows else rows[p]
        e[r] = e[r] - (change[seg[p]] if binary else change[seg[p]] * x[p])


@_jit
def sweep_v_colour(v, q, e, cols, rows, seg, x, x_sq, alpha, mu, lam, z, sample):
    r"""Every :math:`v_{l,f}` of one colour of the main block for one factor, in place:
    ``CoordinateSweeper._update_v_block`` (:math:`h_i = x_{i,l}(q_{f,i} - v_{l,f}
    x_{i,l})`) as loops over the colour's non-zeros, summed in ``numpy.bincount``'s
    order. The rows of a colour are distinct, so every ``q_{f,i}`` and ``e_i`` is read
    before it changes.

    Args:
        v, q, e: ``(n,)`` factor :math:`f` of all features, ``(N,)`` its :math:`q_{f,i}`
            and ``(N,)`` the residuals (all updated).
        cols, rows, seg, x, x_sq: as in :func:`sweep_w_colour`.
        alpha, mu, lam, z, sample: the prior and draws of factor :math:`f`, ``(n,)``.
    """
    all_rows, binary = rows.size == 0, x.size == 0
    theta = np.empty(cols.size)
    for c in range(cols.size):
        theta[c] = v[cols[c]]
    h_e, h_sq = np.zeros(cols.size), np.zeros(cols.size)
    for p in range(seg.size):
        r = p if all_rows else rows[p]
        c = seg[p]
        if binary:
            h = q[r] - theta[c]
        else:
            h = x[p] * q[r] - theta[c] * x_sq[p]
        h_e[c] += h * e[r]
        h_sq[c] += h * h
    change = np.empty(cols.size)
    for c in range(cols.size):
        l = cols[c]
        new = draw(theta[c], h_e[c], h_sq[c], alpha, mu[l], lam[l], z[l], sample)
        change[c] = new - theta[c]
        v[l] = new
    for p in range(seg.size):
        r = p if all_rows else rows[p]
        c = seg[p]
        if binary:
            h = q[r] - theta[c]
            q_new = q[r] + change[c]
        else:
            h = x[p] * q[r] - theta[c] * x_sq[p]
            q_new = q[r] + change[c] * x[p]
        e[r] = e[r] - change[c] * h
        q[r] = q_new


@_jit
def csr_matvec(out, indptr, indices, data, v):
    r"""``out = B @ v`` for a CSR matrix ``B`` (``indptr, indices, data``), in place:
    for one factor, :math:`q_{f,i} = \sum_l x_{i,l} v_{l,f}` of the main block's rows,
    or :math:`Q_{b,f}` of a relation block's."""
    for i in range(out.size):
        total = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            total += data[p] * v[indices[p]]
        out[i] = total


@_jit
def add_row_terms(out, indptr, indices, data, w, v_sq):
    r""":math:`u_b \mathrel{+}= \sum_l B_{b,l}\big(w_l - \tfrac12 B_{b,l} \lVert
    \mathbf v_l \rVert^2\big) = \ell_b - \tfrac12 \sum_f s_{b,f}` for every row of a
    CSR block: the parts of :math:`\hat y` that need no other block (``v_sq`` holds
    :math:`\lVert \mathbf v_l \rVert^2` of the block's columns)."""
    for b in range(out.size):
        total = 0.0
        for p in range(indptr[b], indptr[b + 1]):
            l = indices[p]
            total += data[p] * (w[l] - 0.5 * data[p] * v_sq[l])
        out[b] += total


@_jit
def add_gathered(target, values, index):
    r""":math:`t_i \mathrel{+}= u_{\phi(i)}`: one relation block's per-row values
    (its :math:`Q_{b,f}` of one factor, or its terms of :math:`\hat y`) added to every
    rating through its block index."""
    for i in range(index.size):
        target[i] += values[index[i]]


@_jit
def add_half_square(y_hat, q):
    r""":math:`\hat y_i \mathrel{+}= \tfrac12 q_{f,i}^2`: one factor's share of
    :math:`\tfrac12 \sum_f (\sum_r q_{r,f})^2` in Lemma 3.1 by blocks."""
    for i in range(q.size):
        y_hat[i] += 0.5 * q[i] * q[i]


@_jit
def colour_entries(indptr, indices, data, position):
    r"""The non-zeros of one colour of the main block, in row order, read from its CSR
    arrays (no column-major copy of the block).

    Args:
        indptr, indices, data: the main block, CSR.
        position: ``(n0,)`` the place of every column in the colour's ``cols``, -1 for
            columns outside it.

    Returns:
        ``(rows, seg, x, one_per_row, binary)``: non-zero ``p`` is ``x[p]`` in row
        ``rows[p]`` and column ``cols[seg[p]]``; ``one_per_row`` when every row has
        exactly one (``rows`` is then left empty: it would be ``0 .. N-1``),
        ``binary`` when every value is 1 (``x`` is then left empty).
    """
    N = indptr.size - 1
    count, one_per_row, binary = 0, True, True
    for i in range(N):
        hits = 0
        for p in range(indptr[i], indptr[i + 1]):
            if position[indices[p]] >= 0:
                hits += 1
                binary = binary and data[p] == 1.0
        count += hits
        one_per_row = one_per_row and hits == 1
    rows = np.empty(0 if one_per_row else count, np.int64)
    seg = np.empty(count, np.int32)
    x = np.empty(0 if binary else count)
    c = 0
    for i in range(N):
        for p in range(indptr[i], indptr[i + 1]):
            s = position[indices[p]]
            if s >= 0:
                if not one_per_row:
                    rows[c] = i
                seg[c] = s
                if not binary:
                    x[c] = data[p]
                c += 1
    return rows, seg, x, one_per_row, binary
