r"""The Bayesian Factorization Machine, trained by Gibbs sampling (libFM's ``-method mcmc``).

The chapter "Beyond SGD: coordinate descent and MCMC" derives the model and every
conditional (Freudenthaler, Schmidt-Thieme & Rendle 2011; Rendle, ACM TIST 2012, sec. 5):

.. math::

    y_i \mid \Theta &\sim \mathcal N(\hat y(\mathbf x_i), 1/\alpha), &
    \alpha &\sim \Gamma\big(\tfrac{a_0}{2}, \tfrac{b_0}{2}\big), \\
    w_l &\sim \mathcal N(\mu_w^{g(l)}, 1/\lambda_w^{g(l)}), &
    v_{l,f} &\sim \mathcal N(\mu_{v,f}^{g(l)}, 1/\lambda_{v,f}^{g(l)}), \\
    \mu \mid \lambda &\sim \mathcal N(\mu_0, 1/(\gamma_0 \lambda)), &
    \lambda &\sim \Gamma\big(\tfrac{a_\lambda}{2}, \tfrac{b_\lambda}{2}\big)

with one :math:`(\mu, \lambda)` pair per feature group :math:`g` (and per factor for
:math:`\mathbf V`), a flat prior on :math:`w_0`, and :math:`a_0 = b_0 = a_\lambda =
b_\lambda = \gamma_0 = 1, \mu_0 = 0` (libFM's values; Gamma with shape and *rate*). One
sweep draws, in libFM's and myFM's order, :math:`\alpha` (:func:`draw_alpha`), then
:math:`w_0`, then the hyperparameters of :math:`\mathbf w` (:func:`draw_normal_gamma`) and
every :math:`w_l`, then those of :math:`\mathbf V` and every :math:`v_{l,f}`; the parameters
come from their Gaussian conditionals (:mod:`fmlib.solvers.coordinate`), each hyperparameter from
its conjugate conditional given the current state. (Drawing :math:`\alpha` and the priors
*before* the parameters they govern lets the very first sweep use precisions fitted to the
data rather than the starting values; on MovieLens u1 with 200 sweeps that was worth about
0.003 RMSE.) The prediction is the mean of :math:`\hat y` over the samples kept after burn-in.

Binary classification uses the probit link with latent targets (Albert & Chib 1993):
:math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to :math:`z_i > 0` for a positive
and :math:`z_i < 0` for a negative label, :math:`\alpha = 1`, and
:math:`P(y = 1 \mid \mathbf x) = \Phi(\hat y(\mathbf x))` averaged over the samples.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from scipy.special import ndtr, ndtri

from fmlib.learning.metrics import accuracy, rmse
from fmlib.solvers.registry import HyperParameters
from fmlib.validation import (as_host_matrix, as_labels, as_targets, check_float, check_int, check_seed, check_task)
from fmlib.validation import column_groups
from fmlib.learning.divergence import TrainingInterrupted, check_solver_weights
from fmlib.model.fm import FactorizationMachine
from fmlib.data.design import RelationalDesign
from fmlib.data.design_predict import predict as relational_predict
from fmlib.solvers.sweeper import make_sweeper

# libFM's hyperprior constants: alpha ~ Gamma(A0/2, B0/2); lambda ~ Gamma(A_LAMBDA/2,
# B_LAMBDA/2); mu | lambda ~ N(MU0, 1/(GAMMA0 lambda)).
A0 = B0 = A_LAMBDA = B_LAMBDA = GAMMA0 = 1.0
MU0 = 0.0


def draw_alpha(rng: np.random.Generator, e: np.ndarray) -> float:
    r"""The noise precision from its conditional,
    :math:`\alpha \sim \Gamma\big(\tfrac{a_0 + N}{2}, \tfrac{b_0 + \sum_i e_i^2}{2}\big)`.

    The sum of squares avoids ``np.dot``: for long vectors OpenBLAS hands the dot to its
    threads, which then spin for milliseconds on the other cores, once per sweep (on
    MovieLens u1 that doubled the CPU time of a relation-block sweep)."""
    return float(rng.gamma((A0 + e.size) / 2, 2.0 / (B0 + np.sum(e * e))))


def draw_normal_gamma(rng: np.random.Generator, theta: np.ndarray, group: np.ndarray,
                      n_groups: int, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""One Gibbs step for the per-group prior of ``theta`` (shape ``(n,)`` or ``(n, k)``).

    With :math:`m_g` parameters in group :math:`g`, first

    .. math::

        \lambda_g \mid \mu_g \sim \Gamma\Big(\frac{a_\lambda + m_g + 1}{2},
            \frac{b_\lambda + \sum_{l \in g} (\theta_l - \mu_g)^2
                  + \gamma_0 (\mu_g - \mu_0)^2}{2}\Big),

    then :math:`\mu_g \mid \lambda_g \sim \mathcal N\big(\frac{\sum_{l \in g} \theta_l +
    \gamma_0 \mu_0}{m_g + \gamma_0}, \frac{1}{(m_g + \gamma_0)\lambda_g}\big)`. ``mu`` has
    shape ``(G,)`` or ``(G, k)``; returns the new ``(mu, lambda)`` of that shape.
    """
    member = sp.csr_matrix((np.ones(group.size), (group, np.arange(group.size))),
                           shape=(n_groups, group.size))
    m = np.asarray(member.sum(axis=1)).reshape((-1,) + (1,) * (theta.ndim - 1))
    total = member @ theta
    squares = member @ theta ** 2 - 2 * mu * total + m * mu ** 2      # sum (theta - mu)^2
    lam = rng.gamma((A_LAMBDA + m + 1) / 2 + np.zeros_like(mu),
                    2.0 / (B_LAMBDA + squares + GAMMA0 * (mu - MU0) ** 2))
    mu = rng.normal((total + GAMMA0 * MU0) / (m + GAMMA0), 1.0 / np.sqrt((m + GAMMA0) * lam))
    return mu, lam


def draw_latent_targets(rng: np.random.Generator, y_hat: np.ndarray,
                        positive: np.ndarray) -> np.ndarray:
    r"""Probit latents: :math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to the side of
    zero its label says, by the inverse CDF (stable in both tails)."""
    u = 1.0 - rng.random(y_hat.size)                 # in (0, 1]
    sign = np.where(positive, 1.0, -1.0)
    # for a positive label: z = y_hat - Phi^-1(u Phi(y_hat)) > 0; mirrored for a negative.
    return y_hat - sign * ndtri(np.maximum(u * ndtr(sign * y_hat), 1e-300))


class BayesianFM(HyperParameters):
    r"""A Factorization Machine with priors on all parameters, trained by Gibbs sampling.

    Needs no learning rate and no regularisation constants: the noise precision and one
    prior mean and precision per feature group (and factor) are sampled too. See the
    module docstring for the model and the chapter "Beyond SGD: coordinate descent and
    MCMC".

    Args:
        k: number of latent factors.
        num_sweeps: Gibbs sweeps over all parameters.
        burn_in: sweeps discarded before predictions are averaged (default
            ``num_sweeps // 10``); must be smaller than ``num_sweeps``.
        task: ``"regression"`` (Gaussian noise) or ``"classification"`` (probit, labels
            in {0, 1} or {-1, +1}).
        groups: the prior group of every column: ``None`` (one group), one label per
            column, or a mapping name → columns such as ``FeatureEncoder.groups_``.
        init_std: standard deviation of the initial ``V`` (``w0`` and ``w`` start at 0).
        seed: seed of all random draws; the same seed gives the same samples.

    After :meth:`fit`: ``trace_`` (one row per sweep), ``samples_`` (the kept
    ``w0, w, V``: ``(num_sweeps - burn_in) * n * (k + 1)`` float64 values, as myFM keeps
    them, so that :meth:`predict` works on any rows later), ``n_features_in_``, ``groups_``
    (group names).

    Example:
        >>> X, y, _ = fmlib.rendle_figure1()
        >>> bfm = BayesianFM(k=2, num_sweeps=50, seed=0).fit(X, y)
        >>> bfm.predict(X).shape
        (7,)
    """

    def __init__(self, k: int = 8, num_sweeps: int = 200, burn_in: int | None = None,
                 task: str = "regression", groups: Any = None, init_std: float = 0.1,
                 seed: int | None = None):
        self.k = k
        self.num_sweeps = num_sweeps
        self.burn_in = burn_in
        self.task = task
        self.groups = groups
        self.init_std = init_std
        self.seed = seed

    # --- checks --------------------------------------------------------------------------
    def _check_params(self) -> int:
        check_int(self.k, "k")
        check_int(self.num_sweeps, "num_sweeps")
        check_float(self.init_std, "init_std")
        check_task(self.task)
        check_seed(self.seed)
        burn_in = self.num_sweeps // 10 if self.burn_in is None else \
            check_int(self.burn_in, "burn_in", minimum=0)
        if burn_in >= self.num_sweeps:
            raise ValueError(f"`burn_in` must be smaller than `num_sweeps` ({self.num_sweeps}) "
                             f"so that some samples are kept; got {burn_in}.")
        return burn_in

    def _targets(self, y, n_rows: int, name: str) -> np.ndarray:
        return as_labels(as_targets(y, n_rows, name=name), self.task, name)

    def _matrix(self, X, name: str) -> sp.csr_matrix | RelationalDesign:
        n = getattr(self, "n_features_in_", None)
        X = as_host_matrix(X, n, tf.float64, name=name)
        return X if isinstance(X, RelationalDesign) else sp.csr_matrix(X)

    # --- training -----------------------------------------------------------------------
    def fit(self, X, y, X_test=None, y_test=None) -> "BayesianFM":
        """Run the sampler on ``(X, y)``; with ``X_test, y_test`` the trace also records
        the test metric of every sample and of the running posterior mean.

        ``X`` (and ``X_test``, and later the argument of :meth:`predict`) may be a
        :class:`~fmlib.RelationalDesign`: the sweeps then run on its relation
        blocks (:mod:`fmlib.solvers.sweeper`) and give the flat matrix's samples."""
        burn_in = self._check_params()
        for attr in ("n_features_in_", "samples_"):
            self.__dict__.pop(attr, None)
        X = self._matrix(X, "X")
        if X.shape[0] == 0:
            raise ValueError("`X` has no rows; there is nothing to train on.")
        y = self._targets(y, X.shape[0], "y")
        previous = {name: getattr(self, name, None) for name in ("n_features_in_", "groups_")}
        self.n_features_in_ = X.shape[1]
        test = None
        if (X_test is None) != (y_test is None):
            raise ValueError("give both `X_test` and `y_test`, or neither.")
        if X_test is not None:
            Xt = self._matrix(X_test, "X_test")
            test = (Xt, self._targets(y_test, Xt.shape[0], "y_test"), np.zeros(Xt.shape[0]))
        group = column_groups(self.groups, X.shape[1])
        self.groups_ = (list(self.groups) if isinstance(self.groups, Mapping) else
                        ["all"] if self.groups is None else
                        [str(g) for g in np.unique(np.asarray(self.groups))])
        try:
            self._run(X, y, group, burn_in, test)
        except KeyboardInterrupt:   # the samples and trace are set only when the run completes
            for name, value in previous.items():
                if value is None:
                    self.__dict__.pop(name, None)
                else:
                    setattr(self, name, value)
            raise TrainingInterrupted(
                "BayesianFM.fit was interrupted (Ctrl-C) while sampling; the estimator is as it "
                "was before this fit (no new samples kept). Use fewer `num_sweeps` for a "
                "shorter run.") from None
        return self

    def _settings(self) -> str:
        """The arguments the user passed that shape the sampler, for divergence messages."""
        return (f"BayesianFM(k={self.k}, num_sweeps={self.num_sweeps}, init_std={self.init_std}, "
                f"task={self.task!r})")

    def _run(self, X, y, group, burn_in, test) -> None:
        rng = np.random.default_rng(self.seed)
        n, k, G = X.shape[1], self.k, len(self.groups_)
        classify = self.task == "classification"
        V0 = rng.normal(0.0, self.init_std, (n, k))
        sweeper = make_sweeper(X, np.where(y > 0, 1.0, -1.0) if classify else y, 0.0,
                               np.zeros(n), V0, self.groups)
        alpha, mu_w, lam_w = 1.0, np.zeros(G), np.ones(G)
        mu_v, lam_v = np.zeros((G, k)), np.ones((G, k))
        kept, rows = {"w0": [], "w": [], "V": []}, []
        for sweep in range(1, self.num_sweeps + 1):
            sweeper.refresh()
            if classify:
                sweeper.set_targets(draw_latent_targets(rng, sweeper.predictions(), y > 0))
            if not classify:
                alpha = draw_alpha(rng, sweeper.e)
            sweeper.update_w0(alpha, 0.0, 0.0, rng.standard_normal(), sample=True)
            mu_w, lam_w = draw_normal_gamma(rng, sweeper.w, group, G, mu_w)
            sweeper.update_w(alpha, mu_w[group], lam_w[group], rng.standard_normal(n), True)
            mu_v, lam_v = draw_normal_gamma(rng, sweeper.V, group, G, mu_v)
            sweeper.update_V(alpha, mu_v[group], lam_v[group], rng.standard_normal((n, k)), True)
            check_solver_weights(sweeper.weights(), f"in MCMC sweep {sweep}", self._settings())
            if sweep > burn_in:
                for key, value in sweeper.weights().items():
                    kept[key].append(value)
            rows.append(self._trace_row(sweep, sweep - burn_in, alpha, sweeper, y, test,
                                        (mu_w, lam_w, mu_v, lam_v)))
        self.samples_ = {key: np.array(value) for key, value in kept.items()}
        self.trace_ = pd.DataFrame(rows).set_index("sweep")

    def _trace_row(self, sweep, n_kept, alpha, sweeper, y, test, hyper) -> dict[str, float]:
        mu_w, lam_w, mu_v, lam_v = hyper
        row = {"sweep": sweep, "alpha": alpha, "w0": sweeper.w0}
        for g, name in enumerate(self.groups_):
            row.update({f"mu_w[{name}]": mu_w[g], f"lambda_w[{name}]": lam_w[g],
                        f"mu_v[{name}]": mu_v[g].mean(), f"lambda_v[{name}]": lam_v[g].mean()})
        metric = "accuracy" if self.task == "classification" else "rmse"
        row[f"train_{metric}"] = self._metric(y, sweeper.predictions(),
                                              overwrite=True)
        if test is not None:
            Xt, yt, total = test
            score = self._scores(Xt, sweeper.weights())
            row[f"test_{metric}"] = self._metric(yt, score)
            if n_kept > 0:
                total += ndtr(score) if self.task == "classification" else score
                mean = total / n_kept
                row[f"test_{metric}_mean"] = self._metric(
                    yt, mean - 0.5 if self.task == "classification" else mean)
            else:
                row[f"test_{metric}_mean"] = np.nan
        return row

    def _metric(self, y: np.ndarray, y_hat: np.ndarray,
                overwrite: bool = False) -> float:
        """Accuracy or RMSE (:mod:`fmlib.learning.metrics`); ``overwrite``: ``y_hat`` is a
        scratch array."""
        if self.task == "classification":
            return accuracy(y, y_hat)
        return rmse(y, y_hat, overwrite=overwrite)

    # --- prediction ---------------------------------------------------------------------
    def _scores(self, X: sp.csr_matrix, weights: dict) -> np.ndarray:
        """ŷ of one sample of the parameters for every row of a checked matrix."""
        if isinstance(X, RelationalDesign):
            return relational_predict(X, weights["w0"], weights["w"], weights["V"])
        model = FactorizationMachine(self.n_features_in_, self.k, dtype=tf.float64)
        model.set_weights(**weights)
        return model._predict_host(X, 8192)

    def _posterior_mean(self, X, link) -> np.ndarray:
        if not hasattr(self, "samples_"):
            raise RuntimeError("call fit before predicting.")
        X = self._matrix(X, "X")
        total = np.zeros(X.shape[0])
        for w0, w, V in zip(self.samples_["w0"], self.samples_["w"], self.samples_["V"]):
            total += link(self._scores(X, {"w0": w0, "w": w, "V": V}))
        return total / len(self.samples_["w0"])

    def predict(self, X) -> np.ndarray:
        """Regression: the posterior mean of ŷ over the kept samples. Classification: the
        label, 1 where :meth:`predict_proba` > 0.5, else 0."""
        if self.task == "classification":
            return (self.predict_proba(X) > 0.5).astype(np.int64)
        return self._posterior_mean(X, lambda score: score)

    def predict_proba(self, X) -> np.ndarray:
        r"""Classification: :math:`P(y = 1 \mid \mathbf x)`, the mean of
        :math:`\Phi(\hat y)` over the kept samples; shape ``(N,)``."""
        if self.task != "classification":
            raise AttributeError("predict_proba is for task='classification'; this model "
                                 "was made for regression.")
        return self._posterior_mean(X, ndtr)

    def __repr__(self) -> str:
        return (f"BayesianFM(k={self.k}, num_sweeps={self.num_sweeps}, burn_in={self.burn_in}, "
                f"task={self.task!r})")
