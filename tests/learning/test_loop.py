"""The shared epoch loop (fmlib.learning.loop) with a watch: a metric to maximise, a
divergence subclass, a seconds column. References are hand-written sequences."""

import numpy as np
import pytest
import tensorflow as tf

import fmlib
from fmlib.learning.divergence import TrainingDivergedError
from fmlib.learning.loop import EpochWatch, run_epochs
from fmlib.ranking import BPRDivergedError


def _scripted(fm, scores):
    """A run_epoch that sets w0 to the epoch number; evaluate returns scripted scores."""
    epoch = [0]

    def run_epoch():
        epoch[0] += 1
        fm.w0.assign(float(epoch[0]))
        return 1.0 / epoch[0]

    return run_epoch, lambda: {"ndcg@3": scores[epoch[0] - 1]}


def test_maximised_metric_stops_after_patience_and_restores_the_best_epoch():
    fm = fmlib.FactorizationMachine(3, k=2, seed=0)
    scores = [0.1, 0.4, 0.3, 0.2, 0.9, 0.95]
    run_epoch, evaluate = _scripted(fm, scores)
    watch = EpochWatch(evaluate=evaluate, monitor="val_ndcg@3", higher_is_better=True)
    history = run_epochs(fm, run_epoch, 6, "ranking", None, 2, False, None, watch)
    # by hand: best 0.4 at epoch 2, epochs 3 and 4 worse -> stop after epoch 4
    assert list(history.index) == [1, 2, 3, 4]
    assert history.attrs["best_epoch"] == 2
    assert float(fm.w0.numpy()) == 2.0
    np.testing.assert_allclose(history["loss"], [1, 1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose(history["val_ndcg@3"], scores[:4])


def test_seconds_column_and_divergence_subclass():
    fm = fmlib.FactorizationMachine(3, k=2, seed=0)
    watch = EpochWatch(seconds_column=True, error=BPRDivergedError, name="BPR training")
    history = run_epochs(fm, lambda: 0.5, 2, "ranking", None, None, False, 0.1, watch)
    assert list(history.columns) == ["loss", "seconds"]
    assert (history["seconds"] >= 0).all()
    assert list(history["seconds"]) == history.attrs["epoch_seconds"]

    def blow_up():
        fm.V.assign(tf.fill(fm.V.shape, np.inf))
        return 0.5

    with pytest.raises(BPRDivergedError, match="diverged in epoch 1") as caught:
        run_epochs(fm, blow_up, 2, "ranking", None, None, False, 0.1, watch)
    assert isinstance(caught.value, TrainingDivergedError)
    with pytest.raises(BPRDivergedError, match="BPR training diverged.*nan"):
        fm2 = fmlib.FactorizationMachine(3, k=2, seed=0)
        run_epochs(
            fm2, lambda: float("nan"), 2, "ranking", None, None, False, 0.1, watch
        )
