"""stream_ratings: chunked synthetic ratings, checked against eq. (1) and make_ratings."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_definition

import fmlib


def small_stream(**kw):
    args = dict(
        n_ratings=2_500,
        chunk_size=1_000,
        k=3,
        n_age_groups=4,
        n_genres=5,
        noise=0.0,
        seed=3,
    )
    args.update(kw)
    return fmlib.stream_ratings(60, 40, **args)


def test_ratings_are_the_planted_fm_of_their_rows_by_the_definition():
    stream = small_stream()
    truth = stream.truth
    for X, y in stream.chunks(np.float64):
        expected = fm_definition(
            X.toarray(), truth.w0, truth.w.to_numpy(), truth.V.to_numpy()
        )
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_the_planted_fm_is_make_ratings_for_the_same_arguments():
    stream = small_stream()
    data = fmlib.make_ratings(
        60, 40, n_ratings=100, k=3, n_age_groups=4, n_genres=5, noise=0.0, seed=3
    )
    assert list(stream.truth.w.index) == list(data.truth.w.index)
    np.testing.assert_array_equal(stream.truth.V.to_numpy(), data.truth.V.to_numpy())


def test_rows_are_one_user_one_item_their_age_group_and_normalised_genres():
    stream = small_stream()
    X, _ = stream.chunk(1, np.float64)
    blocks = np.cumsum([0, 60, 40, 4, 5])
    for a, b in zip(blocks[:-1], blocks[1:]):
        np.testing.assert_allclose(np.asarray(X[:, a:b].sum(1)).ravel(), 1.0)
    assert X.shape == (1_000, stream.n_features) and stream.n_features == 109
    # the age group is the user's: the same user always has the same age column
    users = X[:, :60].indices
    ages = X[:, 100:104].indices
    for u in np.unique(users):
        assert len(set(ages[users == u])) == 1


def test_chunks_are_reproducible_and_sized():
    stream = small_stream()
    sizes = [X.shape[0] for X, _ in stream.chunks()]
    assert sizes == [1_000, 1_000, 500] and stream.n_chunks == 3
    X1, y1 = stream.chunk(2)
    X2, y2 = small_stream().chunk(2)
    assert (X1 != X2).nnz == 0 and np.array_equal(y1, y2)
    assert not np.array_equal(stream.chunk(0)[1], stream.chunk(1)[1])


def test_users_follow_the_activity_law():
    """skew 0: every user equally likely; the counts of 40,000 draws are multinomial."""
    stream = fmlib.stream_ratings(
        50, 30, n_ratings=40_000, chunk_size=40_000, activity_skew=0.0, seed=0
    )
    counts = np.bincount(stream.chunk(0)[0][:, :50].indices, minlength=50)
    chi2 = ((counts - 800) ** 2 / 800).sum()
    assert chi2 < 90  # chi-square, 49 degrees of freedom: P(> 90) < 0.001


def test_the_dataset_cuts_the_chunks_into_batches_in_order():
    stream = small_stream(noise=0.3)
    Xs, ys = [], []
    for Xb, yb in stream.dataset(batch_size=300):
        Xs.append(tf.sparse.to_dense(Xb).numpy())
        ys.append(yb.numpy())
    X_all = sp.vstack([X for X, _ in stream.chunks()]).toarray()
    np.testing.assert_array_equal(np.concatenate(Xs), X_all)
    np.testing.assert_array_equal(
        np.concatenate(ys), np.concatenate([y for _, y in stream.chunks()])
    )
    assert max(len(y) for y in ys) == 300


def test_fit_trains_on_a_stream():
    stream = fmlib.stream_ratings(
        60, 40, n_ratings=20_000, chunk_size=5_000, k=2, noise=0.1, seed=1
    )
    fm = fmlib.FactorizationMachine(stream.n_features, k=2, seed=0, init_std=0.1)
    fm.w0.assign(3.5)
    history = fmlib.fit(fm, stream.dataset(256), None, num_epochs=4, lr=0.02)
    assert history["loss"].iloc[-1] < 0.5 * history["loss"].iloc[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`chunk_size`"):
        fmlib.stream_ratings(10, 10, n_ratings=5, chunk_size=0)
    with pytest.raises(TypeError, match="`n_ratings`"):
        fmlib.stream_ratings(10, 10, n_ratings=1.5)
    with pytest.raises(ValueError, match="`c` must be < n_chunks"):
        small_stream().chunk(3)


def test_unknown_planted_arguments_are_named_by_stream_ratings():
    with pytest.raises(
        TypeError, match=r"stream_ratings\(\).*\['factorstd'\].*factor_std"
    ):
        fmlib.stream_ratings(10, 10, n_ratings=5, factorstd=0.1)
    with pytest.raises(TypeError, match=r"stream_ratings\(\).*\['density'\]"):
        fmlib.stream_ratings(10, 10, n_ratings=5, density=0.5)  # n_ratings says it


def test_planted_arguments_reach_the_planted_fm():
    stream = fmlib.stream_ratings(
        30,
        20,
        n_ratings=10,
        k=2,
        factor_std=0.05,
        bias_std=0.0,
        global_bias=2.0,
        seed=1,
    )
    data = fmlib.make_ratings(
        30,
        20,
        n_ratings=10,
        k=2,
        factor_std=0.05,
        bias_std=0.0,
        global_bias=2.0,
        seed=1,
    )
    assert stream.truth.w0 == data.truth.w0 == 2.0
    np.testing.assert_array_equal(stream.truth.V.to_numpy(), data.truth.V.to_numpy())
    assert np.all(stream.truth.w.to_numpy() == 0.0)  # bias_std = 0
