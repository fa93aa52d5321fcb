import numpy as np
import pandas as pd
import pytest
from reference import fm_loop

import fmlib


def small(**kwargs):
    args = dict(
        n_users=60, n_items=40, n_ratings=800, k=3, n_age_groups=4, n_genres=5, seed=3
    )
    args.update(kwargs)
    return fmlib.make_ratings(**args)


def test_same_seed_same_data_and_different_seed_different_data():
    a, b, c = small(), small(), small(seed=4)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.truth.V, b.truth.V)
    assert not a.ratings[["user", "item"]].equals(c.ratings[["user", "item"]])


@pytest.mark.parametrize(
    "n_ratings", [500, 2000]
)  # sparse and dense regimes of the sampler
def test_no_duplicate_pairs_and_ids_in_range(n_ratings):
    data = small(n_ratings=n_ratings)
    r = data.ratings
    assert len(r) == n_ratings
    assert not r.duplicated(["user", "item"]).any()
    assert r["user"].between(0, 59).all() and r["item"].between(0, 39).all()
    assert set(data.users.columns) == {"user", "age_group"} and set(
        data.items.columns
    ) == {"item", "genres"}


def test_density_sets_the_number_of_ratings():
    assert len(fmlib.make_ratings(100, 50, density=0.1, seed=0).ratings) == 500


def test_score_is_the_planted_fm_by_equation_1():
    data = small()
    t = data.truth
    names = list(t.w.index)
    col = {name: j for j, name in enumerate(names)}
    rows = data.ratings.head(25)
    X = np.zeros((len(rows), len(names)))
    for r, row in enumerate(rows.itertuples()):
        X[r, col[f"user={row.user}"]] = 1
        X[r, col[f"item={row.item}"]] = 1
        X[r, col[f"age_group={row.age_group}"]] = 1
        for g in row.genres:
            X[r, col[f"genre={g}"]] = 1 / len(row.genres)
    expected = fm_loop(X, t.w0, t.w.to_numpy(), t.V.to_numpy())
    np.testing.assert_allclose(data.score[:25], expected, rtol=1e-10, atol=1e-10)
    # continuous ratings are score + N(0, noise^2)
    resid = data.ratings["rating"].to_numpy() - data.score
    assert abs(resid.std() - 0.3) < 0.03 and abs(resid.mean()) < 0.03
    assert t.interaction("user=0", "item=1") == pytest.approx(
        t.V.loc["user=0"] @ t.V.loc["item=1"]
    )


def test_stars_and_binary_outputs():
    stars = small(output="stars").ratings["rating"]
    assert (
        stars.dtype.kind == "i" and stars.between(1, 5).all() and stars.nunique() == 5
    )
    clicks = small(output="binary", global_bias=0.0).ratings["rating"]
    assert set(clicks.unique()) == {0, 1}


def test_popularity_skew_makes_a_long_tail():
    def top_share(skew):
        r = fmlib.make_ratings(
            500, 400, n_ratings=20_000, popularity_skew=skew, seed=1
        ).ratings
        counts = r["item"].value_counts().to_numpy()
        return counts[: len(counts) // 10].sum() / counts.sum()

    assert top_share(0.0) < 0.15  # uniform: top 10 % of items get ~10 % of ratings
    assert top_share(1.0) > 0.30  # power law: a head of popular items


def test_fit_recovers_the_planted_interactions():
    data = fmlib.make_ratings(
        300, 200, n_ratings=30_000, k=2, noise=0.1, bias_std=0.3, seed=0
    )
    r = data.ratings
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    X = enc.fit_transform(r)
    train, test = np.arange(25_000), np.arange(25_000, 30_000)
    fm = fmlib.FactorizationMachine(enc.n_features_, k=2, seed=0, init_std=0.1)
    fm.set_weights(w0=r["rating"].iloc[train].mean())
    fmlib.fit(
        fm,
        X[train],
        r["rating"].to_numpy()[train],
        num_epochs=25,
        batch_size=256,
        lr=0.01,
        seed=0,
    )
    rmse = np.sqrt(np.mean((fm.predict(X[test]) - r["rating"].to_numpy()[test]) ** 2))
    assert rmse < 0.2, rmse  # noise std is 0.1
    assert r["rating"].std() > 1.0
    # learned <v_u, v_i> against the truth, on pairs that never occur in the data
    V = pd.DataFrame(fm.V.numpy(), index=enc.feature_names_)
    rng = np.random.default_rng(0)
    seen = set(zip(r["user"], r["item"]))
    pairs = [
        (u, i)
        for u, i in zip(rng.integers(0, 300, 3000), rng.integers(0, 200, 3000))
        if (u, i) not in seen and f"user={u}" in V.index and f"item={i}" in V.index
    ][:500]
    learned = [V.loc[f"user={u}"] @ V.loc[f"item={i}"] for u, i in pairs]
    true = [data.truth.interaction(f"user={u}", f"item={i}") for u, i in pairs]
    assert len(pairs) == 500 and np.corrcoef(learned, true)[0, 1] > 0.9


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"n_users": 0}, ValueError, r"`n_users` must be >= 1; got 0"),
        ({"k": 0}, ValueError, r"`k` must be >= 1; got 0"),
        (
            {"n_ratings": 10**6},
            ValueError,
            r"`n_ratings` must be <= n_users \* n_items = 2400",
        ),
        (
            {"n_ratings": None, "density": 1.5},
            ValueError,
            r"`density` must be in \(0, 1\]; got 1.5",
        ),
        ({"density": 0.1}, ValueError, r"give `n_ratings` or `density`, not both"),
        ({"output": "ordinal"}, ValueError, r"`output` must be one of .*got 'ordinal'"),
        (
            {"noise": -1},
            ValueError,
            r"`noise` must be a finite number >= 0.0; got -1.0",
        ),
        ({"n_items": 2.5}, TypeError, r"`n_items` must be an integer; got float 2.5"),
    ],
)
def test_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        small(**kwargs)
