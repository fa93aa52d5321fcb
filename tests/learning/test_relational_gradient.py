"""Gradient training on relation blocks (fmlib.learning.relational): predictions against
eq. (1) on the flat rows built by hand, one step's gradient against eq. (4) in numpy,
and whole epochs against fit on the flat matrix with the same batches."""

import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_definition, fm_gradient

import fmlib
from fmlib.data.design import RelationalDesign, RelationBlock
from fmlib.learning.relational import BatchRows, block_scores


def design_and_flat(n_rows=40, seed=0, main=True):
    """A main block (weighted item one-hot, a real column) and two relation blocks
    ('user': one-hot + multi-hot, 6 rows; 'ctx': reals, 4 rows, one never used), and
    the same rows laid out flat with numpy."""
    rng = np.random.default_rng(seed)
    item = np.eye(3)[rng.integers(0, 3, n_rows)] * rng.uniform(0.5, 2, (n_rows, 1))
    X = np.c_[item, rng.normal(size=(n_rows, 1))] if main else None
    users = np.c_[np.eye(6), (rng.random((6, 4)) < 0.5) * rng.uniform(0.2, 1, (6, 4))]
    ctx = (rng.random((4, 3)) < 0.6) * rng.normal(size=(4, 3))
    u_idx, c_idx = rng.integers(0, 6, n_rows), rng.integers(0, 3, n_rows)
    flat = np.hstack(([X] if main else []) + [users[u_idx], ctx[c_idx]])
    blocks = [
        RelationBlock(sp.csr_matrix(users), u_idx, "user"),
        RelationBlock(ctx, c_idx, "ctx"),
    ]
    design = RelationalDesign(None if X is None else sp.csr_matrix(X), blocks)
    return design, flat


def model(n, dtype=tf.float64, k=3):
    return fmlib.FactorizationMachine(n, k=k, seed=0, init_std=0.3, dtype=dtype)


def batch_scores(design, fm, rows):
    """block_scores on the ratings ``rows`` of ``design``, through BatchRows."""
    dtype = fm.dtype.as_numpy_dtype
    X = design.X[rows]
    main = (
        X.indptr.astype(np.int32),
        X.indices.astype(np.int32),
        X.data.astype(dtype),
        np.repeat(np.arange(len(rows), dtype=np.int32), np.diff(X.indptr)),
    )
    tables = tuple(
        (
            b.data.indptr.astype(np.int32),
            b.data.indices.astype(np.int32),
            b.data.data.astype(dtype),
        )
        for b in design.blocks
    )
    index = tuple(b.index[rows].astype(np.int32) for b in design.blocks)
    split = BatchRows(design.offsets, design.X.shape[1] > 0)
    F, _, Z, gathers, _ = split(main, tables, index, 0, len(rows))
    y_hat = block_scores(fm.w0, tf.gather(fm.w, F), tf.gather(fm.V, F), Z, gathers)
    return y_hat.numpy()


# --- predictions ----------------------------------------------------------------------
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_block_scores_equal_equation_1_on_the_flat_rows(main):
    design, flat = design_and_flat(main=main)
    fm = model(flat.shape[1])
    fm.w.assign(np.random.default_rng(2).normal(size=flat.shape[1]))
    rows = np.array([3, 17, 3, 0, 25, 39, 8])  # a repeated rating, several per user
    w = fm.get_weights()
    expected = fm_definition(flat[rows], w["w0"], w["w"], w["V"])
    np.testing.assert_allclose(batch_scores(design, fm, rows), expected, rtol=1e-12)


# --- one step against numpy -----------------------------------------------------------
@pytest.mark.parametrize("lambdas", [(0.0, 0.0), (0.05, 0.1)])
def test_one_sgd_step_is_equation_4_averaged_over_the_flat_rows(lambdas):
    """One full-batch step of plain SGD: (theta - theta') / lr is the gradient of the
    mean squared error plus lambda_w |w|^2 + lambda_v |V|^2, eq. (4) row by row."""
    design, flat = design_and_flat(n_rows=12, seed=3)
    y = np.random.default_rng(4).normal(size=12)
    fm = model(flat.shape[1])
    fm.w.assign(np.random.default_rng(5).normal(0, 0.3, flat.shape[1]))
    before = fm.get_weights()
    lr, (lw, lv) = 0.125, lambdas  # exact in float32 (Keras keeps lr in float32)
    fmlib.fit(
        fm,
        design,
        y,
        num_epochs=1,
        batch_size=12,
        optimizer="sgd",
        lr=lr,
        lambda_w=lw,
        lambda_v=lv,
        updates="dense",
        shuffle=False,
    )
    after = fm.get_weights()
    e = fm_definition(flat, before["w0"], before["w"], before["V"]) - y
    g_w0, g_w, g_V = 0.0, 2 * lw * before["w"], 2 * lv * before["V"]
    for e_i, x in zip(e, flat):
        d_w0, d_w, d_V = fm_gradient(x, before["V"])
        g_w0 += 2 * e_i * d_w0 / 12
        g_w = g_w + 2 * e_i * d_w / 12
        g_V = g_V + 2 * e_i * d_V / 12
    np.testing.assert_allclose((before["w0"] - after["w0"]) / lr, g_w0, rtol=1e-10)
    np.testing.assert_allclose((before["w"] - after["w"]) / lr, g_w, atol=1e-12)
    np.testing.assert_allclose((before["V"] - after["V"]) / lr, g_V, atol=1e-12)


# --- whole epochs against the flat path -----------------------------------------------
def fit_both(design, y, dtype=tf.float64, **kwargs):
    """fit on the design and on design.to_csr(): (weights, history) of each."""
    out = []
    for X in (design, design.to_csr()):
        fm = model(design.shape[1], dtype=dtype)
        history = fmlib.fit(fm, X, y, **kwargs)
        out.append((fm.get_weights(), history))
    return out


def assert_same(pair, rtol=1e-11, atol=1e-13):
    (w_blocks, h_blocks), (w_flat, h_flat) = pair
    for key in ("w0", "w", "V"):
        np.testing.assert_allclose(w_blocks[key], w_flat[key], rtol=rtol, atol=atol)
    for column in h_flat.columns:
        np.testing.assert_allclose(h_blocks[column], h_flat[column], rtol=rtol)


@pytest.mark.parametrize(
    "updates, optimizer, regularization",
    [
        ("dense", "sgd", None),
        ("dense", "adam", None),
        ("dense", "adagrad", None),
        ("sparse", "sgd", "occurrence"),
        ("sparse", "sgd", "global"),
        ("sparse", "adam", "occurrence"),
        ("sparse", "adam", "present"),
        ("sparse", "adagrad", "occurrence"),
    ],
)
@pytest.mark.parametrize("main", [True, False], ids=["main+blocks", "blocks-only"])
def test_epochs_on_blocks_equal_epochs_on_the_flat_matrix(
    updates, optimizer, regularization, main
):
    design, flat = design_and_flat(main=main)
    y = np.random.default_rng(3).normal(size=flat.shape[0])
    pair = fit_both(
        design,
        y,
        num_epochs=2,
        batch_size=7,
        updates=updates,
        optimizer=optimizer,
        regularization=regularization,
        lr=0.05,
        lambda_w=0.01,
        lambda_v=0.02,
        seed=1,
    )
    assert_same(pair)
    assert not np.allclose(
        pair[0][0]["V"], model(flat.shape[1]).V.numpy()
    )  # it trained


def test_classification_validation_and_early_stopping_follow_the_flat_path():
    design, flat = design_and_flat(n_rows=60, seed=6)
    labels = (np.random.default_rng(7).random(60) < 0.5).astype(float)
    pair = fit_both(
        design[:45],
        labels[:45],
        task="classification",
        num_epochs=4,
        batch_size=8,
        lr=0.05,
        seed=2,
        validation_data=(design[45:], labels[45:]),
        patience=2,
    )
    assert_same(pair)
    assert "val_accuracy" in pair[0][1].columns
    assert pair[0][1].attrs["best_epoch"] == pair[1][1].attrs["best_epoch"]


def test_float32_and_a_keras_optimizer_instance():
    design, flat = design_and_flat(n_rows=50, seed=8)
    y = np.random.default_rng(9).normal(size=50)
    out = []
    for X in (design, design.to_csr()):
        fm = model(design.shape[1], dtype=tf.float32)
        opt = keras.optimizers.Adam(learning_rate=0.02)
        for _ in range(2):  # the instance keeps its state across calls
            fmlib.fit(fm, X, y, num_epochs=1, batch_size=16, optimizer=opt, seed=3)
        out.append(fm.get_weights()["V"])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-4, atol=1e-6)


# --- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"optimizer": "rmsprop"},
            ValueError,
            r"`optimizer` must be one of.*'rmsprop'",
        ),
        ({"optimizer": 3}, TypeError, r"`optimizer` must be a name.*int"),
        ({"lr": 0.0}, ValueError, r"`lr` must be > 0"),
        (
            {"updates": "sparse", "optimizer": keras.optimizers.SGD()},
            ValueError,
            r"`optimizer` must be one of.*updates='sparse'",
        ),
        (
            {"updates": "sparse", "optimizer": "adam", "regularization": "global"},
            ValueError,
            r"regularization='global'.*needs optimizer='sgd'",
        ),
        (
            {"updates": "dense", "regularization": "occurrence"},
            ValueError,
            r"needs updates='sparse'",
        ),
        ({"batch_size": 0}, ValueError, r"batch_size"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, message):
    design, flat = design_and_flat()
    y = np.zeros(flat.shape[0])
    with pytest.raises(error, match=message):
        fmlib.fit(model(flat.shape[1]), design, y, **kwargs)


def test_bad_data_is_a_clear_error():
    design, flat = design_and_flat()
    with pytest.raises(ValueError, match=r"`y`.*40"):
        fmlib.fit(model(flat.shape[1]), design, np.zeros(39))
    with pytest.raises(ValueError, match=r"`X`.*columns|`X`.*features"):
        fmlib.fit(model(flat.shape[1] + 1), design, np.zeros(40))
    with pytest.raises(ValueError, match=r"`y`.*finite|`y`.*NaN"):
        fmlib.fit(model(flat.shape[1]), design, np.full(40, np.nan))
