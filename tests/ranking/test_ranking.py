"""fmlib.ranking: metrics against hand values and loops, the split, catalogue scoring against
per-pair model calls, the BPR objective and one SGD step against numpy, negative sampling."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_gradient, fm_loop

import fmlib
from fmlib import ranking
from fmlib.ranking import NegativeSampler

# --- metrics -------------------------------------------------------------------------------------
HAND_SCORES = np.array([[0.9, 0.1, 0.5, 0.3, 0.7], [0.2, 0.8, 0.8, 0.1, 0.5]])
HAND_TARGETS = np.array([2, 1])
HAND_EXCLUDE = [[], [4]]


def test_metrics_match_hand_computed_values():
    # row 0: 0.9 and 0.7 beat 0.5 -> rank 3; 2 of 4 others below -> AUC 1/2.
    # row 1: item 4 excluded; item 2 ties the target (counted against it) -> rank 2;
    #        2 below, 1 tie among 3 others -> AUC (2 + 1/2) / 3.
    m = ranking.ranking_metrics(HAND_SCORES, HAND_TARGETS, HAND_EXCLUDE, k=3)
    assert m["hr@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(3)) / 2)
    assert m["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m["auc"] == pytest.approx((0.5 + 2.5 / 3) / 2)
    m2 = ranking.ranking_metrics(HAND_SCORES, HAND_TARGETS, HAND_EXCLUDE, k=2)
    assert m2["hr@2"] == pytest.approx(0.5)
    assert m2["ndcg@2"] == pytest.approx(1 / math.log2(3) / 2)
    counts = ranking.rank_counts(HAND_SCORES, HAND_TARGETS, HAND_EXCLUDE)
    np.testing.assert_array_equal(counts["rank"], [3, 2])
    np.testing.assert_array_equal(counts["n_candidates"], [5, 4])


def loop_metrics(scores, targets, excluded, k):
    """The definitions, one user and one item at a time."""
    hr, ndcg, mrr, auc = [], [], [], []
    for s, t, ex in zip(scores, targets, excluded):
        others = [j for j in range(len(s)) if j != t and not ex[j]]
        rank = 1 + sum(1 for j in others if s[j] >= s[t])
        hr.append(float(rank <= k))
        ndcg.append(1 / math.log2(rank + 1) if rank <= k else 0.0)
        mrr.append(1 / rank)
        auc.append(
            sum(1.0 if s[j] < s[t] else 0.5 if s[j] == s[t] else 0.0 for j in others)
            / len(others)
        )
    return {
        f"hr@{k}": np.mean(hr),
        f"ndcg@{k}": np.mean(ndcg),
        "mrr": np.mean(mrr),
        "auc": np.mean(auc),
    }


@pytest.mark.parametrize("k", [1, 5, 20])
def test_full_ranking_metrics_match_a_loop_over_items_with_ties(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 15, size=(40, 60)).astype(float)  # many ties
    targets = rng.integers(0, 60, size=40)
    excluded = rng.random((40, 60)) < 0.3
    excluded[np.arange(40), targets] = False
    got = ranking.ranking_metrics(scores, targets, excluded, k=k)
    want = loop_metrics(scores, targets, excluded, k)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_exclusion_forms_agree_and_a_sparse_matrix_works():
    rng = np.random.default_rng(3)
    mask = rng.random((6, 9)) < 0.4
    lists = [np.flatnonzero(row).tolist() for row in mask]
    np.testing.assert_array_equal(ranking.exclusion_mask(lists, mask.shape), mask)
    np.testing.assert_array_equal(
        ranking.exclusion_mask(sp.csr_matrix(mask), mask.shape), mask
    )
    np.testing.assert_array_equal(
        ranking.exclusion_mask(mask.astype(int), mask.shape), mask
    )


def test_sampled_metrics_rank_among_the_drawn_candidates_only():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(30, 200))
    targets = rng.integers(0, 200, size=30)
    excluded = rng.random((30, 200)) < 0.2
    excluded[np.arange(30), targets] = False
    counts = ranking.rank_counts(scores, targets, excluded, n_negatives=50, seed=1)
    np.testing.assert_array_equal(counts["n_candidates"], 51)
    # with more negatives than candidates, every candidate is drawn: the full ranking
    big = ranking.ranking_metrics(scores, targets, excluded, k=10, n_negatives=500)
    assert big == ranking.ranking_metrics(scores, targets, excluded, k=10)
    # sampling can only make a target's rank better
    full = ranking.rank_counts(scores, targets, excluded)
    assert np.all(counts["rank"] <= full["rank"])


def test_sampled_candidates_are_uniform_over_the_non_excluded_items():
    excluded = np.zeros((4000, 10), bool)
    excluded[:, [1, 2]] = True
    targets = np.zeros(4000, int)
    cand = ranking.metrics.sample_candidates(excluded, targets, 3, seed=0)
    assert not cand[:, [1, 2]].any()
    freq = cand[:, 3:].mean(axis=0)  # 3 of the 7 free items are drawn: P = 3/7
    np.testing.assert_allclose(freq, 3 / 7, atol=4 * math.sqrt(3 / 7 * 4 / 7 / 4000))


def test_metrics_reject_bad_input_with_named_arguments():
    with pytest.raises(ValueError, match="target item of row 1"):
        ranking.ranking_metrics(HAND_SCORES, HAND_TARGETS, [[], [1]])
    with pytest.raises(ValueError, match="`scores` must be finite"):
        ranking.ranking_metrics([[0.1, np.nan]], [0])
    with pytest.raises(ValueError, match="`targets`"):
        ranking.ranking_metrics(HAND_SCORES, [0])
    with pytest.raises(ValueError, match="`exclude` must have shape"):
        ranking.ranking_metrics(HAND_SCORES, HAND_TARGETS, np.zeros((3, 5), bool))
    with pytest.raises(TypeError, match="`k`"):
        ranking.ranking_metrics(HAND_SCORES, HAND_TARGETS, k=2.5)


# --- split ---------------------------------------------------------------------------------------
def test_leave_last_out_on_a_hand_example():
    users = ["a", "a", "a", "b", "b", "c", "a"]
    times = [30, 10, 20, 5, 9, 1, 20]  # user a: two rows at time 20 keep row order
    train, valid, test = ranking.leave_last_out(users, times)
    np.testing.assert_array_equal(test, [0, 4])  # a: row 0 (t=30), b: row 4
    np.testing.assert_array_equal(valid, [6])  # a: the later of the two t=20 rows
    np.testing.assert_array_equal(
        train, [1, 2, 3, 5]
    )  # c has one row: it stays in training
    train1, valid1, test1 = ranking.leave_last_out(users, times, n_holdout=1)
    assert valid1.size == 0 and test1.tolist() == [0, 4]


def test_leave_last_out_matches_a_loop_per_user():
    rng = np.random.default_rng(5)
    users, times = rng.integers(0, 30, 500), rng.integers(0, 40, 500)
    train, valid, test = ranking.leave_last_out(users, times)
    assert np.array_equal(np.sort(np.r_[train, valid, test]), np.arange(500))
    for u in np.unique(users):
        rows = sorted(np.flatnonzero(users == u), key=lambda r: (times[r], r))
        held = min(2, len(rows) - 1)
        assert (
            [r for r in rows if r in test] == rows[-1:]
            if held
            else not set(rows) & set(test)
        )
        assert [r for r in rows if r in valid] == (rows[-2:-1] if held == 2 else [])


def test_leave_last_out_rejects_mismatched_input():
    with pytest.raises(ValueError, match="same length"):
        ranking.leave_last_out([1, 2], [1])
    with pytest.raises(ValueError, match="n_holdout"):
        ranking.leave_last_out([1, 2], [1, 2], n_holdout=3)


# --- catalogue scoring ------------------------------------------------------------------------------
def blocks(rng, n_contexts=5, n_items=7, n_ctx_side=3, n_item_side=4):
    """Context and item rows in one feature space: one-hot ids plus real-valued side features."""
    n_c, n_i = n_contexts + n_ctx_side, n_items + n_item_side
    C = np.zeros((n_contexts, n_c + n_i))
    C[np.arange(n_contexts), np.arange(n_contexts)] = 1.0
    present = rng.random((n_contexts, n_ctx_side)) < 0.7
    C[:, n_contexts:n_c] = rng.normal(size=(n_contexts, n_ctx_side)) * present
    I = np.zeros((n_items, n_c + n_i))
    I[np.arange(n_items), n_c + np.arange(n_items)] = 1.0
    I[:, n_c + n_items :] = rng.random((n_items, n_item_side)) * (
        rng.random((n_items, n_item_side)) < 0.6
    )
    return C, I


def random_fm(n, k=3, seed=0, dtype=tf.float64):
    rng = np.random.default_rng(seed)
    fm = fmlib.FactorizationMachine(n, k=k, seed=seed, dtype=dtype)
    fm.set_weights(w0=0.3, w=rng.normal(size=n), V=rng.normal(0, 0.5, size=(n, k)))
    return fm


def test_catalogue_scores_equal_calling_the_model_on_every_pair():
    rng = np.random.default_rng(6)
    C, I = blocks(rng)
    fm = random_fm(C.shape[1])
    S = ranking.catalogue_scores(fm, sp.csr_matrix(C), I, batch_size=2)
    pairs = np.array([C[c] + I[i] for c in range(len(C)) for i in range(len(I))])
    np.testing.assert_allclose(S.ravel(), fm(pairs).numpy(), rtol=1e-12, atol=1e-12)
    w = fm.get_weights()
    np.testing.assert_allclose(
        S.ravel(), fm_loop(pairs, w["w0"], w["w"], w["V"]), atol=1e-10
    )


def test_catalogue_scores_refuse_overlapping_blocks():
    rng = np.random.default_rng(7)
    C, I = blocks(rng)
    I[0, 0] = 1.0  # an item row uses a context column
    with pytest.raises(ValueError, match="disjoint feature columns.*\\[0\\]"):
        ranking.catalogue_scores(random_fm(C.shape[1]), C, I)


def test_recommend_returns_the_best_unseen_items_in_order():
    rng = np.random.default_rng(8)
    C, I = blocks(rng, n_items=12)
    fm = random_fm(C.shape[1])
    seen = [[0, 3], [], [5, 6, 7], [1], [11]]
    top, scores = ranking.recommend(fm, C, I, k=4, exclude=seen)
    for c in range(len(C)):
        per_item = fm(np.array([C[c] + I[i] for i in range(len(I))])).numpy()
        order = [i for i in np.argsort(-per_item, kind="stable") if i not in seen[c]][
            :4
        ]
        assert top[c].tolist() == order
        np.testing.assert_allclose(scores[c], per_item[order], rtol=1e-12)
    one, _ = ranking.recommend(fm, C[2], I, k=3, exclude=seen[2])
    assert one.tolist() == top[2, :3].tolist()
    with pytest.raises(ValueError, match="`k`=11"):
        ranking.recommend(fm, C, I, k=11, exclude=seen)


# --- BPR objective and step --------------------------------------------------------------------------
def numpy_objective_and_gradient(C, I, w0, w, V, triples, lambda_w, lambda_v):
    """Mean over triples of -ln sigma(y(c+i+) - y(c+i-)) + Omega, and its gradient (eq. 4)."""
    loss, g_w, g_V = 0.0, np.zeros_like(w), np.zeros_like(V)
    for c, p, q in triples:
        xp, xq = C[c] + I[p], C[c] + I[q]
        d = fm_loop(xp, w0, w, V)[0] - fm_loop(xq, w0, w, V)[0]
        item_feats = (I[p] != 0) | (I[q] != 0)
        omega = lambda_w * (
            np.sum(w[I[p] != 0] ** 2) + np.sum(w[I[q] != 0] ** 2)
        ) + lambda_v * sum(np.sum(V[row != 0] ** 2) for row in (C[c], I[p], I[q]))
        loss += np.log1p(np.exp(-d)) + omega
        s = -1.0 / (1.0 + np.exp(d))  # d/dd of -ln sigma(d)
        _, dwp, dVp = fm_gradient(xp, V)
        _, dwq, dVq = fm_gradient(xq, V)
        g_w += s * (dwp - dwq) + 2 * lambda_w * w * (
            (I[p] != 0).astype(float) + (I[q] != 0)
        )
        g_V += (
            s * (dVp - dVq)
            + 2
            * lambda_v
            * V
            * sum((row != 0).astype(float) for row in (C[c], I[p], I[q]))[:, None]
        )
        assert item_feats.any()
    n = len(triples)
    return loss / n, g_w / n, g_V / n


def test_bpr_loss_matches_numpy_and_ignores_context_only_terms():
    rng = np.random.default_rng(9)
    C, I = blocks(rng)
    fm = random_fm(C.shape[1])
    triples = [(0, 1, 2), (3, 4, 0), (4, 6, 5), (1, 2, 3)]
    c, p, q = map(np.array, zip(*triples))
    w = fm.get_weights()
    want, _, _ = numpy_objective_and_gradient(
        C, I, w["w0"], w["w"], w["V"], triples, 0.02, 0.05
    )
    got = ranking.bpr_loss(fm, C, I, c, p, q, lambda_w=0.02, lambda_v=0.05)
    assert got == pytest.approx(want, rel=1e-10)
    # w0 and the linear weights of context features cancel in the difference
    ctx_cols = np.flatnonzero((C != 0).any(axis=0))
    w_changed = w["w"].copy()
    w_changed[ctx_cols] += 5.0
    fm.set_weights(w0=-4.0, w=w_changed)
    assert ranking.bpr_loss(fm, C, I, c, p, q, 0.02, 0.05) == pytest.approx(
        want, rel=1e-10
    )


def test_one_sgd_step_of_fit_bpr_matches_a_numpy_step():
    """Each context has two of the three items as positives, so its only negative is the third:
    the sampled step is deterministic and equals theta - lr * gradient of the mean objective."""
    rng = np.random.default_rng(10)
    C, I = blocks(rng, n_contexts=4, n_items=3)
    fm = random_fm(C.shape[1], seed=1)
    positives = {0: (0, 1), 1: (1, 2), 2: (0, 2), 3: (0, 1)}
    ctx = np.array([c for c, items in positives.items() for _ in items])
    pos = np.array([i for items in positives.values() for i in items])
    triples = [(c, p, 3 - sum(positives[c])) for c, p in zip(ctx, pos)]
    before = fm.get_weights()
    _, g_w, g_V = numpy_objective_and_gradient(
        C, I, before["w0"], before["w"], before["V"], triples, 0.03, 0.07
    )
    history = ranking.fit_bpr(
        fm,
        C,
        I,
        ctx,
        pos,
        num_epochs=1,
        batch_size=len(ctx),
        optimizer="sgd",
        lr=0.5,
        lambda_w=0.03,
        lambda_v=0.07,
        seed=0,
    )
    after = fm.get_weights()
    np.testing.assert_allclose(
        after["w"], before["w"] - 0.5 * g_w, rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        after["V"], before["V"] - 0.5 * g_V, rtol=1e-10, atol=1e-12
    )
    assert after["w0"] == before["w0"]  # cancels: never trained
    ctx_only = (C != 0).any(axis=0)
    np.testing.assert_array_equal(after["w"][ctx_only], before["w"][ctx_only])
    assert list(history.columns) == ["loss", "seconds"] and len(history) == 1


def test_uniform_negatives_are_uniform_over_the_non_positive_items():
    ctx = np.array([0, 0, 0, 1, 1])
    items = np.array([1, 4, 5, 0, 7])
    sampler = NegativeSampler(
        ctx, items, n_contexts=2, n_items=8, sampling="uniform", seed=0
    )
    n = 40000
    neg, keep = sampler(tf.constant(np.repeat([0, 1], n), tf.int64))
    neg = neg.numpy().reshape(2, n)
    assert keep.numpy().all()
    for row, free in ((neg[0], [0, 2, 3, 6, 7]), (neg[1], [1, 2, 3, 4, 5, 6])):
        freq = np.bincount(row, minlength=8) / n
        assert set(np.flatnonzero(freq)) == set(free)
        p = 1 / len(free)
        np.testing.assert_allclose(freq[free], p, atol=5 * math.sqrt(p * (1 - p) / n))


def test_popularity_negatives_follow_item_counts_and_drop_positives():
    ctx = np.array([0, 1, 1, 2, 2, 2, 2])
    items = np.array([0, 0, 1, 0, 1, 2, 3])  # counts 3, 2, 1, 1 of 7
    sampler = NegativeSampler(
        ctx, items, n_contexts=3, n_items=5, sampling="popularity", seed=1
    )
    n = 40000
    neg, keep = sampler(tf.constant(np.zeros(n), tf.int64))
    neg, keep = neg.numpy(), keep.numpy()
    p = np.array([3, 2, 1, 1, 0]) / 7
    np.testing.assert_allclose(np.bincount(neg, minlength=5) / n, p, atol=0.012)
    np.testing.assert_array_equal(keep, neg != 0)  # item 0 is context 0's positive


def test_fit_bpr_learns_planted_preferences_and_restores_the_best_epoch():
    """Two user groups each interact with their own half of the catalogue: after training, the
    held-out item (from the own half) ranks above the other half's items. The AUC is then about
    (20 + 8/2) / 28 = 0.857 (the 8 unseen own-half items are indistinguishable from the
    target, up to noise); 0.5 by chance."""
    rng = np.random.default_rng(11)
    n_users, n_items = 60, 40
    C = sp.hstack([sp.eye(n_users), sp.csr_matrix((n_users, n_items))], format="csr")
    I = sp.hstack([sp.csr_matrix((n_items, n_users)), sp.eye(n_items)], format="csr")
    ctx, pos, held = [], [], []
    for u in range(n_users):
        own = rng.permutation(np.arange(20) + 20 * (u % 2))[:12]
        ctx += [u] * 11
        pos += own[:11].tolist()
        held.append(own[11])
    fm = fmlib.FactorizationMachine(n_users + n_items, k=4, seed=0, init_std=0.1)
    history = ranking.fit_bpr(
        fm,
        C,
        I,
        np.array(ctx),
        np.array(pos),
        num_epochs=40,
        batch_size=64,
        lr=0.05,
        validation=(np.arange(n_users), np.array(held)),
        patience=5,
        seed=0,
    )
    best = history.attrs["best_epoch"]
    assert history.loc[best, "val_ndcg@10"] == history["val_ndcg@10"].max()
    S = ranking.catalogue_scores(fm, C, I)
    seen = sp.csr_matrix((np.ones(len(ctx)), (ctx, pos)), shape=(n_users, n_items))
    m = ranking.ranking_metrics(S, np.array(held), seen, k=10)
    assert m["auc"] > 0.8
    other_half = (np.arange(n_items)[None, :] // 20) != (
        np.arange(n_users)[:, None] % 2
    )
    below = S < S[np.arange(n_users), held][:, None]
    assert below[other_half].mean() > 0.95
    assert m["ndcg@10"] == pytest.approx(history.loc[best, "val_ndcg@10"], abs=1e-6)


def test_fit_bpr_rejects_bad_input_with_named_arguments():
    rng = np.random.default_rng(12)
    C, I = blocks(rng)
    fm = random_fm(C.shape[1])
    ctx, pos = np.array([0, 1, 2]), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="`item_ids` must index rows in \\[0, 7\\)"):
        ranking.fit_bpr(fm, C, I, ctx, np.array([0, 1, 9]))
    with pytest.raises(ValueError, match="same length"):
        ranking.fit_bpr(fm, C, I, ctx, pos[:2])
    with pytest.raises(ValueError, match="`sampling`"):
        ranking.fit_bpr(fm, C, I, ctx, pos, sampling="hard")
    with pytest.raises(ValueError, match="`patience` needs `validation`"):
        ranking.fit_bpr(fm, C, I, ctx, pos, patience=2)
    with pytest.raises(ValueError, match="`contexts` has 18 feature columns"):
        ranking.fit_bpr(fm, C[:, :-1], I, ctx, pos)
    with pytest.raises(ValueError, match="context 0 has every item"):
        ranking.fit_bpr(fm, C, I, np.zeros(7, int), np.arange(7))
    with pytest.raises(ranking.BPRDivergedError):
        ranking.fit_bpr(
            fm, C * 1e3, I * 1e3, ctx, pos, optimizer="sgd", lr=1e30, seed=0
        )


# --- MovieLens -----------------------------------------------------------------------------------
def test_movielens_implicit_split_holds_out_each_users_last_two_ratings(movielens):
    data = ranking.movielens_implicit(movielens, side_features=True)
    n_users, n_items = len(movielens.users), len(movielens.items)
    assert (
        data.contexts.shape
        == (n_users, data.n_features)
        == (n_users, len(data.feature_names))
    )
    assert data.items.shape[0] == n_items
    assert len(data.valid) == len(data.test) == n_users
    ts = movielens.ratings["timestamp"].to_numpy()
    last_train = np.full(n_users, -1)
    np.maximum.at(last_train, data.user_ids[data.train], ts[data.train])
    vu, tu = data.user_ids[data.valid], data.user_ids[data.test]
    assert np.all(
        ts[data.train]
        <= np.r_[ts[data.valid]][np.argsort(vu)][data.user_ids[data.train]]
    )
    assert np.all(ts[data.valid][np.argsort(vu)] <= ts[data.test][np.argsort(tu)])
    assert np.all(last_train <= ts[data.valid][np.argsort(vu)])
    plain = ranking.movielens_implicit(movielens, side_features=False)
    assert plain.n_features == n_users + n_items
