"""Every long loop can be stopped (issue #31): endless datasets need a limit, Ctrl-C leaves the
model as of the last completed step or epoch, with a clear message."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import fmlib
from fmlib.learning.loop import run_epochs

X, Y, _ = fmlib.rendle_figure1()


def _endless():
    rows = tf.data.Dataset.from_tensor_slices(
        (X.astype(np.float32), Y.astype(np.float32))
    )
    return rows.batch(4).repeat()


def _interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_endless_dataset_without_a_limit_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(ValueError, match="`X` is an endless.*`steps_per_epoch`"):
        fmlib.fit(
            fmlib.FactorizationMachine(16, k=2, seed=0), _endless(), None, num_epochs=1
        )
    assert time.perf_counter() - started < 5


def test_steps_per_epoch_is_for_datasets_only():
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        fmlib.fit(
            fmlib.FactorizationMachine(16, k=2, seed=0),
            X,
            Y,
            num_epochs=1,
            steps_per_epoch=3,
        )


def test_endless_dataset_epochs_read_on():
    """One iterator across epochs: 2 epochs of 2 batches = the first 4 batches in order,
    the same as 1 epoch over 4 batches (plain SGD, no shuffling)."""
    a = fmlib.FactorizationMachine(16, k=2, seed=0)
    fmlib.fit(
        a, _endless(), None, num_epochs=2, steps_per_epoch=2, optimizer="sgd", lr=0.05
    )
    b = fmlib.FactorizationMachine(16, k=2, seed=0)
    fmlib.fit(b, _endless().take(4), None, num_epochs=1, optimizer="sgd", lr=0.05)
    np.testing.assert_allclose(a.V.numpy(), b.V.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.w.numpy(), b.w.numpy(), rtol=1e-5, atol=1e-7)


def test_ctrl_c_on_an_endless_dataset_in_process():
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    start = fm.V.numpy().copy()
    timer = _interrupt_after(2.0)
    began = time.perf_counter()
    try:
        with pytest.raises(
            fmlib.TrainingInterrupted,
            match="interrupted.*epoch 1 of 3.*last completed step",
        ) as info:
            fmlib.fit(fm, _endless(), None, num_epochs=3, steps_per_epoch=10**12)
    finally:
        timer.cancel()
    assert time.perf_counter() - began < 15
    assert isinstance(info.value, KeyboardInterrupt)
    assert len(info.value.history) == 0
    V = fm.V.numpy()
    assert np.isfinite(V).all() and not np.array_equal(
        V, start
    )  # the steps done are kept


def test_interrupt_restores_the_last_completed_epoch():
    """A solver whose epoch is not made of whole steps (ALS, sweeps) gets the weights of the last
    completed epoch back: here epoch 3 writes half its update, then Ctrl-C."""
    fm = fmlib.FactorizationMachine(4, k=2, seed=0)
    after = {}
    calls = {"n": 0}

    def run_epoch():
        calls["n"] += 1
        fm.w.assign(fm.w.numpy() + 1.0)
        if calls["n"] == 3:
            raise KeyboardInterrupt
        fm.V.assign(fm.V.numpy() + 1.0)
        after[calls["n"]] = fm.get_weights()
        return 1.0

    with pytest.raises(
        fmlib.TrainingInterrupted, match="epoch 3 of 5.*after epoch 2"
    ) as info:
        run_epochs(fm, run_epoch, 5, "regression", None, None, False, None)
    for name, value in after[2].items():
        np.testing.assert_array_equal(fm.get_weights()[name], value)
    assert list(info.value.history.index) == [1, 2]


def test_interrupt_in_the_first_epoch_restores_the_start():
    fm = fmlib.FactorizationMachine(4, k=2, seed=0)
    start = fm.get_weights()

    def run_epoch():
        fm.w.assign(fm.w.numpy() + 1.0)
        raise KeyboardInterrupt

    with pytest.raises(fmlib.TrainingInterrupted, match="before fit"):
        run_epochs(fm, run_epoch, 2, "regression", None, None, False, None)
    np.testing.assert_array_equal(fm.get_weights()["w"], start["w"])


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, tensorflow as tf, fmlib
    X, Y, _ = fmlib.rendle_figure1()
    data = tf.data.Dataset.from_tensor_slices((X.astype(np.float32), Y.astype(np.float32)))
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    print("training", flush=True)
    try:
        fmlib.fit(fm, data.batch(4).repeat(), None, num_epochs=10**6, steps_per_epoch=10**12)
    except fmlib.TrainingInterrupted as stop:
        print("stopped:", stop, flush=True)
        fm.save(sys.argv[1])
        sys.exit(0)
    sys.exit(3)
""")


def test_sigint_stops_a_process_training_on_an_endless_dataset(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "fm.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "training"
        time.sleep(3.0)  # well inside the compiled loop
        proc.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        out, err = proc.communicate(timeout=30)
        waited = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert waited < 10, waited
    assert "interrupted (Ctrl-C) during epoch 1" in out
    fm = fmlib.FactorizationMachine.load(tmp_path / "fm.npz")
    assert np.isfinite(fm.V.numpy()).all()


def _interrupted(call, seconds=2.0):
    timer = _interrupt_after(seconds)
    began = time.perf_counter()
    try:
        with pytest.raises(fmlib.TrainingInterrupted) as info:
            call()
    finally:
        timer.cancel()
    assert time.perf_counter() - began < seconds + 15
    return info.value


def test_ctrl_c_during_als_sweeps_keeps_a_completed_sweep():
    rng = np.random.default_rng(0)
    Xr, yr = rng.random((300, 40)), rng.random(300)
    fm = fmlib.FactorizationMachine(40, k=4, seed=0, dtype=tf.float64)
    stop = _interrupted(lambda: fmlib.fit(fm, Xr, yr, solver="als", num_epochs=10**7))
    done = len(stop.history)
    assert "after epoch" in str(stop) or "before fit" in str(stop)
    # the kept weights are those of the last completed sweep: a fresh model with `done` sweeps
    ref = fmlib.FactorizationMachine(40, k=4, seed=0, dtype=tf.float64)
    if done:
        fmlib.fit(ref, Xr, yr, solver="als", num_epochs=done)
    for name, value in ref.get_weights().items():
        np.testing.assert_allclose(fm.get_weights()[name], value, rtol=1e-9, atol=1e-12)


def test_ctrl_c_during_bpr():
    C = np.zeros((6, 16))
    C[np.arange(6), np.arange(6)] = 1
    I = np.zeros((10, 16))
    I[np.arange(10), 6 + np.arange(10)] = 1
    rng = np.random.default_rng(0)
    ctx, pos = rng.integers(0, 6, 60), rng.integers(0, 10, 60)
    fm = fmlib.FactorizationMachine(16, k=2, seed=0)
    stop = _interrupted(
        lambda: fmlib.fit_bpr(fm, C, I, ctx, pos, num_epochs=10**7, batch_size=4)
    )
    assert "BPR training was interrupted" in str(stop)
    assert np.isfinite(fm.V.numpy()).all()


def test_ctrl_c_during_sampling_leaves_the_estimator_as_before():
    rng = np.random.default_rng(0)
    Xr, yr = rng.random((200, 12)), rng.random(200)
    bfm = fmlib.BayesianFM(k=2, num_sweeps=10**7, seed=0)
    stop = _interrupted(lambda: bfm.fit(Xr, yr))
    assert "BayesianFM.fit was interrupted" in str(stop)
    assert not hasattr(bfm, "samples_") and not hasattr(bfm, "n_features_in_")
