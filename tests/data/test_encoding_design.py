"""FeatureEncoder.transform_design: the encoder's matrix as relation blocks, against
transform's flat matrix and a hand-built one."""

import numpy as np
import pandas as pd
import pytest

import fmlib


def frame():
    return pd.DataFrame(
        {
            "user": [10, 10, 20, 30, 20],
            "item": ["a", "b", "a", "c", "c"],
            "genres": [("x",), ("x", "y"), ("x",), (), ("y",)],
            "age": [1.5, 1.5, -2.0, 0.0, -2.0],
        }
    )


def encoder(**kwargs):
    return fmlib.FeatureEncoder(
        categorical=["user", "item"],
        multi_hot=["genres"],
        implicit=("user", "item"),
        implicit_items=("item", "user"),
        implicit_norm="sqrt",
        **kwargs,
    )


def test_design_holds_transforms_columns_in_the_designs_order():
    enc = encoder(numeric=["age"]).fit(frame())
    test = pd.DataFrame(
        {
            "user": [20, 40, 10],
            "item": ["c", "a", "d"],
            "genres": [("y",), ("x",), ()],
            "age": [0.5, 1.0, 2.0],
        }
    )
    design = enc.transform_design(test)
    assert [b.name for b in design.blocks] == ["rated", "rated_by"]
    assert list(design.groups) == ["user", "item", "genres", "age", "rated", "rated_by"]
    flat = enc.transform(test).toarray()
    position = {name: j for j, name in enumerate(enc.feature_names_)}
    columns = [position[name] for name in design.feature_names]
    assert sorted(columns) == list(range(enc.n_features_))
    np.testing.assert_array_equal(design.to_csr().toarray(), flat[:, columns])
    assert enc.unseen_ == {"user": 1, "item": 1, "genres": 0, "rated": 1, "rated_by": 1}
    # by hand, one row: user 20 rated a and c; item c was rated by 30 and 20
    row = dict(zip(design.feature_names, design.to_csr().toarray()[0]))
    assert row["user=20"] == row["item=c"] == row["genres=y"] == 1.0
    assert row["rated=a"] == row["rated=c"] == pytest.approx(2**-0.5)
    assert row["rated_by=20"] == row["rated_by=30"] == pytest.approx(2**-0.5)
    assert row["age"] == 0.5 and sum(v != 0 for v in row.values()) == 8


def test_without_numeric_columns_the_order_is_transforms_and_fit_trains_on_it():
    enc = encoder().fit(frame())
    design = enc.transform_design(frame())
    assert design.feature_names == enc.feature_names_
    assert design.nnz < design.flat_nnz
    np.testing.assert_array_equal(
        design.to_csr().toarray(), enc.transform(frame()).toarray()
    )
    y = np.arange(5.0)
    weights = []
    for X in (design, enc.transform(frame())):
        fm = fmlib.FactorizationMachine(enc.n_features_, k=2, seed=0)
        fmlib.fit(fm, X, y, num_epochs=2, batch_size=2, seed=0)
        weights.append(fm.get_weights()["V"])
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-5, atol=1e-7)


def test_only_implicit_blocks_and_errors():
    enc = fmlib.FeatureEncoder(implicit=("user", "item")).fit(frame())
    design = enc.transform_design(frame())
    assert design.X.shape == (5, 0) and design.blocks[0].name == "rated"
    with pytest.raises(RuntimeError, match="before transform_design"):
        encoder().transform_design(frame())
    with pytest.raises(ValueError, match="user"):
        enc.transform_design(frame().drop(columns="user"))
