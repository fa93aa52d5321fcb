r"""Alternating least squares (coordinate descent) for the FM, libFM's ``-method als``.

The chapter "Coordinate descent" derives it. One sweep visits every
parameter once and sets it to the minimiser of the objective in that parameter alone,

.. math::

    J &= \sum_{i=1}^{N} (y_i - \hat y_i)^2 + \lambda_w \lVert \mathbf w\rVert^2
    + \lambda_v \lVert \mathbf V\rVert_F^2, \\
    \theta^* &= \frac{\sum_i h_{\theta,i}\,(y_i - g_{\theta,i})}{\sum_i h_{\theta,i}^2
        + \lambda_\theta},

(a sum over rows, :math:`w_0` unregularised: libFM's convention; note that
:func:`fmlib.fit`'s gradient solvers penalise the *mean* loss, so the same
:math:`\lambda` means a penalty :math:`N` times stronger there). No learning rate;
:math:`J` never increases. The updates themselves are
:class:`fmlib.solvers.coordinate.CoordinateSweeper`'s with :math:`\alpha = 1, \mu = 0` and no
noise. :func:`fmlib.fit` with ``solver="als"`` calls this module.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from fmlib.data.design import RelationalDesign
from fmlib.learning.divergence import check_solver_weights
from fmlib.model.fm import FactorizationMachine
from fmlib.solvers.sweeper import make_sweeper


def als_sweeps(
    model: FactorizationMachine,
    X: sp.csr_matrix | np.ndarray | RelationalDesign,
    y: np.ndarray,
    lambda_w: float,
    lambda_v: float,
    groups: Any = None,
) -> Callable[[], float]:
    """Prepare ALS on checked data; returns ``sweep()``, which runs one sweep over all
    parameters, writes them into ``model`` and returns the training mean squared error.

    ``groups`` (column → block, e.g. ``FeatureEncoder.groups_``) only decides how columns
    are batched into exact block updates (:func:`~fmlib.solvers.coordinate.block_schedule`). A
    :class:`~fmlib.RelationalDesign` is swept on its blocks
    (:class:`~fmlib.solvers.sweeper.RelationalSweeper`), with the same result.
    """
    start = model.get_weights()
    sweeper = make_sweeper(X, y, start["w0"], start["w"], start["V"], groups)
    n, k = model.n_features, model.k
    zero_w, zero_V = np.zeros(n), np.zeros((n, k))
    lam_w, lam_V = np.full(n, lambda_w), np.full((n, k), lambda_v)

    sweeps = 0

    def sweep() -> float:
        nonlocal sweeps
        sweeps += 1
        sweeper.refresh()
        sweeper.update_w0(1.0, 0.0, 0.0, 0.0, sample=False)
        sweeper.update_w(1.0, zero_w, lam_w, zero_w, sample=False)
        sweeper.update_V(1.0, zero_V, lam_V, zero_V, sample=False)
        weights = sweeper.weights()
        check_solver_weights(
            weights,
            f"in ALS sweep {sweeps}",
            f"solver='als', lambda_w={lambda_w}, lambda_v={lambda_v}",
        )
        model.set_weights(**weights)
        return float(np.mean(sweeper.e**2))

    return sweep
