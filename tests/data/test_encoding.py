import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from reference import fm_loop

import fmlib


def frame():
    return pd.DataFrame(
        {
            "user": [10, 10, 20, 30],
            "item": ["a", "b", "a", "c"],
            "genres": [("x",), ("x", "y"), ("x",), ()],
            "age": [1.5, 1.5, -2.0, 0.0],
        }
    )


def test_blocks_by_hand():
    enc = fmlib.FeatureEncoder(
        categorical=["user", "item"],
        multi_hot=["genres"],
        implicit=("user", "item"),
        numeric=["age"],
    )
    X = enc.fit_transform(frame())
    assert sp.isspmatrix_csr(X)
    assert enc.feature_names_ == [
        "user=10",
        "user=20",
        "user=30",
        "item=a",
        "item=b",
        "item=c",
        "genres=x",
        "genres=y",
        "rated=a",
        "rated=b",
        "rated=c",
        "age",
    ]
    assert enc.groups_ == {
        "user": slice(0, 3),
        "item": slice(3, 6),
        "genres": slice(6, 8),
        "rated": slice(8, 11),
        "age": slice(11, 12),
    }
    expected = np.array(
        [
            # users    items     genres    rated (user's items, normalised)  age
            [1, 0, 0, 1, 0, 0, 1, 0, 0.5, 0.5, 0, 1.5],
            [1, 0, 0, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 0, 1.5],
            [0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, -2.0],
            [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0.0],
        ]
    )
    np.testing.assert_allclose(X.toarray(), expected)


def test_unseen_values_map_to_an_all_zero_block():
    enc = fmlib.FeatureEncoder(
        categorical=["user", "item"], multi_hot=["genres"], implicit=("user", "item")
    )
    enc.fit(frame())
    new = pd.DataFrame(
        {
            "user": [99, 20],
            "item": ["a", "zzz"],
            "genres": [("y", "new"), ("new",)],
            "age": [0, 0],
        }
    )
    X = enc.transform(new).toarray()
    g = enc.groups_
    assert X[0, g["user"]].sum() == 0 and X[0, g["rated"]].sum() == 0  # unseen user
    assert X[1, g["item"]].sum() == 0  # unseen item
    np.testing.assert_allclose(X[0, g["genres"]], [0, 1])  # known member renormalised
    assert X[1, g["genres"]].sum() == 0  # only unknown members
    np.testing.assert_allclose(X[1, g["rated"]], [1, 0, 0])  # user 20 rated 'a' in fit


def test_index_map_reserves_an_index_when_asked():
    m = fmlib.IndexMap([3, 1, 2], reserve_unknown=True)
    assert m.index([1, 2, 3, 7]).tolist() == [0, 1, 2, 3] and len(m) == 4


def test_movielens_with_all_blocks_stays_sparse(movielens):
    train, test = movielens.split("u1")
    rows = train.merge(movielens.users, on="user").merge(
        movielens.items[["item", "genres"]], on="item"
    )
    enc = fmlib.FeatureEncoder(
        categorical=["user", "item", "gender", "occupation"],
        multi_hot=["genres"],
        implicit=("user", "item"),
    )
    X = enc.fit_transform(rows)
    assert sp.isspmatrix_csr(X) and X.shape == (80_000, enc.n_features_)
    # nnz computed independently: 4 one-hot blocks, the genres, and each user's rated items
    n_genres = rows["genres"].map(len).sum()
    rated = rows.groupby("user")["item"].nunique()
    expected_nnz = 4 * len(rows) + n_genres + int(rows["user"].map(rated).sum())
    assert X.nnz == expected_nnz
    assert X.data.nbytes + X.indices.nbytes <= 12 * X.nnz  # O(nnz) storage
    assert (
        X.data.nbytes + X.indices.nbytes < 0.1 * X.shape[0] * X.shape[1] * 8
    )  # far below dense
    block_sums = {
        g: np.asarray(X[:, s].sum(axis=1)).ravel() for g, s in enc.groups_.items()
    }
    np.testing.assert_allclose(block_sums["rated"], 1.0)
    np.testing.assert_allclose(block_sums["genres"], 1.0)


@pytest.mark.parametrize(
    "df, pattern",
    [
        (frame().drop(columns="item"), r"lacks the column\(s\) \['item'\]"),
        (
            frame().assign(user=[1, None, 2, 3]),
            r"column 'user' of `df` has 1 missing value",
        ),
        (
            frame().assign(age=[1, np.nan, 2, np.inf]),
            r"numeric column 'age' of `df` has 2 missing",
        ),
        (
            frame().assign(genres=["x", "y", "x", "z"]),
            r"multi-hot column 'genres' must hold collections",
        ),
    ],
)
def test_bad_frames(df, pattern):
    enc = fmlib.FeatureEncoder(
        categorical=["user", "item"], multi_hot=["genres"], numeric=["age"]
    )
    with pytest.raises(ValueError, match=pattern):
        enc.fit(df)


def test_bad_configuration_and_order():
    with pytest.raises(ValueError, match=r"repeated: \['user'\]"):
        fmlib.FeatureEncoder(categorical=["user"], numeric=["user"])
    with pytest.raises(RuntimeError, match=r"call fit"):
        fmlib.FeatureEncoder(categorical=["user"]).transform(frame())


def test_implicit_sqrt_scaling_is_svdpp_normalisation():
    df = pd.DataFrame({"user": [1, 1, 1, 1, 2], "item": ["a", "b", "c", "d", "a"]})
    X_sum = fmlib.FeatureEncoder(implicit=("user", "item")).fit_transform(df).toarray()
    X_sqrt = (
        fmlib.FeatureEncoder(implicit=("user", "item"), implicit_norm="sqrt")
        .fit_transform(df)
        .toarray()
    )
    np.testing.assert_allclose(
        X_sum[0], [0.25, 0.25, 0.25, 0.25]
    )  # 1/|N(u)|, |N(1)| = 4
    np.testing.assert_allclose(X_sqrt[0], [0.5, 0.5, 0.5, 0.5])  # |N(u)|^(-1/2)
    np.testing.assert_allclose(X_sqrt[4], [1, 0, 0, 0])
    with pytest.raises(
        ValueError, match=r"`implicit_norm` must be one of \('sum', 'sqrt'\); got 'l2'"
    ):
        fmlib.FeatureEncoder(implicit=("user", "item"), implicit_norm="l2")


def test_block_stacking_matches_scipy_hstack():
    from fmlib.data.design import hstack_csr

    rng = np.random.default_rng(0)
    blocks = [
        sp.random(300, width, density=density, format="csr", random_state=rng)
        for width, density in [(5, 0.3), (1, 0.5), (40, 0.02), (7, 0.0), (64, 0.2)]
    ]
    X = hstack_csr(blocks, 300)
    reference = sp.hstack(blocks, format="csr")
    assert X.shape == reference.shape and X.has_canonical_format
    np.testing.assert_array_equal(X.toarray(), reference.toarray())
    assert hstack_csr([], 4).shape == (4, 0)


def test_implicit_items_is_the_users_who_rated_the_item():
    df = pd.DataFrame({"user": [1, 1, 2, 3, 3], "item": ["a", "b", "a", "a", "c"]})
    enc = fmlib.FeatureEncoder(
        categorical=["item"],
        implicit=("user", "item"),
        implicit_items=("item", "user"),
        implicit_norm="sqrt",
    )
    X = enc.fit_transform(df).toarray()
    assert enc.feature_names_[-3:] == ["rated_by=1", "rated_by=2", "rated_by=3"]
    assert list(enc.groups_) == ["item", "rated", "rated_by"]
    by = X[:, enc.groups_["rated_by"]]
    np.testing.assert_allclose(by[0], np.full(3, 3**-0.5))  # a: rated by users 1, 2, 3
    np.testing.assert_allclose(by[1], [1, 0, 0])  # b: rated by user 1 only
    np.testing.assert_allclose(by[4], [0, 0, 1])  # c: rated by user 3 only
    unseen = enc.transform(pd.DataFrame({"user": [9], "item": ["z"]})).toarray()
    assert not unseen.any()  # unseen user and item: no columns
    with pytest.raises(
        ValueError,
        match=r"`implicit_items` must be a pair \(item_column, user_column\)",
    ):
        fmlib.FeatureEncoder(implicit_items=("item",))


def _train_and_test():
    train = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]})
    test = pd.DataFrame({"user": [3, 1, None], "item": ["a", "z", "b"]})
    return train, test


def test_repr_shows_the_settings_and_the_fitted_blocks():
    enc = fmlib.FeatureEncoder(categorical=["user", "item"], implicit=("user", "item"))
    assert (
        repr(enc)
        == "FeatureEncoder(categorical=['user', 'item'], implicit=('user', 'item'))"
    )
    enc.fit(_train_and_test()[0])
    assert repr(enc) == (
        "FeatureEncoder(categorical=['user', 'item'], implicit=('user', 'item')) "
        "fitted: 6 columns (user: 2, item: 2, rated: 2)"
    )


def test_unknown_bucket_takes_unseen_and_missing_values():
    train, test = _train_and_test()
    enc = fmlib.FeatureEncoder(categorical=["user", "item"], handle_unknown="bucket")
    enc.fit(train)
    assert enc.feature_names_ == [
        "user=1",
        "user=2",
        "user=<unknown>",
        "item=a",
        "item=b",
        "item=<unknown>",
    ]
    expected = [
        [0, 0, 1, 1, 0, 0],  # user 3 unseen, item a
        [1, 0, 0, 0, 0, 1],  # user 1, item z unseen
        [0, 0, 1, 0, 1, 0],
    ]  # user missing, item b
    np.testing.assert_array_equal(enc.transform(test).toarray(), expected)
    assert enc.unseen_ == {"user": 2, "item": 1}
    with_missing = pd.DataFrame(
        {"user": [1, None], "item": ["a", None]}
    )  # missing values train the bucket
    np.testing.assert_array_equal(
        enc.fit_transform(with_missing).toarray(), [[1, 0, 1, 0], [0, 1, 0, 1]]
    )


def test_unseen_values_are_counted_and_can_be_warned_about():
    train = pd.DataFrame(
        {"user": [1, 1, 2], "item": ["a", "b", "a"], "tags": [["x"], ["y"], ["x", "y"]]}
    )
    test = pd.DataFrame(
        {"user": [3, 1, 4], "item": ["a", "z", "b"], "tags": [["x", "q"], ["y"], ["r"]]}
    )
    quiet = fmlib.FeatureEncoder(
        categorical=["user", "item"], multi_hot=["tags"], implicit=("user", "item")
    )
    X = quiet.fit(train).transform(test)
    assert quiet.unseen_ == {"user": 2, "item": 1, "tags": 2, "rated": 2}
    assert X[:, quiet.groups_["user"]].sum() == 1  # unseen: all-zero blocks
    loud = fmlib.FeatureEncoder(
        categorical=["user", "item"], handle_unknown="warn"
    ).fit(train)
    with pytest.warns(UserWarning, match=r"unseen at fit .* \{'user': 2, 'item': 1\}"):
        loud.transform(test)
    with pytest.raises(
        ValueError, match=r"`handle_unknown` must be one of .*got 'drop'"
    ):
        fmlib.FeatureEncoder(categorical=["user"], handle_unknown="drop")


def test_field_ids_give_the_fm_on_the_categorical_blocks():
    train, test = _train_and_test()
    enc = fmlib.FeatureEncoder(
        categorical=["user", "item"], handle_unknown="bucket"
    ).fit(train)
    ids, vocab_sizes = enc.field_ids(test)
    assert ids.tolist() == [[2, 0], [0, 2], [2, 1]] and vocab_sizes == [3, 3]
    rng = np.random.default_rng(0)
    w0, w, V = 0.5, rng.normal(size=6), rng.normal(size=(6, 2))
    model = fmlib.build_fm_model(vocab_sizes=vocab_sizes, k=2)
    model.get_layer("field_fm_layer").set_weights([np.float32(w0), w, V])
    np.testing.assert_allclose(
        model.predict(ids, verbose=0)[:, 0],
        fm_loop(enc.transform(test).toarray(), w0, w, V),
        rtol=1e-5,
    )
    plain = fmlib.FeatureEncoder(categorical=["user", "item"], numeric=["age"]).fit(
        train.assign(age=1.0)
    )
    assert plain.field_ids(train)[0].tolist() == [
        [0, 0],
        [0, 1],
        [1, 0],
    ]  # only the needed columns
    with pytest.raises(
        ValueError,
        match=r"unseen at fit \(rows per column: \{'user': 1, 'item': 1\}\).*"
        r"handle_unknown='bucket'",
    ):
        plain.field_ids(test.iloc[:2])
