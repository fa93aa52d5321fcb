r"""Factorization models as Factorization Machines: feature vectors and parameter maps.

Rendle (2010), Sec. V, shows that the FM of eq. (1),

.. math::

    \hat y(\mathbf x) = w_0 + \sum_i w_i x_i + \sum_{i<j} \langle \mathbf v_i, \mathbf v_j
    \rangle x_i x_j,

*is* a known factorization model once ``x`` is built the right way. This module builds
those feature vectors and maps each model's parameters to FM weights ``{"w0", "w", "V"}``
(pass them to :meth:`fmlib.FactorizationMachine.set_weights`), so that the claim can be
checked number by number. The chapter "The paper's claims, reproduced" derives each case.

* Biased matrix factorisation (eq. :math:`\mu + b_u + b_i + \langle p_u, q_i\rangle`):
  ``x = [one-hot(u), one-hot(i)]``; exact in both directions (:func:`fmlib.fm_from_mf`,
  :func:`fmlib.mf_from_fm`).
* SVD++ (Koren 2008): ``x = [one-hot(u), one-hot(i), N_u / sqrt(|N_u|)]``. The FM is
  SVD++ plus the extra terms the paper lists (:func:`fmlib.svdpp_extra_terms`); they depend on
  the user only, so folding them into :math:`w_u` makes the FM equal SVD++ exactly.
* PITF (Rendle & Schmidt-Thieme 2010), tags for a post (u, i): ``x = [one-hot(u),
  one-hot(i), one-hot(t)]``. With ``2k`` factors in two blocks the FM equals PITF exactly
  (:func:`fmlib.fm_from_pitf`).
* FPMC (Rendle et al. 2010), the next basket: ``x = [one-hot(u), one-hot(i),
  B_{t-1} / |B_{t-1}|]``. With ``2k`` factors the FM equals FPMC plus one term that does
  not depend on the candidate item (:func:`fmlib.fpmc_extra_terms`), so rankings are equal.

Every feature matrix is a ``scipy.sparse`` CSR matrix with the blocks in the order above.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fmlib.validation import check_int


# --- checks ---------------------------------------------------------------------------------
def _ids(values: Any, size: int, name: str, n_rows: int | None = None) -> np.ndarray:
    """``values`` as a 1-D int64 array of ids in ``0 .. size-1``, or an error naming ``name``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D (one id per row); got shape {arr.shape}."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integer ids; got dtype {arr.dtype}.")
    if n_rows is not None and arr.size != n_rows:
        raise ValueError(
            f"`{name}` must have {n_rows} entries (one per row); got {arr.size}."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise ValueError(
            f"`{name}` must hold ids in 0..{size - 1}; got values in "
            f"{arr.min()}..{arr.max()}."
        )
    return arr.astype(np.int64)


def _array(values: Any, shape: tuple, name: str) -> np.ndarray:
    """``values`` as a finite float64 array of ``shape`` (``None`` entries: any length)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be numeric; got dtype {arr.dtype}.")
    if arr.ndim != len(shape) or any(
        s is not None and a != s for a, s in zip(arr.shape, shape)
    ):
        want = tuple("any" if s is None else s for s in shape)
        raise ValueError(f"`{name}` must have shape {want}; got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; it holds NaN or infinite values.")
    return arr.astype(np.float64)


def _sets(S: Any, n_rows: int, width: int, name: str) -> sp.csr_matrix:
    """A 0/1 ``scipy.sparse`` matrix (one set of item ids per row) as checked CSR."""
    if not sp.issparse(S):
        raise TypeError(
            f"`{name}` must be a scipy.sparse 0/1 matrix (one row per set); "
            f"got {type(S).__name__}."
        )
    if S.shape != (n_rows, width):
        raise ValueError(f"`{name}` must have shape {(n_rows, width)}; got {S.shape}.")
    S = sp.csr_matrix(S, dtype=np.float64, copy=True)
    S.sum_duplicates()
    S.eliminate_zeros()
    if S.nnz and not np.all(S.data == 1.0):
        raise ValueError(
            f"`{name}` must be a 0/1 indicator matrix; it holds other values."
        )
    return S


def _factors(
    mats: dict[str, Any], k: int | None = None
) -> tuple[list[np.ndarray], int]:
    """Check 2-D factor matrices that share one number of columns ``k``."""
    out = []
    for name, M in mats.items():
        arr = _array(M, (None, k), name)
        k = arr.shape[1] if k is None else k
        out.append(arr)
    return out, k


# --- building feature vectors ---------------------------------------------------------------
def _one_hot(ids: np.ndarray, width: int) -> sp.csr_matrix:
    rows = np.arange(ids.size)
    return sp.csr_matrix((np.ones(ids.size), (rows, ids)), shape=(ids.size, width))


def _normalised(S: sp.csr_matrix, power: float) -> sp.csr_matrix:
    """Each row of the 0/1 matrix ``S`` divided by (its number of ones) ** ``power``."""
    size = np.asarray(S.sum(axis=1)).ravel()
    scale = np.zeros_like(size)
    np.power(size, -power, out=scale, where=size > 0)
    return sp.csr_matrix(sp.diags(scale) @ S)


def mf_features(users, items, n_users: int, n_items: int) -> sp.csr_matrix:
    r"""``x = [one-hot(u), one-hot(i)]``: the FM on these rows is biased MF (Rendle 2010, Sec. V-A).

    Returns a CSR matrix of shape ``(N, n_users + n_items)``.
    """
    n_users, n_items = check_int(n_users, "n_users"), check_int(n_items, "n_items")
    u = _ids(users, n_users, "users")
    i = _ids(items, n_items, "items", u.size)
    return sp.hstack([_one_hot(u, n_users), _one_hot(i, n_items)], format="csr")


def svdpp_features(users, items, implicit, n_users: int, n_items: int) -> sp.csr_matrix:
    r"""``x = [one-hot(u), one-hot(i), N_u / sqrt(|N_u|)]`` (Rendle 2010, Sec. V-B).

    Args:
        users, items: one user id and one item id per row.
        implicit: a ``scipy.sparse`` 0/1 matrix of shape ``(n_users, n_items)``: row ``u``
            marks :math:`N_u`, the items user ``u`` has rated (or otherwise touched). A user
            with an empty :math:`N_u` gets an all-zero third block.

    Returns a CSR matrix of shape ``(N, n_users + 2 n_items)``.
    """
    X = mf_features(users, items, n_users, n_items)
    N = _normalised(_sets(implicit, n_users, n_items, "implicit"), 0.5)
    return sp.hstack([X, N[_ids(users, n_users, "users")]], format="csr")


def pitf_features(
    users, items, tags, n_users: int, n_items: int, n_tags: int
) -> sp.csr_matrix:
    r"""``x = [one-hot(u), one-hot(i), one-hot(t)]`` for tag ``t`` on post ``(u, i)`` (Sec. V-C).

    Returns a CSR matrix of shape ``(N, n_users + n_items + n_tags)``.
    """
    X = mf_features(users, items, n_users, n_items)
    n_tags = check_int(n_tags, "n_tags")
    t = _ids(tags, n_tags, "tags", X.shape[0])
    return sp.hstack([X, _one_hot(t, n_tags)], format="csr")


def fpmc_features(
    users, items, prev_baskets, n_users: int, n_items: int
) -> sp.csr_matrix:
    r"""``x = [one-hot(u), one-hot(i), B_{t-1} / |B_{t-1}|]``: item ``i`` as the next purchase
    of user ``u`` after basket :math:`B_{t-1}` (Rendle 2010, Sec. V-D).

    Args:
        prev_baskets: a ``scipy.sparse`` 0/1 matrix of shape ``(N, n_items)``, one row per
            example: the items of the user's previous basket.

    Returns a CSR matrix of shape ``(N, n_users + 2 n_items)``.
    """
    X = mf_features(users, items, n_users, n_items)
    B = _normalised(_sets(prev_baskets, X.shape[0], n_items, "prev_baskets"), 1.0)
    return sp.hstack([X, B], format="csr")


# --- biased matrix factorisation ------------------------------------------------------------
def fm_from_mf(mu: float, b_user, b_item, P, Q) -> dict[str, np.ndarray]:
    r"""FM weights that predict exactly what biased MF predicts on :func:`fmlib.mf_features` rows.

    .. math::

        & \hat y_{ui} = \mu + b_u + b_i + \langle \mathbf p_u, \mathbf q_i\rangle
        \quad\Longrightarrow \\
        & w_0 = \mu,\ \mathbf w = [\mathbf b_U, \mathbf b_I],\ \mathbf V = [\mathbf P; \mathbf Q].

    Args:
        mu: the global mean. b_user, b_item: biases ``(n_users,)``, ``(n_items,)``.
        P, Q: user and item factors ``(n_users, k)``, ``(n_items, k)``.
    """
    b_user = _array(b_user, (None,), "b_user")
    b_item = _array(b_item, (None,), "b_item")
    P = _array(P, (b_user.size, None), "P")
    Q = _array(Q, (b_item.size, P.shape[1]), "Q")
    return {
        "w0": _array(mu, (), "mu"),
        "w": np.concatenate([b_user, b_item]),
        "V": np.concatenate([P, Q]),
    }


def mf_from_fm(w0, w, V, n_users: int) -> dict[str, np.ndarray]:
    r"""The biased MF that an FM on :func:`fmlib.mf_features` rows is: the inverse of :func:`fmlib.fm_from_mf`.

    Returns ``{"mu", "b_user", "b_item", "P", "Q"}``; the FM's first ``n_users`` columns
    are the users, the rest the items.
    """
    n_users = check_int(n_users, "n_users")
    V = _array(V, (None, None), "V")
    w = _array(w, (V.shape[0],), "w")
    if not n_users < w.size:
        raise ValueError(
            f"`n_users` must be smaller than the number of features {w.size} "
            f"(the items follow the users); got {n_users}."
        )
    return {
        "mu": _array(w0, (), "w0"),
        "b_user": w[:n_users],
        "b_item": w[n_users:],
        "P": V[:n_users],
        "Q": V[n_users:],
    }


# --- SVD++ ----------------------------------------------------------------------------------
def svdpp_extra_terms(P, Y, implicit) -> np.ndarray:
    r"""Per user, what the FM of :func:`fmlib.fm_from_svdpp` adds to SVD++ (Rendle 2010, Sec. V-B).

    With :math:`w_l = 0` for the implicit block the extra terms of the paper are

    .. math::

        e_u &= \frac{1}{\sqrt{|N_u|}} \sum_{l \in N_u} \langle \mathbf p_u, \mathbf y_l\rangle \\
        &\quad + \frac{1}{|N_u|} \sum_{l \in N_u} \sum_{l' \in N_u, l' > l}
        \langle \mathbf y_l, \mathbf y_{l'}\rangle,

    computed as :math:`\langle \mathbf p_u, \mathbf s_u\rangle / \sqrt{|N_u|}
    + (\lVert \mathbf s_u\rVert^2 - \sum_{l} \lVert \mathbf y_l \rVert^2) / (2 |N_u|)` with
    :math:`\mathbf s_u = \sum_{l \in N_u} \mathbf y_l`. Shape ``(n_users,)``; 0 for a user
    with an empty :math:`N_u`.
    """
    (P, Y), _ = _factors({"P": P, "Y": Y})
    N = _sets(implicit, P.shape[0], Y.shape[0], "implicit")
    size = np.asarray(N.sum(axis=1)).ravel()
    s = N @ Y
    sq = N @ (Y**2).sum(axis=1)
    safe = np.maximum(size, 1.0)
    return np.where(
        size > 0,
        (P * s).sum(1) / np.sqrt(safe) + ((s**2).sum(1) - sq) / (2 * safe),
        0.0,
    )


def fm_from_svdpp(
    mu: float, b_user, b_item, P, Q, Y, implicit=None, fold_extra_terms: bool = False
) -> dict[str, np.ndarray]:
    r"""FM weights for :func:`fmlib.svdpp_features` rows from the parameters of SVD++ (Koren 2008),

    .. math::

        \hat y_{ui} &= \mu + b_u + b_i \\
        &\quad + \Big\langle \mathbf q_i,\ \mathbf p_u
        + |N_u|^{-1/2} \sum_{l \in N_u} \mathbf y_l \Big\rangle .

    The map of the paper: :math:`w_0 = \mu`, :math:`\mathbf w = [\mathbf b_U, \mathbf b_I,
    \mathbf 0]`, :math:`\mathbf V = [\mathbf P; \mathbf Q; \mathbf Y]`. The FM then
    predicts SVD++ plus :func:`fmlib.svdpp_extra_terms` :math:`e_u`. These depend on the user
    only, so ``fold_extra_terms=True`` (needs ``implicit``) sets :math:`w_u = b_u - e_u`
    and the FM predicts SVD++ exactly.

    Args:
        Y: implicit-item factors ``(n_items, k)``.
        implicit: the 0/1 matrix of :math:`N_u` given to :func:`fmlib.svdpp_features`.
    """
    weights = fm_from_mf(mu, b_user, b_item, P, Q)
    (Y,), _ = _factors({"Y": Y}, weights["V"].shape[1])
    n_users, n_items = np.asarray(b_user).size, np.asarray(b_item).size
    _array(Y, (n_items, None), "Y")
    w = np.concatenate([weights["w"], np.zeros(n_items)])
    if fold_extra_terms:
        if implicit is None:
            raise ValueError("`fold_extra_terms=True` needs `implicit` (the sets N_u).")
        w[:n_users] -= svdpp_extra_terms(P, Y, implicit)
    return {"w0": weights["w0"], "w": w, "V": np.concatenate([weights["V"], Y])}


# --- PITF -----------------------------------------------------------------------------------
def fm_from_pitf(U, I, T_user, T_item) -> dict[str, np.ndarray]:
    r"""FM weights (``2k`` factors) for :func:`fmlib.pitf_features` rows that predict PITF exactly.

    PITF (Rendle & Schmidt-Thieme 2010) scores tag ``t`` for post ``(u, i)`` as

    .. math::

        \hat y_{u,i,t} = \langle \mathbf u_u, \mathbf t^U_t\rangle
            + \langle \mathbf i_i, \mathbf t^I_t\rangle .

    The FM has the same two interactions plus :math:`\langle \mathbf v_u, \mathbf v_i\rangle`
    and biases; with :math:`\mathbf v_u = [\mathbf u_u, \mathbf 0]`,
    :math:`\mathbf v_i = [\mathbf 0, \mathbf i_i]`, :math:`\mathbf v_t = [\mathbf t^U_t,
    \mathbf t^I_t]` and zero biases, :math:`\langle \mathbf v_u, \mathbf v_i\rangle = 0` and
    the FM is PITF. (The paper's FM with ``k`` shared factors is PITF with
    :math:`\mathbf t^U = \mathbf t^I` plus a tag bias, for ranking tags of a post.)

    Args:
        U, I: user and item factors ``(n_users, k)``, ``(n_items, k)``.
        T_user, T_item: the tags' factors for the user and for the item interaction,
            ``(n_tags, k)`` each.
    """
    (U, I, T_user, T_item), k = _factors(
        {"U": U, "I": I, "T_user": T_user, "T_item": T_item}
    )
    _array(T_item, (T_user.shape[0], k), "T_item")
    zu, zi = np.zeros_like(U), np.zeros_like(I)
    V = np.concatenate(
        [np.hstack([U, zu]), np.hstack([zi, I]), np.hstack([T_user, T_item])]
    )
    return {"w0": np.float64(0.0), "w": np.zeros(V.shape[0]), "V": V}


# --- FPMC -----------------------------------------------------------------------------------
def fm_from_fpmc(V_UI, V_IU, V_IL, V_LI) -> dict[str, np.ndarray]:
    r"""FM weights (``2k`` factors) for :func:`fmlib.fpmc_features` rows from FPMC's factors.

    FPMC (Rendle, Freudenthaler & Schmidt-Thieme 2010) scores item ``i`` for user ``u``
    after basket :math:`B = B_{t-1}` as

    .. math::

        \hat y_{u,i,B} = \langle \mathbf v^{U,I}_u, \mathbf v^{I,U}_i\rangle
            + \frac{1}{|B|} \sum_{l \in B} \langle \mathbf v^{I,L}_i, \mathbf v^{L,I}_l\rangle .

    With :math:`\mathbf v_u = [\mathbf v^{U,I}_u, \mathbf 0]`, :math:`\mathbf v_i =
    [\mathbf v^{I,U}_i, \mathbf v^{I,L}_i]`, :math:`\mathbf v_l = [\mathbf 0,
    \mathbf v^{L,I}_l]` and zero biases the FM predicts FPMC plus
    :func:`fmlib.fpmc_extra_terms`, which does not depend on ``i``: the ranking of candidate items
    is FPMC's.

    Args:
        V_UI: ``(n_users, k)``; V_IU, V_IL, V_LI: ``(n_items, k)`` each.
    """
    (V_UI, V_IU, V_IL, V_LI), k = _factors(
        {"V_UI": V_UI, "V_IU": V_IU, "V_IL": V_IL, "V_LI": V_LI}
    )
    n_items = V_IU.shape[0]
    for name, M in (("V_IL", V_IL), ("V_LI", V_LI)):
        _array(M, (n_items, k), name)
    z_u, z_i = np.zeros_like(V_UI), np.zeros_like(V_IU)
    V = np.concatenate(
        [np.hstack([V_UI, z_u]), np.hstack([V_IU, V_IL]), np.hstack([z_i, V_LI])]
    )
    return {"w0": np.float64(0.0), "w": np.zeros(V.shape[0]), "V": V}


def fpmc_extra_terms(V_LI, prev_baskets) -> np.ndarray:
    r"""Per row, what the FM of :func:`fmlib.fm_from_fpmc` adds to FPMC: the basket items' own
    interactions,

    .. math::

        e_B = \frac{1}{|B|^2} \sum_{l \in B} \sum_{l' \in B, l' > l}
            \langle \mathbf v^{L,I}_l, \mathbf v^{L,I}_{l'}\rangle,

    the same for every candidate item. Shape ``(N,)``; 0 for an empty basket.
    """
    (V_LI,), _ = _factors({"V_LI": V_LI})
    if not sp.issparse(prev_baskets):
        raise TypeError(
            "`prev_baskets` must be a scipy.sparse 0/1 matrix; "
            f"got {type(prev_baskets).__name__}."
        )
    B = _sets(prev_baskets, prev_baskets.shape[0], V_LI.shape[0], "prev_baskets")
    size = np.asarray(B.sum(axis=1)).ravel()
    s = B @ V_LI
    half = 0.5 * ((s**2).sum(1) - B @ (V_LI**2).sum(axis=1))
    return np.where(size > 0, half / np.maximum(size, 1.0) ** 2, 0.0)
