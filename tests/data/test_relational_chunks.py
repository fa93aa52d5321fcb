"""Minibatches grouped by a block's rows (fmlib.data.chunks): the order against
its definition checked in plain Python, its randomness against uniform laws, the
distinct rows per batch against the expected count, training against fit on the flat
matrix in the same order, and the errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from scipy import stats

import fmlib
from fmlib import BlockChunks
from fmlib.data.design import RelationalDesign, RelationBlock


def make_design(n_users=7, seed=0, main=True):
    """Users with 1 to 12 ratings (one user with none), an item block, a main block."""
    rng = np.random.default_rng(seed)
    counts = np.array([12, 1, 5, 0, 8, 3, 9][:n_users])
    user = rng.permutation(np.repeat(np.arange(n_users), counts))
    n = user.size
    item = rng.integers(0, 5, n)
    users = sp.csr_matrix(
        np.c_[
            np.eye(n_users), (rng.random((n_users, 4)) < 0.5) * rng.random((n_users, 4))
        ]
    )
    items = sp.csr_matrix(np.c_[np.eye(5), rng.random((5, 2))])
    X = sp.csr_matrix(rng.normal(size=(n, 2))) if main else None
    blocks = [RelationBlock(users, user, "user"), RelationBlock(items, item, "item")]
    return RelationalDesign(X, blocks)


def runs(rows):
    """Maximal runs of equal consecutive values: [(value, length)], a plain loop."""
    out = []
    for r in rows:
        if out and out[-1][0] == r:
            out[-1][1] += 1
        else:
            out.append([r, 1])
    return [tuple(x) for x in out]


def check_chunk_order(order, index, size):
    """The definition, checked run by run: a permutation; a row's ratings come in runs
    whose lengths are sums of whole chunks of ``size``, except the one run that ends
    with the row's shorter last chunk; every rating of every row is there."""
    n = len(index)
    assert sorted(order.tolist()) == list(range(n))
    counts = {}
    for r in index.tolist():
        counts[r] = counts.get(r, 0) + 1
    seen, short = {}, {}
    for row, length in runs([int(index[i]) for i in order]):
        seen[row] = seen.get(row, 0) + length
        if length % size:
            short[row] = short.get(row, 0) + 1
            assert length % size == counts[row] % size, (row, length)
    assert seen == counts
    for row, count in counts.items():  # exactly one short run iff the row has a rest
        assert short.get(row, 0) == (1 if count % size else 0), row


@pytest.mark.parametrize("size", [1, 2, 3, 5, 12, 50])
def test_the_order_is_chunks_of_one_row(size):
    design = make_design()
    index = design.blocks[0].index
    rng = np.random.default_rng(1)
    for _ in range(20):
        order = BlockChunks("user", size).permutation(design, rng)
        assert order.shape == (design.n_rows,)
        check_chunk_order(order, index, size)


def test_large_chunks_keep_each_row_together_and_size_one_does_not():
    design = make_design()
    index = design.blocks[0].index
    order = BlockChunks("user", 12).permutation(design, np.random.default_rng(0))
    assert len(runs(index[order].tolist())) == 6  # one run per user with ratings
    rng = np.random.default_rng(0)
    n_runs = [
        len(runs(index[BlockChunks("user", 1).permutation(design, rng)].tolist()))
        for _ in range(50)
    ]
    assert np.mean(n_runs) > 25  # 38 ratings of 6 users, scattered


def test_same_seed_same_order_other_seed_other_order():
    design = make_design()
    chunks = BlockChunks("item", 3)
    a = [chunks.permutation(design, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.default_rng(7)
    first, second = chunks.permutation(design, rng), chunks.permutation(design, rng)
    assert not np.array_equal(first, second)
    other = chunks.permutation(design, np.random.default_rng(8))
    assert not np.array_equal(first, other)
    check_chunk_order(other, design.blocks[1].index, 3)


def test_chunks_and_ratings_within_a_row_are_in_uniform_random_order():
    """size >= every row's count: the chunks are the rows, so the first row is uniform
    over the 6 users with ratings; user 0's first rating uniform over its 12."""
    design = make_design()
    index = design.blocks[0].index
    mine = np.flatnonzero(index == 0)
    rng = np.random.default_rng(11)
    first_row, first_of_user0 = [], []
    for _ in range(1200):
        order = BlockChunks("user", 20).permutation(design, rng)
        first_row.append(index[order[0]])
        first_of_user0.append(order[np.isin(order, mine)][0])
    rows, n_first = np.unique(first_row, return_counts=True)
    assert rows.tolist() == [0, 1, 2, 4, 5, 6]  # user 3 has no rating
    assert stats.chisquare(n_first).pvalue > 1e-3
    ratings, n_first = np.unique(first_of_user0, return_counts=True)
    assert sorted(ratings.tolist()) == mine.tolist()
    assert stats.chisquare(n_first).pvalue > 1e-3


@pytest.mark.parametrize("size, batch", [(1, 64), (4, 64), (16, 256)])
def test_distinct_rows_per_batch_follow_the_expected_count(size, batch):
    """Mean distinct users per batch against sum_u 1 - exp(-m c_u / C), c_u the chunks
    of user u (ceil(n_u / size)), C their sum, m = 1 + (B - 1) C / N the chunks a batch
    touches; on 200 users with 1..80 ratings."""
    rng = np.random.default_rng(0)
    n_u = rng.integers(1, 81, 200)
    user = np.repeat(np.arange(200), n_u)
    design = RelationalDesign(None, [RelationBlock(sp.eye(200, format="csr"), user)])
    design.blocks[0].name = "user"
    n = user.size
    distinct = []
    for _ in range(5):
        order = BlockChunks("user", size).permutation(design, rng)
        distinct += [
            np.unique(user[order[s : s + batch]]).size
            for s in range(0, n - batch + 1, batch)
        ]
    c_u = -(-n_u // size)  # chunks of user u; a batch touches m of the C chunks
    m = 1 + (batch - 1) * c_u.sum() / n
    expected = np.sum(1 - np.exp(-m * c_u / c_u.sum()))
    assert abs(np.mean(distinct) - expected) < 0.04 * expected
    if size > 1:
        assert np.mean(distinct) < 0.6 * batch  # fewer users than ratings in a batch


# --- training in chunk order = fit on the flat matrix in that order ------------------
@pytest.mark.parametrize(
    "updates, optimizer", [("dense", "adam"), ("sparse", "adam"), ("sparse", "sgd")]
)
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_two_epochs_equal_the_flat_matrix_in_the_same_order(updates, optimizer, main):
    """Two epochs with BlockChunks on the blocks against one epoch of fit(shuffle=False)
    on the flat rows of both epochs' orders stacked (38 ratings = 2 batches of 19, so
    the batches do not straddle the epochs): the same steps, the same weights."""
    design = make_design(main=main)
    y = np.random.default_rng(3).normal(size=design.n_rows)
    chunks = BlockChunks("user", 3)
    kwargs = dict(
        batch_size=19,
        updates=updates,
        optimizer=optimizer,
        lr=0.05,
        lambda_w=0.01,
        lambda_v=0.02,
    )

    def model():
        return fmlib.FactorizationMachine(
            design.n_features, k=3, seed=0, init_std=0.3, dtype=tf.float64
        )

    fm = model()
    fmlib.fit(fm, design, y, num_epochs=2, shuffle=chunks, seed=5, **kwargs)
    rng = np.random.default_rng(5)
    orders = [chunks.permutation(design, rng) for _ in range(2)]
    flat = design.to_csr()
    stacked = sp.vstack([flat[order] for order in orders]).tocsr()
    reference = model()
    fmlib.fit(
        reference,
        stacked,
        np.concatenate([y[o] for o in orders]),
        num_epochs=1,
        shuffle=False,
        **kwargs,
    )
    iid = model()
    fmlib.fit(iid, design, y, num_epochs=2, shuffle=True, seed=5, **kwargs)
    ours, ref = fm.get_weights(), reference.get_weights()
    for key in ("w0", "w", "V"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12)
    assert not np.allclose(ours["V"], iid.get_weights()["V"])  # the order mattered
    assert not np.allclose(ours["V"], model().V.numpy())  # it trained


# --- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, error, message",
    [
        (("user", 0), ValueError, r"`size` must be >= 1; got 0"),
        (("user", -3), ValueError, r"`size` must be >= 1; got -3"),
        (("user", 2.5), TypeError, r"`size` must be an integer; got float 2.5"),
        (("user", True), TypeError, r"`size` must be an integer; got bool True"),
        ((0, 4), TypeError, r"`block` must be the name \(str\).*got int 0"),
    ],
)
def test_bad_chunk_arguments(args, error, message):
    with pytest.raises(error, match=message):
        BlockChunks(*args)


def test_unknown_block_lists_the_names():
    design = make_design()
    y = np.zeros(design.n_rows)
    fm = fmlib.FactorizationMachine(design.n_features, k=2, seed=0)
    message = r"one of \['user', 'item'\]\); got 'users', no block of that name"
    with pytest.raises(ValueError, match=message):
        fmlib.fit(fm, design, y, shuffle=BlockChunks("users", 4))
    with pytest.raises(ValueError, match=message):
        BlockChunks("users", 4).permutation(design, np.random.default_rng(0))
    with pytest.raises(
        TypeError, match="`design` must be a fmlib.RelationalDesign; got csr_matrix"
    ):
        BlockChunks("user", 4).permutation(design.to_csr(), np.random.default_rng(0))
    with pytest.raises(
        TypeError, match="`rng` must be a numpy.random.Generator.*got int"
    ):
        BlockChunks("user", 4).permutation(design, 0)
    design.blocks[1].name = "user"
    with pytest.raises(ValueError, match="got 'user', more than one block"):
        fmlib.fit(fm, design, y, shuffle=BlockChunks("user", 4))


def test_shuffle_argument_errors():
    design = make_design()
    y = np.zeros(design.n_rows)
    fm = fmlib.FactorizationMachine(design.n_features, k=2, seed=0, dtype=tf.float64)
    chunks = BlockChunks("user", 4)
    with pytest.raises(
        TypeError, match=r"needs `X` to be a fmlib.RelationalDesign.*" r"got csr_matrix"
    ):
        fmlib.fit(fm, design.to_csr(), y, shuffle=chunks)
    with pytest.raises(TypeError, match="needs `X` to be a fmlib.RelationalDesign"):
        fmlib.fit(fm, design.to_csr().toarray(), y, shuffle=chunks)
    dataset = tf.data.Dataset.from_tensors((design.to_csr().toarray(), y))
    with pytest.raises(TypeError, match=r"RelationalDesign.*got \w*Dataset"):
        fmlib.fit(fm, dataset, None, shuffle=chunks)
    with pytest.raises(ValueError, match=r"`shuffle` is not used by solver='als'"):
        fmlib.fit(fm, design, y, solver="als", shuffle=chunks)
    for bad in ("yes", 1, ("user", 4)):  # None is "not set": the default, True
        with pytest.raises(
            TypeError,
            match=r"`shuffle` must be True, False or a " r"fmlib.BlockChunks; got",
        ):
            fmlib.fit(fm, design, y, shuffle=bad)
    assert np.all(
        fm.V.numpy()
        == fmlib.FactorizationMachine(
            design.n_features, k=2, seed=0, dtype=tf.float64
        ).V.numpy()
    )  # nothing trained
