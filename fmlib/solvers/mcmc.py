r"""The Bayesian Factorization Machine, trained by Gibbs sampling (libFM's ``-method mcmc``).

The chapter "The Bayesian factorization machine" derives the model and every
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

Ordinal ratings (``task="ordinal"``) use the ordered probit model of
:mod:`fmlib.solvers.ordinal`: :math:`z_i \sim \mathcal N(\hat y_i, 1)` and the class
:math:`j` where :math:`c_j < z_i \le c_{j+1}`. Each sweep first draws the cut-points with
:math:`\mathbf z` integrated out (one Metropolis-Hastings step), then the latents from
their truncated normals, then the parameters as for regression with :math:`\alpha = 1`
and a :math:`\mathcal N(0, 1)` prior on :math:`w_0` (the cut-points and :math:`w_0` shift
together; myFM's choice). The class probabilities :math:`\Phi(c_{j+1} - \hat y) -
\Phi(c_j - \hat y)` are averaged over the samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from scipy.special import ndtr, ndtri

from fmlib.data.design import RelationalDesign
from fmlib.data.design_predict import predict as relational_predict
from fmlib.learning.divergence import TrainingInterrupted, check_solver_weights
from fmlib.learning.metrics import accuracy, rmse
from fmlib.model.fm import FactorizationMachine
from fmlib.solvers import ordinal as ordinal_solver
from fmlib.solvers.registry import HyperParameters
from fmlib.solvers.sweeper import make_sweeper
from fmlib.validation import (
    as_host_matrix,
    as_labels,
    as_targets,
    check_float,
    check_int,
    check_seed,
    column_groups,
)

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


def draw_normal_gamma(
    rng: np.random.Generator,
    theta: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    mu: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    r"""One Gibbs step for the per-group prior of ``theta`` (shape ``(n,)`` or ``(n, k)``).

    With :math:`m_g` parameters in group :math:`g`, first

    .. math::

        & \lambda_g \mid \mu_g \sim \Gamma\Big(\frac{a_\lambda + m_g + 1}{2}, \\
        & \qquad \frac{b_\lambda + \sum_{l \in g} (\theta_l - \mu_g)^2
        + \gamma_0 (\mu_g - \mu_0)^2}{2}\Big),

    then :math:`\mu_g \mid \lambda_g \sim \mathcal N\big(\frac{\sum_{l \in g} \theta_l +
    \gamma_0 \mu_0}{m_g + \gamma_0}, \frac{1}{(m_g + \gamma_0)\lambda_g}\big)`. ``mu`` has
    shape ``(G,)`` or ``(G, k)``; returns the new ``(mu, lambda)`` of that shape.
    """
    member = sp.csr_matrix(
        (np.ones(group.size), (group, np.arange(group.size))),
        shape=(n_groups, group.size),
    )
    m = np.asarray(member.sum(axis=1)).reshape((-1,) + (1,) * (theta.ndim - 1))
    total = member @ theta
    squares = member @ theta**2 - 2 * mu * total + m * mu**2  # sum (theta - mu)^2
    lam = rng.gamma(
        (A_LAMBDA + m + 1) / 2 + np.zeros_like(mu),
        2.0 / (B_LAMBDA + squares + GAMMA0 * (mu - MU0) ** 2),
    )
    mu = rng.normal(
        (total + GAMMA0 * MU0) / (m + GAMMA0), 1.0 / np.sqrt((m + GAMMA0) * lam)
    )
    return mu, lam


def draw_latent_targets(
    rng: np.random.Generator, y_hat: np.ndarray, positive: np.ndarray
) -> np.ndarray:
    r"""Probit latents: :math:`z_i \sim \mathcal N(\hat y_i, 1)` truncated to the side of
    zero its label says, by the inverse CDF (stable in both tails)."""
    u = 1.0 - rng.random(y_hat.size)  # in (0, 1]
    sign = np.where(positive, 1.0, -1.0)
    # for a positive label: z = y_hat - Phi^-1(u Phi(y_hat)) > 0; mirrored for a negative.
    return y_hat - sign * ndtri(np.maximum(u * ndtr(sign * y_hat), 1e-300))


#: the tasks of :class:`BayesianFM` (the gradient solvers know the first two).
TASKS = ("regression", "classification", "ordinal")
#: prior precision of :math:`w_0` for ``task="ordinal"`` (myFM's ``reg_0``): the
#: cut-points and :math:`w_0` shift together, the prior keeps them from drifting.
W0_PRECISION_ORDINAL = 1.0


class BayesianFM(HyperParameters):
    r"""A Factorization Machine with priors on all parameters, trained by Gibbs sampling.

    Needs no learning rate and no regularisation constants: the noise precision and one
    prior mean and precision per feature group (and factor) are sampled too. See the
    module docstring for the model and the chapter "The Bayesian factorization
    machine".

    Args:
        k: number of latent factors.
        num_sweeps: Gibbs sweeps over all parameters.
        burn_in: sweeps discarded before predictions are averaged (default
            ``num_sweeps // 10``); must be smaller than ``num_sweeps``.
        task: ``"regression"`` (Gaussian noise), ``"classification"`` (probit, labels
            in {0, 1} or {-1, +1}) or ``"ordinal"`` (ordered probit, e.g. star ratings:
            the classes are the sorted distinct values of ``y``;
            :mod:`fmlib.solvers.ordinal`).
        groups: the prior group of every column: ``None`` (one group), one label per
            column, or a mapping name → columns such as ``FeatureEncoder.groups_``.
        init_std: standard deviation of the initial ``V`` (``w0`` and ``w`` start at 0).
        seed: seed of all random draws; the same seed gives the same samples.
        keep_samples: keep every sample after burn-in (``samples_``), so that
            :meth:`predict` works on any rows later: ``(num_sweeps - burn_in) * n * (k +
            1)`` float64 values, as myFM keeps them. With ``False`` nothing is kept
            (memory ``O(n k)``) and the predictions for the ``X_test`` given to
            :meth:`fit` are the only ones: libFM's way, accumulated sweep by sweep.

    After :meth:`fit`: ``trace_`` (one row per sweep), ``samples_`` (with
    ``keep_samples``: ``"w0"``, ``"w"``, ``"V"`` and, for ``task="ordinal"``,
    ``"cutpoints"``), ``test_prediction_`` (and ``test_proba_`` for classification and
    ordinal) when ``X_test`` was given: what :meth:`predict` (:meth:`predict_proba`) of
    ``X_test`` returns, averaged over the same sweeps; ``classes_`` (ordinal),
    ``acceptance_rate_`` (ordinal: of the cut-point Metropolis-Hastings steps),
    ``n_features_in_``, ``groups_`` (group names).

    Example:
        >>> X, y, _ = fmlib.rendle_figure1()
        >>> bfm = BayesianFM(k=2, num_sweeps=50, seed=0).fit(X, y)
        >>> bfm.predict(X).shape
        (7,)
    """

    def __init__(
        self,
        k: int = 8,
        num_sweeps: int = 200,
        burn_in: int | None = None,
        task: str = "regression",
        groups: Any = None,
        init_std: float = 0.1,
        seed: int | None = None,
        keep_samples: bool = True,
    ):
        self.k = k
        self.num_sweeps = num_sweeps
        self.burn_in = burn_in
        self.task = task
        self.groups = groups
        self.init_std = init_std
        self.seed = seed
        self.keep_samples = keep_samples

    # --- checks --------------------------------------------------------------------------
    def _check_params(self) -> int:
        check_int(self.k, "k")
        check_int(self.num_sweeps, "num_sweeps")
        check_float(self.init_std, "init_std")
        if not (isinstance(self.task, str) and self.task in TASKS):
            raise ValueError(f"`task` must be one of {TASKS}; got {self.task!r}.")
        if not isinstance(self.keep_samples, (bool, np.bool_)):
            raise TypeError(
                f"`keep_samples` must be True or False; got "
                f"{type(self.keep_samples).__name__} {self.keep_samples!r}."
            )
        check_seed(self.seed)
        burn_in = (
            self.num_sweeps // 10
            if self.burn_in is None
            else check_int(self.burn_in, "burn_in", minimum=0)
        )
        if burn_in >= self.num_sweeps:
            raise ValueError(
                f"`burn_in` must be smaller than `num_sweeps` ({self.num_sweeps}) "
                f"so that some samples are kept; got {burn_in}."
            )
        return burn_in

    def _targets(self, y, n_rows: int, name: str) -> np.ndarray:
        """Checked targets; for ``task="ordinal"`` the class index of every value (the
        classes are ``classes_``, set by :meth:`fit` from ``y``)."""
        y = as_targets(y, n_rows, name=name)
        if self.task != "ordinal":
            return as_labels(y, self.task, name)
        if name == "y":
            self.classes_ = np.unique(y)
            if self.classes_.size < 2:
                raise ValueError(
                    f"`y` for task='ordinal' needs at least two distinct "
                    f"ratings; got only {self.classes_.tolist()}."
                )
        codes = np.minimum(np.searchsorted(self.classes_, y), self.classes_.size - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(
                f"`{name}` has ratings that are not classes of the training "
                f"ratings {self.classes_.tolist()}: e.g. {float(y[unknown][0])!r}."
            )
        return codes

    def _matrix(self, X, name: str) -> sp.csr_matrix | RelationalDesign:
        n = getattr(self, "n_features_in_", None)
        X = as_host_matrix(X, n, tf.float64, name=name)
        return X if isinstance(X, RelationalDesign) else sp.csr_matrix(X)

    # --- training -----------------------------------------------------------------------
    def fit(self, X, y, X_test=None, y_test=None, on_sweep=None) -> "BayesianFM":
        """Run the sampler on ``(X, y)``.

        With ``X_test`` the predictions for its rows are accumulated sweep by sweep after
        burn-in (``test_prediction_``, ``test_proba_``), whether or not samples are
        kept; with ``y_test`` too, the trace also records the test metric of every sample
        and of the running posterior mean.

        ``X`` (and ``X_test``, and later the argument of :meth:`predict`) may be a
        :class:`~fmlib.RelationalDesign`: the sweeps then run on its relation
        blocks (:mod:`fmlib.solvers.sweeper`) and give the flat matrix's samples.

        ``on_sweep``, if given, is called after every sweep with that sweep's row of
        ``trace_`` (a dict, ``"sweep"`` counted from 1), so that progress can be shown
        while the sampler runs (``python -m fmlib -task o`` prints a line per sweep)."""
        burn_in = self._check_params()
        if on_sweep is not None and not callable(on_sweep):
            raise TypeError(
                f"`on_sweep` must be callable or None; got {type(on_sweep).__name__}."
            )
        fitted = (
            "n_features_in_",
            "groups_",
            "samples_",
            "classes_",
            "test_prediction_",
            "test_proba_",
            "acceptance_rate_",
            "trace_",
        )
        previous = {name: self.__dict__.get(name) for name in fitted}
        for attr in fitted[:-1]:
            if attr != "groups_":
                self.__dict__.pop(attr, None)
        X = self._matrix(X, "X")
        if X.shape[0] == 0:
            raise ValueError("`X` has no rows; there is nothing to train on.")
        y = self._targets(y, X.shape[0], "y")
        self.n_features_in_ = X.shape[1]
        test = None
        if X_test is None and y_test is not None:
            raise ValueError(
                "`y_test` was given without `X_test`; give both, or "
                "`X_test` alone for its predictions."
            )
        if X_test is not None:
            Xt = self._matrix(X_test, "X_test")
            yt = (
                None if y_test is None else self._targets(y_test, Xt.shape[0], "y_test")
            )
            width = (self.classes_.size,) if self.task == "ordinal" else ()
            test = (Xt, yt, np.zeros((Xt.shape[0],) + width))
        group = column_groups(self.groups, X.shape[1])
        self.groups_ = (
            list(self.groups)
            if isinstance(self.groups, Mapping)
            else ["all"]
            if self.groups is None
            else [str(g) for g in np.unique(np.asarray(self.groups))]
        )
        try:
            self._run(X, y, group, burn_in, test, on_sweep)
        except (
            KeyboardInterrupt
        ):  # the samples and trace are set only when the run completes
            for name, value in previous.items():
                if value is None:
                    self.__dict__.pop(name, None)
                else:
                    setattr(self, name, value)
            raise TrainingInterrupted(
                "BayesianFM.fit was interrupted (Ctrl-C) while sampling; the estimator is as it "
                "was before this fit (no new samples kept). Use fewer `num_sweeps` for a "
                "shorter run."
            ) from None
        return self

    def _settings(self) -> str:
        """The arguments the user passed that shape the sampler, for divergence messages."""
        return (
            f"BayesianFM(k={self.k}, num_sweeps={self.num_sweeps}, init_std={self.init_std}, "
            f"task={self.task!r})"
        )

    def _run(self, X, y, group, burn_in, test, on_sweep=None) -> None:
        rng = np.random.default_rng(self.seed)
        n, k, G = X.shape[1], self.k, len(self.groups_)
        classify, ordinal = self.task == "classification", self.task == "ordinal"
        V0 = rng.normal(0.0, self.init_std, (n, k))
        targets, cut = y, None
        if classify:
            targets = np.where(y > 0, 1.0, -1.0)
        elif ordinal:  # cut-points at the class frequencies, latents inside them
            theta = ordinal_solver.initial_theta(y, self.classes_.size)
            cut = ordinal_solver.cutpoints_from_theta(theta)
            targets = ordinal_solver.draw_latents(rng, np.zeros(y.size), y, cut)
        sweeper = make_sweeper(X, targets, 0.0, np.zeros(n), V0, self.groups)
        alpha, mu_w, lam_w = 1.0, np.zeros(G), np.ones(G)
        mu_v, lam_v = np.zeros((G, k)), np.ones((G, k))
        lam_w0 = W0_PRECISION_ORDINAL if ordinal else 0.0
        kept = {"w0": [], "w": [], "V": []} | ({"cutpoints": []} if ordinal else {})
        rows, accepted = [], 0
        for sweep in range(1, self.num_sweeps + 1):
            sweeper.refresh()
            if classify:
                sweeper.set_targets(
                    draw_latent_targets(rng, sweeper.predictions(), y > 0)
                )
            elif ordinal:
                y_hat = sweeper.predictions()
                theta, ok = ordinal_solver.draw_cutpoints(rng, theta, y_hat, y)
                accepted += ok
                cut = ordinal_solver.cutpoints_from_theta(theta)
                sweeper.set_targets(ordinal_solver.draw_latents(rng, y_hat, y, cut))
            else:
                alpha = draw_alpha(rng, sweeper.e)
            sweeper.update_w0(alpha, lam_w0, 0.0, rng.standard_normal(), sample=True)
            mu_w, lam_w = draw_normal_gamma(rng, sweeper.w, group, G, mu_w)
            sweeper.update_w(
                alpha, mu_w[group], lam_w[group], rng.standard_normal(n), True
            )
            mu_v, lam_v = draw_normal_gamma(rng, sweeper.V, group, G, mu_v)
            sweeper.update_V(
                alpha, mu_v[group], lam_v[group], rng.standard_normal((n, k)), True
            )
            weights = sweeper.weights()
            check_solver_weights(weights, f"in MCMC sweep {sweep}", self._settings())
            if sweep > burn_in and self.keep_samples:
                for key, value in weights.items():
                    kept[key].append(value)
                if ordinal:
                    kept["cutpoints"].append(cut)
            row = self._trace_row(
                sweep,
                sweep - burn_in,
                alpha,
                sweeper,
                y,
                test,
                (mu_w, lam_w, mu_v, lam_v),
                weights,
                cut,
            )
            if ordinal:
                row["acceptance"] = accepted / sweep
            rows.append(row)
            if on_sweep is not None:
                on_sweep(dict(row))
        if self.keep_samples:
            self.samples_ = {key: np.array(value) for key, value in kept.items()}
        if ordinal:
            self.acceptance_rate_ = accepted / self.num_sweeps
        if test is not None:
            self._set_test_predictions(test[2] / (self.num_sweeps - burn_in))
        self.trace_ = pd.DataFrame(rows).set_index("sweep")

    def _set_test_predictions(self, mean: np.ndarray) -> None:
        if self.task == "regression":
            self.test_prediction_ = mean
        else:
            self.test_proba_ = mean
            self.test_prediction_ = self._from_proba(mean)

    def _trace_row(
        self, sweep, n_kept, alpha, sweeper, y, test, hyper, weights, cut
    ) -> dict[str, float]:
        mu_w, lam_w, mu_v, lam_v = hyper
        row = {"sweep": sweep, "alpha": alpha, "w0": sweeper.w0}
        if cut is not None:
            row.update({f"cutpoint[{j + 1}]": c for j, c in enumerate(cut)})
        for g, name in enumerate(self.groups_):
            row.update(
                {
                    f"mu_w[{name}]": mu_w[g],
                    f"lambda_w[{name}]": lam_w[g],
                    f"mu_v[{name}]": mu_v[g].mean(),
                    f"lambda_v[{name}]": lam_v[g].mean(),
                }
            )
        if self.task == "ordinal":  # the class of the latent's mean: cheap, O(N)
            row["train_accuracy"] = float(
                np.mean(np.searchsorted(cut, sweeper.predictions()) == y)
            )
        else:
            metric = "accuracy" if self.task == "classification" else "rmse"
            row[f"train_{metric}"] = self._metric(
                y, sweeper.predictions(), overwrite=True
            )
        if test is None:
            return row
        Xt, yt, total = test
        if yt is None and n_kept <= 0:
            return row
        sample = self._link(self._scores(Xt, weights), cut)
        if n_kept > 0:
            total += sample
        if yt is not None:
            metric = "accuracy" if self.task == "classification" else "rmse"
            row[f"test_{metric}"] = self._test_metric(yt, sample)
            row[f"test_{metric}_mean"] = (
                self._test_metric(yt, total / n_kept) if n_kept > 0 else np.nan
            )
        return row

    def _test_metric(self, y: np.ndarray, mean: np.ndarray) -> float:
        """Accuracy of :math:`P(y=1) > 1/2`, or RMSE of the (expected) rating."""
        if self.task == "classification":
            return float(np.mean((mean > 0.5) == (y > 0)))
        if self.task == "ordinal":
            y, mean = self.classes_[y], self._from_proba(mean)
        return self._metric(y, mean)

    def _metric(
        self, y: np.ndarray, y_hat: np.ndarray, overwrite: bool = False
    ) -> float:
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

    def _link(self, score: np.ndarray, cut: np.ndarray | None) -> np.ndarray:
        """What is averaged over the samples: ŷ, :math:`\\Phi(\\hat y)`, or the ``(N, K)``
        class probabilities of the sample's cut-points."""
        if self.task == "regression":
            return score
        if self.task == "classification":
            return ndtr(score)
        return ordinal_solver.class_probabilities(score, cut)

    def _from_proba(self, proba: np.ndarray, most_probable: bool = False) -> np.ndarray:
        if self.task == "classification":
            return (proba > 0.5).astype(np.int64)
        if most_probable:
            return self.classes_[np.argmax(proba, axis=1)]
        return ordinal_solver.expected_value(proba, self.classes_)

    def _posterior_mean(self, X) -> np.ndarray:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError("call fit before predicting.")
        if not hasattr(self, "samples_"):
            raise RuntimeError(
                "this model was fitted with keep_samples=False and kept no "
                "samples to predict with; its predictions for the X_test given "
                "to fit are test_prediction_ (and test_proba_)."
            )
        X = self._matrix(X, "X")
        S = len(self.samples_["w0"])
        cuts = self.samples_.get("cutpoints", [None] * S)
        total = 0.0
        for s in range(S):
            weights = {key: self.samples_[key][s] for key in ("w0", "w", "V")}
            total = total + self._link(self._scores(X, weights), cuts[s])
        return np.asarray(total) / S

    def predict(self, X, most_probable: bool = False) -> np.ndarray:
        """Regression: the posterior mean of ŷ over the kept samples. Classification: the
        label, 1 where :meth:`predict_proba` > 0.5, else 0. Ordinal: the expected rating
        :math:`\\sum_j P(y = \\text{class}_j)\\,\\text{class}_j`, or with
        ``most_probable=True`` the class of the largest :meth:`predict_proba`."""
        if most_probable and self.task != "ordinal":
            raise ValueError(
                f"`most_probable` is for task='ordinal'; this model's task is "
                f"{self.task!r}."
            )
        if self.task == "regression":
            return self._posterior_mean(X)
        return self._from_proba(self.predict_proba(X), most_probable)

    def predict_proba(self, X) -> np.ndarray:
        r"""Classification: :math:`P(y = 1 \mid \mathbf x)`, the mean of
        :math:`\Phi(\hat y)` over the kept samples; shape ``(N,)``. Ordinal: the class
        probabilities :math:`\Phi(c_{j+1} - \hat y) - \Phi(c_j - \hat y)` averaged over the
        samples; shape ``(N, K)``, columns in the order of ``classes_``."""
        if self.task == "regression":
            raise AttributeError(
                "predict_proba is for task='classification' or 'ordinal'; "
                "this model was made for regression."
            )
        return self._posterior_mean(X)

    def __repr__(self) -> str:
        return (
            f"BayesianFM(k={self.k}, num_sweeps={self.num_sweeps}, burn_in={self.burn_in}, "
            f"task={self.task!r})"
        )
