"""fit(updates="sparse", regularization="occurrence"): row-sparse steps, lazy optimizers, occurrence penalty, datasets.

The references are numpy loops written from Rendle (2010), eq. (4), and from the optimizers'
equations, never the code under test.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from reference import fm_gradient, fm_loop

import fmlib


def sparse_problem(n_rows=12, n=9, seed=0, classification=False):
    """Rows with 1-3 non-zeros among n features; features 7 and 8 never occur in rows 0-5."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n_rows, n))
    for r in range(n_rows):
        cols = rng.choice(7 if r < 6 else n, size=rng.integers(1, 4), replace=False)
        X[r, cols] = rng.normal(size=cols.size)
    y = (
        (rng.random(n_rows) < 0.5).astype(float)
        if classification
        else rng.normal(size=n_rows)
    )
    return X, y


def reference_training(
    X,
    y,
    params,
    optimizer,
    lr,
    batch_size,
    lambda_w,
    lambda_v,
    classification=False,
    steps=None,
    penalty="occurrence",
):
    """Minibatches in order; per-row objective ℓ + Σ_{x_i≠0} (λ_w w_i² + λ_v |v_i|²)
    ("occurrence"), or the batch's mean ℓ + Σ_{i present in the batch} (λ_w w_i² + λ_v |v_i|²)
    ("present"); the optimizer's rule applied to w0 and to the rows of the features present
    (lazy)."""
    w0, w, V = params["w0"].copy(), params["w"].copy(), params["V"].copy()
    state = {
        "w0": [0.0, 0.0, 0.1],
        "w": [np.zeros_like(w), np.zeros_like(w), np.full_like(w, 0.1)],
        "V": [np.zeros_like(V), np.zeros_like(V), np.full_like(V, 0.1)],
    }  # m, v, Adagrad acc
    t = 0
    for s in range(0, len(y), batch_size):
        Xb, yb = X[s : s + batch_size], y[s : s + batch_size]
        B = len(yb)
        g0, gw, gV = 0.0, np.zeros_like(w), np.zeros_like(V)
        for x, target in zip(Xb, yb):
            y_hat = fm_loop(x, w0, w, V)[0]
            d = (
                (1 / (1 + np.exp(-y_hat)) - target)
                if classification
                else 2 * (y_hat - target)
            )
            d_w0, d_w, d_V = fm_gradient(x, V)
            present = x != 0
            g0 += d * d_w0 / B
            gw += d * d_w / B
            gV += d * d_V / B
            if penalty == "occurrence":
                gw += 2 * lambda_w * w * present / B
                gV += 2 * lambda_v * V * present[:, None] / B
        U = np.flatnonzero((Xb != 0).any(0))
        if penalty == "present":
            gw[U] += 2 * lambda_w * w[U]
            gV[U] += 2 * lambda_v * V[U]
        t += 1
        for name, g, rows in (("w0", g0, None), ("w", gw, U), ("V", gV, U)):
            theta = {"w0": w0, "w": w, "V": V}[name]
            m, v, acc = state[name]
            sel = slice(None) if rows is None else rows
            gs = g if rows is None else g[rows]
            if optimizer == "sgd":
                step = lr * gs
            elif optimizer == "adagrad":
                new_acc = (acc if rows is None else acc[rows]) + gs**2
                step = lr * gs / np.sqrt(new_acc + 1e-7)
                if rows is None:
                    state[name][2] = new_acc
                else:
                    acc[rows] = new_acc
            else:  # adam
                m_new = 0.9 * (m if rows is None else m[rows]) + 0.1 * gs
                v_new = 0.999 * (v if rows is None else v[rows]) + 0.001 * gs**2
                step = (
                    lr
                    * np.sqrt(1 - 0.999**t)
                    / (1 - 0.9**t)
                    * m_new
                    / (np.sqrt(v_new) + 1e-7)
                )
                if rows is None:
                    state[name][0], state[name][1] = m_new, v_new
                else:
                    m[rows], v[rows] = m_new, v_new
            if rows is None:
                w0 = w0 - step
            else:
                theta[sel] -= step
        if steps is not None and t == steps:
            break
    return w0, w, V


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
def test_sparse_steps_equal_a_numpy_reference_of_the_lazy_optimizer(optimizer):
    X, y = sparse_problem()
    fm = fmlib.FactorizationMachine(9, k=3, seed=1, init_std=0.3, dtype=tf.float64)
    start = fm.get_weights()
    fmlib.fit(
        fm,
        sp.csr_matrix(X),
        y,
        updates="sparse",
        regularization="occurrence",
        optimizer=optimizer,
        lr=0.05,
        batch_size=4,
        num_epochs=1,
        lambda_w=0.1,
        lambda_v=0.2,
        shuffle=False,
    )
    w0, w, V = reference_training(X, y, start, optimizer, 0.05, 4, 0.1, 0.2)
    got = fm.get_weights()
    np.testing.assert_allclose(got["w0"], w0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["w"], w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["V"], V, rtol=1e-10, atol=1e-12)
    # features 7 and 8 occur only in rows 6-11: the first batches left them untouched, and a
    # row never seen keeps its initial value exactly
    assert not np.allclose(got["V"][:7], start["V"][:7])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_present_penalty_equals_a_numpy_reference(optimizer):
    X, y = sparse_problem(seed=4)
    fm = fmlib.FactorizationMachine(9, k=3, seed=2, init_std=0.3, dtype=tf.float64)
    fm.set_weights(w=np.random.default_rng(5).normal(size=9))  # so that lambda_w acts
    start = fm.get_weights()
    fmlib.fit(
        fm,
        sp.csr_matrix(X),
        y,
        updates="sparse",
        optimizer=optimizer,
        lr=0.05,
        batch_size=4,
        num_epochs=1,
        lambda_w=0.3,
        lambda_v=0.2,
        shuffle=False,
        regularization="present",
    )
    w0, w, V = reference_training(
        X, y, start, optimizer, 0.05, 4, 0.3, 0.2, penalty="present"
    )
    got = fm.get_weights()
    np.testing.assert_allclose(got["w0"], w0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["w"], w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["V"], V, rtol=1e-10, atol=1e-12)
    # and it is not the occurrence penalty (the two differ for features in several rows)
    w0_o, w_o, V_o = reference_training(X, y, start, optimizer, 0.05, 4, 0.3, 0.2)
    assert not np.allclose(got["V"], V_o, rtol=1e-6)


def test_an_epoch_split_into_several_compiled_calls_is_the_same_epoch(monkeypatch):
    """Large data is trained a few batches per compiled call, the next call's rows gathered on
    a second thread: with 4 rows per call (3 calls of one batch) the steps still equal the
    numpy reference, and a shuffled epoch equals the one-call epoch with the same seed."""
    import fmlib.learning.sparse as st

    X, y = sparse_problem(seed=6)
    fm = fmlib.FactorizationMachine(9, k=3, seed=1, init_std=0.3, dtype=tf.float64)
    start = fm.get_weights()
    monkeypatch.setattr(st, "ROWS_PER_CALL", 4)
    fmlib.fit(
        fm,
        sp.csr_matrix(X),
        y,
        updates="sparse",
        regularization="occurrence",
        optimizer="adam",
        lr=0.05,
        batch_size=4,
        num_epochs=1,
        lambda_w=0.1,
        lambda_v=0.2,
        shuffle=False,
    )
    w0, w, V = reference_training(X, y, start, "adam", 0.05, 4, 0.1, 0.2)
    np.testing.assert_allclose(fm.get_weights()["V"], V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fm.get_weights()["w"], w, rtol=1e-10, atol=1e-12)

    runs = []
    for rows_per_call in (4, 1 << 18):
        monkeypatch.setattr(st, "ROWS_PER_CALL", rows_per_call)
        fm = fmlib.FactorizationMachine(9, k=3, seed=1, init_std=0.3, dtype=tf.float64)
        history = fmlib.fit(
            fm,
            sp.csr_matrix(X),
            y,
            updates="sparse",
            regularization="occurrence",
            optimizer="adam",
            lr=0.05,
            batch_size=4,
            num_epochs=2,
            seed=3,
        )
        runs.append((history["loss"].to_numpy(), fm.get_weights()["V"]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-12)


def test_rows_of_equal_length_shuffle_like_the_reference():
    """One-hot rows (two non-zeros each) take the fast shuffle; one shuffled epoch equals the
    numpy reference run on the rows in the order numpy.random.default_rng(seed) permutes
    them, with several compiled calls as well as one."""
    import fmlib.learning.sparse as st

    rng = np.random.default_rng(8)
    n_rows, n = 24, 10
    X = np.zeros((n_rows, n))
    X[np.arange(n_rows), rng.integers(0, 5, n_rows)] = 1.0  # a "user"
    X[np.arange(n_rows), 5 + rng.integers(0, 5, n_rows)] = rng.normal(size=n_rows)
    y = rng.normal(size=n_rows)
    order = np.random.default_rng(11).permutation(n_rows)
    start = fmlib.FactorizationMachine(n, k=3, seed=1, init_std=0.3, dtype=tf.float64)
    w0, w, V = reference_training(
        X[order], y[order], start.get_weights(), "adam", 0.05, 4, 0.1, 0.2
    )
    for rows_per_call in (8, 1 << 18):
        st.ROWS_PER_CALL, saved = rows_per_call, st.ROWS_PER_CALL
        try:
            fm = fmlib.FactorizationMachine(
                n, k=3, seed=1, init_std=0.3, dtype=tf.float64
            )
            fmlib.fit(
                fm,
                sp.csr_matrix(X),
                y,
                updates="sparse",
                regularization="occurrence",
                optimizer="adam",
                lr=0.05,
                batch_size=4,
                num_epochs=1,
                lambda_w=0.1,
                lambda_v=0.2,
                seed=11,
            )
        finally:
            st.ROWS_PER_CALL = saved
        np.testing.assert_allclose(fm.get_weights()["V"], V, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fm.get_weights()["w"], w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fm.get_weights()["w0"], w0, rtol=1e-10, atol=1e-12)


def test_absent_rows_are_unchanged_bit_for_bit_and_present_rows_move():
    X, y = sparse_problem()
    X[:, 4] = 0.0  # feature 4 never occurs
    fm = fmlib.FactorizationMachine(9, k=3, seed=1, init_std=0.3, dtype=tf.float64)
    start = fm.get_weights()
    fmlib.fit(
        fm,
        X,
        y,
        updates="sparse",
        regularization="occurrence",
        optimizer="adam",
        lr=0.05,
        batch_size=4,
        num_epochs=2,
        lambda_w=0.1,
        lambda_v=0.2,
    )
    got = fm.get_weights()
    assert (
        np.array_equal(got["V"][4], start["V"][4]) and got["w"][4] == start["w"][4] == 0
    )
    present = [i for i in range(9) if i != 4]
    assert np.all(np.abs(got["V"][present] - start["V"][present]).sum(1) > 0)


def test_classification_sparse_step_equals_reference():
    X, y = sparse_problem(classification=True, seed=3)
    fm = fmlib.FactorizationMachine(9, k=2, seed=2, init_std=0.3, dtype=tf.float64)
    start = fm.get_weights()
    fmlib.fit(
        fm,
        X,
        2 * y - 1,
        task="classification",
        updates="sparse",
        regularization="occurrence",
        optimizer="adam",
        lr=0.03,
        batch_size=5,
        num_epochs=1,
        lambda_v=0.05,
        shuffle=False,
    )
    w0, w, V = reference_training(
        X, y, start, "adam", 0.03, 5, 0.0, 0.05, classification=True
    )
    np.testing.assert_allclose(fm.get_weights()["V"], V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fm.get_weights()["w0"], w0, rtol=1e-10, atol=1e-12)


def test_global_penalty_with_sgd_equals_the_dense_path_step_for_step():
    X, y = sparse_problem(n_rows=30, seed=4)
    weights = {}  # lr = 1/16: Keras keeps the dense path's learning rate in float32
    for updates in ("dense", "sparse"):
        fm = fmlib.FactorizationMachine(9, k=3, seed=5, init_std=0.2, dtype=tf.float64)
        fmlib.fit(
            fm,
            sp.csr_matrix(X),
            y,
            updates=updates,
            regularization="global",
            optimizer="sgd",
            lr=0.0625,
            batch_size=7,
            num_epochs=3,
            lambda_w=0.3,
            lambda_v=0.2,
            seed=11,
        )
        weights[updates] = fm.get_weights()
    for name in ("w0", "w", "V"):
        np.testing.assert_allclose(
            weights["sparse"][name], weights["dense"][name], rtol=1e-10, atol=1e-12
        )


def test_dense_and_sparse_input_train_alike_on_the_sparse_path():
    X, y = sparse_problem(n_rows=20)
    out = []
    for data in (X, sp.csr_matrix(X), fmlib.to_sparse_tensor(X, tf.float64)):
        fm = fmlib.FactorizationMachine(9, k=3, seed=1, dtype=tf.float64)
        fmlib.fit(
            fm,
            data,
            y,
            updates="sparse",
            regularization="occurrence",
            batch_size=6,
            num_epochs=2,
            seed=0,
        )
        out.append(fm.get_weights()["V"])
    np.testing.assert_allclose(out[1], out[0], rtol=1e-12)
    np.testing.assert_allclose(out[2], out[0], rtol=1e-12)


@pytest.mark.parametrize("sparse_batches", [False, True])
def test_training_from_a_dataset_equals_training_from_the_same_arrays(sparse_batches):
    X, y = sparse_problem(n_rows=23, seed=6)
    fm_arrays = fmlib.FactorizationMachine(9, k=3, seed=1, dtype=tf.float64)
    h_arrays = fmlib.fit(
        fm_arrays,
        X,
        y,
        updates="sparse",
        regularization="occurrence",
        batch_size=5,
        num_epochs=3,
        lambda_v=0.1,
        shuffle=False,
    )
    Xd = tf.sparse.from_dense(X) if sparse_batches else X
    ds = tf.data.Dataset.from_tensor_slices((Xd, y)).batch(5)
    fm_ds = fmlib.FactorizationMachine(9, k=3, seed=1, dtype=tf.float64)
    h_ds = fmlib.fit(
        fm_ds, ds, None, num_epochs=3, lambda_v=0.1, regularization="occurrence"
    )
    np.testing.assert_allclose(
        fm_ds.get_weights()["V"], fm_arrays.get_weights()["V"], rtol=1e-12
    )
    np.testing.assert_allclose(h_ds["loss"], h_arrays["loss"], rtol=1e-12)


def test_occurrence_penalty_shrinks_frequent_features_more():
    """With no data signal (y = prediction), only the penalty moves w: by 2 lr λ (count/B) w."""
    X = np.zeros((4, 3))
    X[:, 0] = 1.0  # feature 0 in every row
    X[0, 1] = 1.0  # feature 1 in one row; feature 2 never
    fm = fmlib.FactorizationMachine(3, k=1, init_std=0.0, dtype=tf.float64)
    fm.set_weights(w=np.array([1.0, 1.0, 1.0]))
    y = fm.predict(X)  # zero residuals: the data gradient is zero
    fmlib.fit(
        fm,
        X,
        y,
        updates="sparse",
        regularization="occurrence",
        optimizer="sgd",
        lr=0.1,
        lambda_w=0.5,
        batch_size=4,
        num_epochs=1,
        shuffle=False,
    )
    np.testing.assert_allclose(
        fm.get_weights()["w"],
        [1 - 2 * 0.1 * 0.5 * 4 / 4, 1 - 2 * 0.1 * 0.5 * 1 / 4, 1.0],
    )


def test_the_sparse_path_learns_a_planted_problem():
    from reference import planted_fm

    X, y, _ = planted_fm(n_rows=3000, n=40, k=3, noise=0.05)
    fm = fmlib.FactorizationMachine(40, k=3, seed=0, init_std=0.1)
    history = fmlib.fit(
        fm,
        X,
        y,
        updates="sparse",
        regularization="occurrence",
        lr=0.02,
        batch_size=64,
        num_epochs=30,
        seed=0,
    )
    assert history["loss"].iloc[-1] < 0.1 * history["loss"].iloc[0]


def test_bad_arguments_of_the_sparse_path_are_named():
    X, y = sparse_problem()
    fm = fmlib.FactorizationMachine(9, k=2)
    with pytest.raises(ValueError, match="`updates` must be one of"):
        fmlib.fit(fm, X, y, updates="lazy")
    with pytest.raises(ValueError, match="`regularization` must be one of"):
        fmlib.fit(fm, X, y, updates="sparse", regularization="l1")
    with pytest.raises(ValueError, match="needs optimizer='sgd'"):
        fmlib.fit(fm, X, y, updates="sparse", regularization="global", optimizer="adam")
    with pytest.raises(ValueError, match="needs updates='sparse'"):
        fmlib.fit(fm, X, y, regularization="occurrence")
    with pytest.raises(ValueError, match="`optimizer` must be one of"):
        fmlib.fit(
            fm,
            X,
            y,
            updates="sparse",
            regularization="occurrence",
            optimizer=tf.keras.optimizers.Adam(),
        )
    with pytest.raises(ValueError, match="`updates` is not used by solver='als'"):
        fmlib.fit(fm, X, y, updates="sparse", regularization="occurrence", solver="als")


def test_bad_datasets_get_clear_errors():
    X, y = sparse_problem()
    fm = fmlib.FactorizationMachine(9, k=2)
    good = tf.data.Dataset.from_tensor_slices((X, y)).batch(4)
    with pytest.raises(ValueError, match="`y` must be None"):
        fmlib.fit(fm, good, y)
    with pytest.raises(ValueError, match=r"shape \(batch, 9\)"):
        fmlib.fit(fm, tf.data.Dataset.from_tensor_slices((X[:, :5], y)).batch(4), None)
    with pytest.raises(ValueError, match="pairs"):
        fmlib.fit(fm, tf.data.Dataset.from_tensor_slices(X).batch(4), None)
    with pytest.raises(ValueError, match="updates='sparse'"):
        fmlib.fit(fm, good, None, updates="dense")
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        fmlib.fit(fm, tf.data.Dataset.from_tensor_slices((bad, y)).batch(4), None)
    with pytest.raises(ValueError, match="labels must be in"):
        fmlib.fit(fmlib.FactorizationMachine(9, k=2), good, None, task="classification")


def test_the_learning_rate_is_checked_on_every_call():
    X, y = sparse_problem()
    fm = fmlib.FactorizationMachine(9, k=2)
    fmlib.fit(
        fm, X, y, updates="sparse", regularization="occurrence", num_epochs=1
    )  # builds the optimizer
    with pytest.raises(ValueError, match="`lr` must be"):
        fmlib.fit(fm, X, y, updates="sparse", regularization="occurrence", lr=-1.0)
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        fmlib.fit(fm, X, y, updates="sparse", regularization="occurrence", lr=0)


def test_the_callers_matrix_is_read_not_changed():
    """fit(updates="sparse", regularization="occurrence") trains on a canonical float CSR matrix without copying it, so it
    must leave it (and one with stored zeros or unsorted indices) exactly as it was."""
    X, y = sparse_problem(n_rows=10)
    canonical = sp.csr_matrix(X)
    zeros = canonical.copy()
    zeros.data[[0, 3]] = 0.0
    unsorted = canonical.copy()
    for r in range(X.shape[0]):  # each row's entries in reverse column order
        a, b = unsorted.indptr[r], unsorted.indptr[r + 1]
        unsorted.indices[a:b] = unsorted.indices[a:b][::-1].copy()
        unsorted.data[a:b] = unsorted.data[a:b][::-1].copy()
    unsorted.has_sorted_indices = False
    for M in (canonical, zeros, unsorted):
        before = (M.data.copy(), M.indices.copy(), M.indptr.copy(), M.nnz)
        fm = fmlib.FactorizationMachine(9, k=2, seed=0, dtype=tf.float64)
        fmlib.fit(
            fm,
            M,
            y,
            updates="sparse",
            regularization="occurrence",
            lambda_v=0.1,
            batch_size=4,
            num_epochs=2,
        )
        np.testing.assert_array_equal(M.data, before[0])
        np.testing.assert_array_equal(M.indices, before[1])
        np.testing.assert_array_equal(M.indptr, before[2])
        assert M.nnz == before[3]


def test_stored_zeros_and_boolean_batches():
    """A stored zero is not a feature (no penalty); one-hot booleans train like floats."""
    X, y = sparse_problem(n_rows=8)
    stored = sp.csr_matrix(X)
    stored.data[0] = 0.0  # an explicit zero in row 0
    weights = []
    for data in (stored, stored.toarray()):
        fm = fmlib.FactorizationMachine(9, k=2, seed=0, dtype=tf.float64)
        fmlib.fit(
            fm,
            data,
            y,
            updates="sparse",
            regularization="occurrence",
            lambda_w=0.5,
            lambda_v=0.5,
            batch_size=8,
            num_epochs=1,
            shuffle=False,
        )
        weights.append(fm.get_weights()["V"])
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12)
    B = X != 0
    ds_bool = tf.data.Dataset.from_tensor_slices((B, y)).batch(4)
    ds_float = tf.data.Dataset.from_tensor_slices((B.astype(float), y)).batch(4)
    out = []
    for ds in (ds_bool, ds_float):
        fm = fmlib.FactorizationMachine(9, k=2, seed=0, dtype=tf.float64)
        fmlib.fit(fm, ds, None, num_epochs=1)
        out.append(fm.get_weights()["V"])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
