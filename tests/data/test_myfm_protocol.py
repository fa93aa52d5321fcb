"""myFM's ml-100k-extended design (fmlib.data.myfm_protocol): rows rebuilt by hand from
the raw ratings, users and movies of ml-100k."""

import numpy as np
import pandas as pd
import pytest

from fmlib.data.myfm_protocol import myfm_movielens_design


@pytest.fixture(scope="module")
def u1(movielens):
    train, test = movielens.split("u1")
    return movielens, train, test, *myfm_movielens_design(movielens, train, test)


def _row(design, i):
    x = design.to_csr()[i]
    names = np.array(design.feature_names)
    return dict(zip(names[x.indices], x.data))


def test_groups_and_shapes(u1):
    ml, train, test, d, dt = u1
    assert list(d.groups) == [
        "day",
        "user",
        "age",
        "occupation",
        "zip",
        "rated",
        "item",
        "release_year",
        "genres",
        "rated_by",
    ]
    assert d.shape == (len(train), dt.shape[1]) and dt.shape[0] == len(test)
    size = {g: s.stop - s.start for g, s in d.groups.items()}
    assert size["user"] == len(ml.users) and size["item"] == len(ml.items)
    assert size["rated"] == train["item"].nunique()
    assert size["rated_by"] == train["user"].nunique()
    assert size["age"] == 12  # missing + 11 bins between 10 percentiles


@pytest.mark.parametrize(
    "which, i", [("train", 0), ("train", 12345), ("test", 7), ("test", 19999)]
)
def test_rows_by_hand(u1, which, i):
    ml, train, test, d, dt = u1
    frame, design = (train, d) if which == "train" else (test, dt)
    r = frame.iloc[i]
    user = ml.users.set_index("user").loc[r["user"]]
    item = ml.items.set_index("item").loc[r["item"]]
    row = _row(design, i)
    day = pd.Timestamp(int(r["timestamp"]), unit="s").strftime("%Y-%m-%d")
    expected = {
        f"user={r['user']}": 1.0,
        f"item={r['item']}": 1.0,
        f"occupation={user['occupation']}": 1.0,
        f"zip={user['zip'][0]}": 1.0,
    }
    if day in set(pd.to_datetime(train["timestamp"], unit="s").dt.strftime("%Y-%m-%d")):
        expected[f"day={day}"] = 1.0
    rated = train.loc[train["user"] == r["user"], "item"].unique()  # training fold only
    expected.update({f"rated={j}": 1 / np.sqrt(rated.size) for j in rated})
    raters = train.loc[train["item"] == r["item"], "user"].unique()
    expected.update({f"rated_by={u}": 1 / np.sqrt(raters.size) for u in raters})
    expected.update(
        {f"genres={g}": 1 / np.sqrt(len(item["genres"])) for g in item["genres"]}
    )
    got = {k: v for k, v in row.items() if not k.startswith(("age=", "release_year="))}
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k])
    # age: the bin between myFM's percentiles of the users' ages
    cuts = np.unique(np.percentile(ml.users["age"], np.arange(1, 11) * 100 / 11))
    (age,) = [k for k in row if k.startswith("age=")]
    b = int(np.sum(user["age"] > cuts))
    assert age == (f"age=<={cuts[b]:g}" if b < cuts.size else f"age=>{cuts[-1]:g}")


def test_test_fold_does_not_leak_into_the_implicit_sets(u1):
    ml, train, test, d, dt = u1
    # a user's "rated" columns are the same in the train and the test design
    u = test["user"].iloc[0]
    i_tr = int(np.flatnonzero(train["user"].to_numpy() == u)[0])
    rated = lambda row: {k: v for k, v in row.items() if k.startswith("rated=")}
    assert rated(_row(d, i_tr)) == rated(_row(dt, 0))
    assert (
        f"rated={test['item'].iloc[0]}" not in rated(_row(dt, 0))
        or ((train["user"] == u) & (train["item"] == test["item"].iloc[0])).any()
    )


def test_bad_inputs(movielens):
    train, _ = movielens.split("u1")
    with pytest.raises(TypeError, match="`train` must be a pandas DataFrame"):
        myfm_movielens_design(movielens, train.to_numpy())
    with pytest.raises(
        ValueError, match=r"`test` must have columns .*missing \['timestamp'\]"
    ):
        myfm_movielens_design(movielens, train, train.drop(columns="timestamp"))
    bad = train.head(3).assign(user=[1, 2, 99999])
    with pytest.raises(
        ValueError, match="`test` has a user not in ml-100k: user=99999"
    ):
        myfm_movielens_design(movielens, train, bad)
