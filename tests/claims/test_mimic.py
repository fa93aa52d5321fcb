"""fmlib.claims.mimic: the FM on the right features *is* biased MF, SVD++, PITF and FPMC.

Every reference below is the other model's own equation, written as a plain loop over rows
(Koren 2008 for SVD++, Rendle & Schmidt-Thieme 2010 for PITF, Rendle et al. 2010 for FPMC),
and the FM side is fmlib.FactorizationMachine in float64 (or reference.fm_loop, eq. 1).
"""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_loop

import fmlib
from fmlib.claims import mimic

NU, NI, NT, K = 5, 7, 4, 3


def _fm(weights):
    fm = fmlib.FactorizationMachine(
        weights["w"].size, weights["V"].shape[1], dtype=tf.float64
    )
    fm.set_weights(**weights)
    return fm


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def sets(rng):
    """N_u for every user: random sets, user 0 with none at all."""
    N = (rng.random((NU, NI)) < 0.5).astype(float)
    N[0] = 0.0
    N[1, :3] = 1.0
    return sp.csr_matrix(N)


def test_feature_blocks_match_hand_built_vectors(rng, sets):
    u, i, t = np.array([0, 1, 4, 1]), np.array([6, 0, 3, 3]), np.array([2, 0, 3, 1])
    B = sp.csr_matrix(
        np.array(
            [
                [1, 1, 0, 0, 0, 0, 1],
                [0] * 7,
                [0, 0, 0, 0, 1, 0, 0],
                [1, 0, 1, 0, 1, 0, 1],
            ],
            float,
        )
    )
    mf, svdpp = np.zeros((4, NU + NI)), np.zeros((4, NU + 2 * NI))
    pitf, fpmc = np.zeros((4, NU + NI + NT)), np.zeros((4, NU + 2 * NI))
    for r in range(4):
        for M in (mf, svdpp, pitf, fpmc):
            M[r, u[r]] = 1.0
            M[r, NU + i[r]] = 1.0
        pitf[r, NU + NI + t[r]] = 1.0
        implicit = sets[u[r]].indices
        for l in implicit:
            svdpp[r, NU + NI + l] = 1.0 / np.sqrt(len(implicit))
        basket = B[r].indices
        for l in basket:
            fpmc[r, NU + NI + l] = 1.0 / len(basket)
    np.testing.assert_array_equal(mimic.mf_features(u, i, NU, NI).toarray(), mf)
    np.testing.assert_allclose(
        mimic.svdpp_features(u, i, sets, NU, NI).toarray(), svdpp, rtol=1e-15
    )
    np.testing.assert_array_equal(
        mimic.pitf_features(u, i, t, NU, NI, NT).toarray(), pitf
    )
    np.testing.assert_allclose(
        mimic.fpmc_features(u, i, B, NU, NI).toarray(), fpmc, rtol=1e-15
    )


def test_biased_mf_and_fm_are_one_model_in_both_directions(rng):
    mu, bu, bi = 3.6, rng.normal(size=NU), rng.normal(size=NI)
    P, Q = rng.normal(size=(NU, K)), rng.normal(size=(NI, K))
    u, i = rng.integers(0, NU, 30), rng.integers(0, NI, 30)
    X = mimic.mf_features(u, i, NU, NI)
    mf = np.array([mu + bu[a] + bi[b] + P[a] @ Q[b] for a, b in zip(u, i)])
    np.testing.assert_allclose(
        _fm(mimic.fm_from_mf(mu, bu, bi, P, Q)).predict(X), mf, rtol=1e-12
    )
    # reverse: any FM on these rows is a biased MF
    w0, w, V = 0.3, rng.normal(size=NU + NI), rng.normal(size=(NU + NI, K))
    back = mimic.mf_from_fm(w0, w, V, NU)
    mf_back = np.array(
        [
            back["mu"]
            + back["b_user"][a]
            + back["b_item"][b]
            + back["P"][a] @ back["Q"][b]
            for a, b in zip(u, i)
        ]
    )
    np.testing.assert_allclose(mf_back, fm_loop(X.toarray(), w0, w, V), rtol=1e-12)


def _svdpp_loop(mu, bu, bi, P, Q, Y, N, u, i):
    """Koren (2008): mu + b_u + b_i + q_i' (p_u + |N_u|^-1/2 sum_{l in N_u} y_l)."""
    out = []
    for a, b in zip(u, i):
        implicit = N[a].indices
        z = P[a] + (
            sum(Y[l] for l in implicit) / np.sqrt(len(implicit)) if len(implicit) else 0
        )
        out.append(mu + bu[a] + bi[b] + Q[b] @ z)
    return np.array(out)


def _svdpp_extras_loop(P, Y, N, u):
    """The paper's extra terms (Sec. V-B) with w_l = 0, by a double loop over l < l'."""
    out = []
    for a in u:
        implicit = sorted(N[a].indices)
        m = len(implicit)
        e = sum(P[a] @ Y[l] for l in implicit) / np.sqrt(m) if m else 0.0
        for x, l in enumerate(implicit):
            for l2 in implicit[x + 1 :]:
                e += Y[l] @ Y[l2] / m
        out.append(e)
    return np.array(out)


def test_fm_on_svdpp_features_is_svdpp_plus_the_papers_extra_terms(rng, sets):
    mu, bu, bi = 3.2, rng.normal(size=NU), rng.normal(size=NI)
    P, Q, Y = (
        rng.normal(size=(NU, K)),
        rng.normal(size=(NI, K)),
        rng.normal(size=(NI, K)),
    )
    u, i = np.r_[0, 1, rng.integers(0, NU, 30)], rng.integers(0, NI, 32)
    X = mimic.svdpp_features(u, i, sets, NU, NI)
    svdpp = _svdpp_loop(mu, bu, bi, P, Q, Y, sets, u, i)
    extras = _svdpp_extras_loop(P, Y, sets, u)
    assert np.abs(extras).min() == 0.0 and np.abs(extras).max() > 0.5  # user 0: no N_u
    fm = _fm(mimic.fm_from_svdpp(mu, bu, bi, P, Q, Y))
    np.testing.assert_allclose(fm.predict(X), svdpp + extras, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        mimic.svdpp_extra_terms(P, Y, sets)[u], extras, atol=1e-12
    )
    exact = _fm(mimic.fm_from_svdpp(mu, bu, bi, P, Q, Y, sets, fold_extra_terms=True))
    np.testing.assert_allclose(exact.predict(X), svdpp, rtol=1e-12, atol=1e-12)


def test_fm_with_two_factor_blocks_is_pitf(rng):
    U, I = rng.normal(size=(NU, K)), rng.normal(size=(NI, K))
    TU, TI = rng.normal(size=(NT, K)), rng.normal(size=(NT, K))
    u, i, t = rng.integers(0, NU, 40), rng.integers(0, NI, 40), rng.integers(0, NT, 40)
    pitf = np.array([U[a] @ TU[c] + I[b] @ TI[c] for a, b, c in zip(u, i, t)])
    weights = mimic.fm_from_pitf(U, I, TU, TI)
    assert weights["V"].shape == (NU + NI + NT, 2 * K)
    X = mimic.pitf_features(u, i, t, NU, NI, NT)
    np.testing.assert_allclose(_fm(weights).predict(X), pitf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        fm_loop(X.toarray(), **weights), pitf, rtol=1e-12, atol=1e-12
    )


def test_fm_is_fpmc_plus_a_term_that_leaves_the_ranking_of_items_unchanged(rng):
    VUI, VIU = rng.normal(size=(NU, K)), rng.normal(size=(NI, K))
    VIL, VLI = rng.normal(size=(NI, K)), rng.normal(size=(NI, K))
    n = 12
    u = rng.integers(0, NU, n)
    B = (rng.random((n, NI)) < 0.4).astype(float)
    B[0] = 0.0
    B[1, :4] = 1.0
    B = sp.csr_matrix(B)
    fm = _fm(mimic.fm_from_fpmc(VUI, VIU, VIL, VLI))
    for r in range(n):  # every candidate item for the context (u, B_{t-1})
        basket = B[r].indices
        items = np.arange(NI)
        fpmc = np.array(
            [
                VUI[u[r]] @ VIU[i]
                + (
                    sum(VIL[i] @ VLI[l] for l in basket) / len(basket)
                    if len(basket)
                    else 0.0
                )
                for i in items
            ]
        )
        extra = sum(
            VLI[l] @ VLI[l2] for x, l in enumerate(basket) for l2 in basket[x + 1 :]
        )
        extra = extra / len(basket) ** 2 if len(basket) else 0.0
        Xr = mimic.fpmc_features(
            np.full(NI, u[r]), items, sp.vstack([B[r]] * NI), NU, NI
        )
        y_fm = fm.predict(Xr)
        np.testing.assert_allclose(y_fm, fpmc + extra, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.argsort(y_fm), np.argsort(fpmc))
        np.testing.assert_allclose(
            mimic.fpmc_extra_terms(VLI, B[r]), [extra], atol=1e-12
        )


def test_bad_inputs_name_the_argument(rng, sets):
    with pytest.raises(
        ValueError, match=r"`items` must hold ids in 0..6; got values in 0..7"
    ):
        mimic.mf_features([0, 1], [0, 7], NU, NI)
    with pytest.raises(TypeError, match="`users` must hold integer ids"):
        mimic.mf_features([0.5, 1.0], [0, 1], NU, NI)
    with pytest.raises(ValueError, match="`tags` must have 2 entries"):
        mimic.pitf_features([0, 1], [0, 1], [0], NU, NI, NT)
    with pytest.raises(TypeError, match="`implicit` must be a scipy.sparse"):
        mimic.svdpp_features([0], [0], sets.toarray(), NU, NI)
    with pytest.raises(ValueError, match="`implicit` must be a 0/1 indicator"):
        mimic.svdpp_features([0], [0], 2 * sets, NU, NI)
    with pytest.raises(ValueError, match=r"`Q` must have shape \(7, 3\); got \(7, 2\)"):
        mimic.fm_from_mf(
            0.0, np.zeros(NU), np.zeros(NI), np.zeros((NU, 3)), np.zeros((NI, 2))
        )
    with pytest.raises(ValueError, match="`fold_extra_terms=True` needs `implicit`"):
        z = np.zeros((NI, K))
        mimic.fm_from_svdpp(
            0.0,
            np.zeros(NU),
            np.zeros(NI),
            np.zeros((NU, K)),
            z,
            z,
            fold_extra_terms=True,
        )
    with pytest.raises(ValueError, match="`n_users` must be smaller"):
        mimic.mf_from_fm(0.0, np.zeros(4), np.zeros((4, 2)), 4)
    with pytest.raises(ValueError, match="`b_user` must be finite"):
        mimic.fm_from_mf(0.0, [np.nan], [0.0], [[0.0]], [[0.0]])
