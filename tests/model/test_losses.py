import numpy as np
import pytest
import tensorflow as tf

import fmlib


def test_l2_loss_hand_value():
    assert float(fmlib.l2_loss([1.0, 2.0, 4.0], [1.0, 0.0, 1.0])) == pytest.approx(
        (0 + 4 + 9) / 3
    )


def test_shapes_n_and_n1_give_the_same_loss():
    y = np.array([1.0, 2.0, 3.0, 5.0])
    y_hat = np.array([1.5, 2.0, 2.0, 4.0])
    expected = np.mean((y - y_hat) ** 2)
    for yt in (y, y[:, None]):
        for yp in (y_hat, y_hat[:, None]):
            assert float(fmlib.l2_loss(yt, yp)) == pytest.approx(expected)
    # a (N, N) broadcast would give a different number: make sure the data can tell
    assert np.mean((y[:, None] - y_hat[None, :]) ** 2) != pytest.approx(expected)


def test_logistic_loss_hand_value_and_shapes():
    y = np.array([1.0, 0.0, 1.0])
    logits = np.array([2.0, -1.0, -0.5])
    expected = np.mean(np.log1p(np.exp(-(2 * y - 1) * logits)))
    assert float(fmlib.logistic_loss(y, logits)) == pytest.approx(expected, rel=1e-6)
    assert float(fmlib.logistic_loss(y[:, None], logits)) == pytest.approx(
        expected, rel=1e-6
    )
    # stable for large logits
    assert np.isfinite(float(fmlib.logistic_loss([0.0], [1e4])))


def test_mismatched_lengths_and_widths_raise():
    with pytest.raises(ValueError, match=r"`y_true` has 3 values but `y_pred` has 2"):
        fmlib.l2_loss([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"`y_pred` must have shape \(N,\) or \(N, 1\); got \(2, 2\)"
    ):
        fmlib.l2_loss([1.0, 2.0], np.ones((2, 2)))


def test_l2_penalty_hand_value():
    fm = fmlib.FactorizationMachine(2, k=1, dtype=tf.float64)
    fm.set_weights(w0=10.0, w=[1.0, 2.0], V=[[3.0], [1.0]])
    assert float(fmlib.l2_penalty(fm, 0.1, 0.01)) == pytest.approx(0.1 * 5 + 0.01 * 10)
