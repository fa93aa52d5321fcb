"""The synthetic relational generator against flat rows built by hand and eq. (1)."""

import numpy as np
import pytest
from reference import fm_definition

from fmlib.data.relational_synthetic import make_relational_ratings


def test_rows_are_user_item_and_the_users_scaled_items_and_y_is_the_planted_fm():
    data = make_relational_ratings(
        600, ratings_per_user=20, n_items=50, k=3, noise=0.0, seed=4
    )
    design, truth = data.design, data.truth
    n_users = design.blocks[0].data.shape[0]
    assert n_users == 30
    main = design.X.toarray()
    users, items = main[:, :n_users].argmax(1), main[:, n_users:].argmax(1)
    assert np.all(main.sum(1) == 2)
    assert len(set(zip(users, items))) == 600  # distinct pairs
    flat = np.zeros((600, n_users + 2 * 50))
    for i, (u, j) in enumerate(zip(users, items)):
        rated = items[users == u]
        flat[i, u] = flat[i, n_users + j] = 1.0
        flat[i, n_users + 50 + rated] = 1.0 / np.sqrt(rated.size)
    np.testing.assert_allclose(design.to_csr().toarray(), flat, rtol=1e-15)
    names = design.feature_names
    assert (
        names[0] == "user=0" and names[n_users] == "item=0" and names[-1] == "rated=49"
    )
    w, V = truth.w[names].to_numpy(), truth.V.loc[names].to_numpy()
    np.testing.assert_allclose(data.y, fm_definition(flat, truth.w0, w, V), rtol=1e-12)


def test_noise_sizes_and_seed():
    a = make_relational_ratings(
        20_000, ratings_per_user=60, n_items=2000, noise=0.5, seed=1
    )
    b = make_relational_ratings(
        20_000, ratings_per_user=60, n_items=2000, noise=0.5, seed=1
    )
    np.testing.assert_array_equal(a.y, b.y)
    sizes = np.diff(a.design.blocks[0].data.indptr)
    assert sizes.mean() == pytest.approx(20_000 / round(20_000 / 60))
    assert 30 < sizes.min() and sizes.max() < 100  # about Poisson(60)
    clean = (
        a.y
        - make_relational_ratings(
            20_000, ratings_per_user=60, n_items=2000, noise=0.0, seed=1
        ).y
    )
    assert np.std(clean) == pytest.approx(0.5, rel=0.03)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_ratings": 0}, r"n_ratings"),
        (
            {"n_ratings": 100, "ratings_per_user": 10, "n_items": 10},
            r"`n_items` must exceed `ratings_per_user` \(10\).*got 10",
        ),
        ({"n_ratings": 100, "noise": -1.0}, r"noise"),
        ({"n_ratings": 100, "k": 0}, r"`k`"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_relational_ratings(**kwargs)
