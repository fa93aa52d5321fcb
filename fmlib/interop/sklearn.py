r"""scikit-learn estimators: :class:`FMRegressor`, :class:`FMClassifier` and
:class:`FMOrdinalRegressor`.

They wrap fmlib's solvers behind the estimator contract, so that a Factorization Machine
(Rendle 2010, eq. 1)

.. math::

    \hat y(\mathbf x) = w_0 + \sum_{i=1}^{n} w_i x_i
        + \sum_{i=1}^{n} \sum_{j=i+1}^{n} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j

drops into a ``Pipeline``, ``GridSearchCV`` or ``cross_val_score``. Every hyper-parameter is
a constructor argument, ``fit`` does the work and sets the trailing-underscore attributes.
``solver`` picks the training method: ``"adam"``, ``"sgd"``, ``"adagrad"`` (minibatch
gradient descent, :func:`fmlib.fit`), ``"als"`` (coordinate descent, regression only,
:func:`fmlib.fit` with ``solver="als"``) or ``"mcmc"`` (Gibbs sampling,
:class:`fmlib.BayesianFM`). :class:`FMOrdinalRegressor` fits ordered ratings with the
ordered probit model of :mod:`fmlib.solvers.ordinal` (Gibbs sampling, the registry's
``"mcmc"`` solver with ``task="ordinal"``). Chapter "Using fmlib with scikit-learn and
libFM files".
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator

import numpy as np
import pandas as pd
import tensorflow as tf
from scipy.special import ndtri
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from fmlib.learning.optimizers import OPTIMIZERS
from fmlib.model.fm import FactorizationMachine
from fmlib.solvers.fit import fit
from fmlib.solvers.mcmc import BayesianFM
from fmlib.solvers.registry import resolve
from fmlib.validation import check_float, check_learning_rate, check_seed

SOLVERS = ("adam", "sgd", "adagrad", "als", "mcmc")
# the estimator's arguments that are hyper-parameters of a solver in fmlib.solvers.registry
_SOLVER_PARAMS = (
    "num_epochs",
    "batch_size",
    "lr",
    "lambda_w",
    "lambda_v",
    "burn_in",
    "groups",
    "updates",
    "regularization",
)


def _same(value, default) -> bool:
    """Whether an argument was left at its default (same type and equal value)."""
    if default is None:
        return value is None
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):
        return False


_OPTIMIZERS = OPTIMIZERS  # the gradient solvers go by their optimizer's name


def check_solver(solver: Any, task: str) -> str:
    """``solver`` if it is one of :data:`SOLVERS` and can train ``task``, else ValueError."""
    if not (isinstance(solver, str) and solver in SOLVERS):
        raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
    if task == "ordinal" and solver != "mcmc":
        raise ValueError(
            f"`solver` must be 'mcmc' for ordinal ratings (the ordered probit model is "
            f"sampled by Gibbs sampling); got {solver!r}."
        )
    if solver == "als" and task == "classification":
        raise ValueError(
            "`solver='als'` trains regression models (squared loss); for a "
            "classifier use 'adam', 'sgd', 'adagrad' or 'mcmc'."
        )
    return solver


def train_epochs(
    model: FactorizationMachine,
    X,
    y: np.ndarray,
    *,
    solver: str,
    task: str,
    num_epochs: int,
    batch_size: int = 256,
    lr: float = 0.01,
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
    groups: Any = None,
    seed: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Train ``model`` with :func:`fmlib.fit`, one epoch per step of the iteration.

    Yields each epoch's one-row history, so that a caller (the command line) can evaluate
    the model between epochs. The result equals one ``fit(..., num_epochs=num_epochs,
    seed=seed)`` call: for the gradient solvers the rows are permuted here with
    ``numpy.random.default_rng(seed)`` exactly as ``fit`` permutes them, and one Keras
    optimizer carries its state from epoch to epoch; ALS needs no state but the weights.
    """
    if solver == "als":
        for _ in range(num_epochs):
            yield fit(
                model,
                X,
                y,
                solver="als",
                task=task,
                num_epochs=1,
                lambda_w=lambda_w,
                lambda_v=lambda_v,
                groups=groups,
            )
        return
    lr = check_learning_rate(lr)
    optimizer = _OPTIMIZERS[solver](learning_rate=lr)
    rng = np.random.default_rng(seed)
    for _ in range(num_epochs):
        order = rng.permutation(X.shape[0])
        yield fit(
            model,
            X[order],
            y[order],
            task=task,
            num_epochs=1,
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,  # not used by an optimizer instance; quoted if training diverges
            lambda_w=lambda_w,
            lambda_v=lambda_v,
            shuffle=False,
        )


class _FMEstimator(BaseEstimator):
    """What the regressor and the classifier share: parameters, fitting, pickling."""

    _task = "regression"

    def __init__(
        self,
        k: int = 8,
        solver: str = "adam",
        num_epochs: int = 10,
        batch_size: int = 256,
        lr: float = 0.01,
        lambda_w: float = 0.0,
        lambda_v: float = 0.0,
        init_std: float = 0.1,
        burn_in: int | None = None,
        groups: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        updates: str | None = None,
        regularization: str | None = None,
    ):
        self.k = k
        self.solver = solver
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lambda_w = lambda_w
        self.lambda_v = lambda_v
        self.init_std = init_std
        self.burn_in = burn_in
        self.groups = groups
        self.random_state = random_state
        self.warm_start = warm_start
        self.updates = updates
        self.regularization = regularization

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _seed(self) -> int | None:
        """An int ``random_state`` is fmlib's ``seed`` as it is; a ``RandomState`` gives one."""
        state = self.random_state
        if state is None or isinstance(state, (int, np.integer)):
            return check_seed(state, "random_state")
        return int(check_random_state(state).randint(np.iinfo(np.int32).max))

    def _fit(self, X, y: np.ndarray) -> None:
        """Train on validated ``X`` and targets ``y`` (classification: 0/1), in one call."""
        solver = check_solver(self.solver, self._task)
        kind, params = self._solver_params(solver)
        seed = self._seed()
        check_float(self.init_std, "init_std")
        if kind == "mcmc":
            self.fm_ = BayesianFM(
                self.k,
                num_sweeps=params["num_epochs"],
                burn_in=params["burn_in"],
                task=self._task,
                groups=params["groups"],
                init_std=self.init_std,
                seed=seed,
            ).fit(X, y)
            self.history_ = self.fm_.trace_
            return
        dtype = tf.float64 if kind == "als" else tf.float32
        previous = getattr(self, "fm_", None)
        if (
            self.warm_start
            and isinstance(previous, FactorizationMachine)
            and previous.dtype == dtype
            and previous.k == self.k
        ):
            model, history = previous, [self.history_]
        else:
            model = FactorizationMachine(
                X.shape[1], self.k, init_std=self.init_std, seed=seed, dtype=dtype
            )
            history = []
        if kind == "gradient":
            params["seed"] = (
                seed  # the shuffling (ALS is deterministic: the seed draws V only)
            )
        history.append(fit(model, X, y, solver=kind, task=self._task, **params))
        self._store(model, history)

    def _solver_params(self, solver: str) -> tuple[str, dict]:
        """The registry's solver for ``solver`` and its hyper-parameters from this estimator.

        A hyper-parameter changed from its default that the solver does not use is a
        ValueError naming it (a default left alone is not an error).
        """
        kind = "gradient" if solver in _OPTIMIZERS else solver
        defaults = {
            name: p.default
            for name, p in inspect.signature(_FMEstimator.__init__).parameters.items()
        }
        mine = inspect.signature(type(self).__init__).parameters
        given = {
            name: getattr(self, name)
            for name in _SOLVER_PARAMS
            if name in mine and not _same(getattr(self, name), defaults[name])
        }
        given["num_epochs"] = self.num_epochs  # every solver takes it (MCMC: sweeps)
        if kind == "gradient":
            given["optimizer"] = solver
        params = resolve(kind, given, self._task)
        for name in ("seed", "shuffle", "init_std"):
            params.pop(name, None)
        return kind, params

    def _store(self, model: FactorizationMachine, history: list) -> None:
        self.fm_ = model
        self.history_ = pd.concat(history, ignore_index=True).rename_axis("epoch")
        self.history_.index += 1

    def _validate_fit(self, X, y, **kwargs):
        """``validate_data`` for ``fit``; a warm start keeps the fitted width."""
        warm = (
            getattr(self, "warm_start", False)
            and hasattr(self, "fm_")
            and self.solver != "mcmc"
        )
        return validate_data(self, X, y, accept_sparse="csr", reset=not warm, **kwargs)

    def _scores(self, X) -> np.ndarray:
        """Regression: ŷ. Classification: P(y = 1 | x) (MCMC) or the logit ŷ (others)."""
        check_is_fitted(self, "fm_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        if isinstance(self.fm_, BayesianFM) and self._task == "classification":
            return self.fm_.predict_proba(X)
        return np.asarray(self.fm_.predict(X), np.float64)

    # --- pickling: a FactorizationMachine holds tf.Variables and compiled steps ----------
    def __getstate__(self) -> dict:
        state = dict(
            super().__getstate__()
        )  # a copy: the default is self.__dict__ itself
        fm = state.get("fm_")
        if isinstance(fm, FactorizationMachine):
            state["fm_"] = {
                "n_features": fm.n_features,
                "k": fm.k,
                "dtype": fm.dtype.name,
                "task": fm.task,
                "weights": fm.get_weights(),
            }
        return state

    def __setstate__(self, state: dict) -> None:
        fm = state.get("fm_")
        if isinstance(fm, dict):
            model = FactorizationMachine(
                fm["n_features"], fm["k"], dtype=fm["dtype"], task=fm["task"]
            )
            model.set_weights(**fm["weights"])
            state = {**state, "fm_": model}
        super().__setstate__(state)


class FMRegressor(RegressorMixin, _FMEstimator):
    r"""A Factorization Machine for regression, as a scikit-learn estimator.

    Minimises the squared loss of eq. (1) with the chosen ``solver``; see the module
    docstring and chapter "Using fmlib with scikit-learn and libFM files".

    Args:
        k: number of latent factors (columns of ``V``).
        solver: ``"adam"`` (default), ``"sgd"``, ``"adagrad"`` (minibatches, :func:`fmlib.fit`),
            ``"als"`` (coordinate descent) or ``"mcmc"`` (:class:`fmlib.BayesianFM`).
        num_epochs: passes over the data (ALS and MCMC: sweeps).
        batch_size: rows per step (gradient solvers).
        lr: learning rate (gradient solvers).
        lambda_w, lambda_v: L2 strengths of ``w`` and ``V`` (not used by MCMC, which samples
            them). The gradient solvers penalise the *mean* loss, ALS the *sum* (libFM's
            convention): see :func:`fmlib.fit`.
        init_std: standard deviation of the initial ``V`` (libFM's ``-init_stdev``).
        burn_in: MCMC only: sweeps discarded (default ``num_epochs // 10``).
        groups: ALS and MCMC: the feature groups (``FeatureEncoder.groups_``, or one label
            per column); MCMC gives each group its own prior.
        random_state: None, an int (used as fmlib's ``seed``: the same int gives the same
            model), or a ``numpy.random.RandomState``.
        warm_start: gradient solvers and ALS: a second ``fit`` continues from the fitted
            weights (same ``k``, same number of columns) instead of starting again. MCMC
            always starts a new chain.
        updates: gradient solvers: ``"sparse"`` (row-sparse steps whose cost follows the
            non-zeros, lazy Adam and Adagrad) or ``"dense"``; None (default) follows
            :func:`fmlib.fit`: ``"sparse"`` for sparse ``X``, ``"dense"`` for arrays.
        regularization: with ``updates="sparse"``: ``"present"`` (default), ``"occurrence"``
            or ``"global"`` (SGD only), as in :func:`fmlib.fit`.

    Attributes:
        fm_: the trained :class:`fmlib.FactorizationMachine`, or the :class:`fmlib.BayesianFM`
            for ``solver="mcmc"``.
        history_: one row per epoch (the ``fit`` history), or the sampler's ``trace_``.
        n_features_in_, feature_names_in_: as in scikit-learn (the latter for DataFrames
            with string column names).

    ``sklearn.utils.estimator_checks``: all pass. Deliberately not run in
    ``tests/interop/test_interop.py``: ``check_array_api_input`` (fmlib computes with NumPy and
    TensorFlow, not through the array API). ``check_sample_weight*`` do not apply (``fit``
    takes no ``sample_weight``). The test suite runs every check with ``solver="als"``
    (regressor) and ``"mcmc"`` (classifier), and the training and prediction checks with
    the gradient solvers, whose full run is slow (a compiled step per fitted model).

    Example:
        >>> X, y, _ = fmlib.rendle_figure1()
        >>> est = FMRegressor(k=2, solver="als", num_epochs=5, random_state=0)
        >>> est.fit(X, y).predict(X).shape
        (7,)
    """

    _task = "regression"

    def fit(self, X, y) -> "FMRegressor":
        """Train on ``X`` (dense or ``scipy.sparse``, ``(N, n)``) and targets ``y`` ``(N,)``."""
        X, y = self._validate_fit(X, y, y_numeric=True)
        self._fit(X, np.asarray(y, np.float64))
        return self

    def predict(self, X) -> np.ndarray:
        """ŷ (eq. 1) for every row of ``X``; float64 of shape ``(N,)``."""
        return self._scores(X)


class FMClassifier(ClassifierMixin, _FMEstimator):
    r"""A Factorization Machine for binary classification, as a scikit-learn estimator.

    The gradient solvers minimise the logistic loss of the logit ŷ (eq. 1),
    :math:`P(y = c_1 \mid \mathbf x) = \sigma(\hat y)`; ``solver="mcmc"`` uses the probit link,
    :math:`P = \Phi(\hat y)` averaged over the samples. ``"als"`` is refused (squared loss).
    Labels may be any two values; ``classes_`` holds them sorted, and the second is the
    positive class. The arguments and attributes are :class:`FMRegressor`'s, plus ``classes_``.

    ``sklearn.utils.estimator_checks``: as for :class:`FMRegressor`. The classifier is
    tagged binary-only (``multi_class=False``), so the checks use two classes, and more than
    two is a ``ValueError``.
    """

    _task = "classification"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y) -> "FMClassifier":
        """Train on ``X`` and labels ``y`` (exactly two distinct values)."""
        X, y = self._validate_fit(X, y)
        check_classification_targets(y)
        if type_of_target(y, input_name="y") != "binary":
            raise ValueError(
                "Only binary classification is supported: FMClassifier's `y` must "
                "hold two classes; got the target type "
                f"{type_of_target(y, input_name='y')!r}."
            )
        classes, y01 = np.unique(y, return_inverse=True)
        if classes.size != 2:
            raise ValueError(
                "FMClassifier is a binary classifier: `y` must hold exactly two "
                f"classes; got {classes.size} class(es): {classes[:5].tolist()}."
            )
        if (
            self.warm_start
            and hasattr(self, "classes_")
            and not np.array_equal(classes, self.classes_)
        ):
            raise ValueError(
                f"warm_start: `y` has classes {classes.tolist()}, but the model "
                f"was fitted with {self.classes_.tolist()}."
            )
        self.classes_ = classes
        self._fit(X, y01.astype(np.float64))
        return self

    def decision_function(self, X) -> np.ndarray:
        r"""The logit ŷ (gradient solvers) or :math:`\Phi^{-1}(P)` (MCMC): > 0 means
        ``classes_[1]``; shape ``(N,)``."""
        scores = self._scores(X)
        if isinstance(self.fm_, BayesianFM):
            return ndtri(np.clip(scores, 1e-12, 1 - 1e-12))
        return scores

    def predict_proba(self, X) -> np.ndarray:
        """``(N, 2)``: the probabilities of ``classes_[0]`` and ``classes_[1]``."""
        scores = self._scores(X)
        p = (
            scores
            if isinstance(self.fm_, BayesianFM)
            else 1.0 / (1.0 + np.exp(-scores))
        )
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, X) -> np.ndarray:
        """The class of every row: ``classes_[1]`` where :meth:`decision_function` > 0."""
        check_is_fitted(self, "fm_")
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


class FMOrdinalRegressor(RegressorMixin, _FMEstimator):
    r"""A Bayesian Factorization Machine for ordered ratings, as a scikit-learn estimator.

    The ordered probit model (chapter "Star ratings and variational inference",
    :mod:`fmlib.solvers.ordinal`): a latent :math:`z \sim \mathcal N(\hat y(\mathbf x),
    1)` with :math:`\hat y` of eq. (1), and the rating is the :math:`j`-th class when
    :math:`\tau_{j-1} < z \le \tau_j`, so that

    .. math::

        \begin{aligned}
        P(y = \text{class}_j \mid \mathbf x) &= \Phi(\tau_j - \hat y(\mathbf x)) \\
            &\quad - \Phi(\tau_{j-1} - \hat y(\mathbf x)), \\
        \tau_0 &= -\infty,\quad \tau_K = +\infty,
        \end{aligned}

    averaged over the Gibbs samples of :math:`(w_0, \mathbf w, \mathbf V, \boldsymbol\tau)`
    (:class:`fmlib.BayesianFM` with ``task="ordinal"``, the registry's ``"mcmc"``
    solver; the only one that trains this model). The classes are the sorted distinct
    values of ``y`` (e.g. the five stars).

    Args:
        k: number of latent factors.
        solver: ``"mcmc"`` (the only one; kept as an argument so that the estimator
            goes through the solver registry like the others).
        num_epochs: Gibbs sweeps (default 200, :class:`fmlib.BayesianFM`'s).
        burn_in: sweeps discarded (default ``num_epochs // 10``).
        init_std: standard deviation of the initial ``V``.
        groups: the prior group of every column (``FeatureEncoder.groups_`` or one
            label per column).
        random_state: None, an int (fmlib's ``seed``) or a ``numpy.random.RandomState``.

    Attributes:
        classes_: the sorted distinct ratings of the training ``y``.
        fm_: the fitted :class:`fmlib.BayesianFM`; ``history_``: its ``trace_``.
        n_features_in_, feature_names_in_: as in scikit-learn.

    :meth:`predict` is the expected rating :math:`\sum_j P(y = \text{class}_j)\,
    \text{class}_j` (so ``score`` is the :math:`R^2` of a regressor), ``predict(X,
    most_probable=True)`` the most probable class, :meth:`predict_proba` the class
    probabilities.

    Example:
        >>> X, y, _ = fmlib.rendle_figure1()
        >>> est = FMOrdinalRegressor(k=2, num_epochs=20, random_state=0).fit(X, y)
        >>> est.predict_proba(X).shape, est.classes_.tolist()
        ((7, 3), [1.0, 4.0, 5.0])
    """

    _task = "ordinal"

    def __init__(
        self,
        k: int = 8,
        solver: str = "mcmc",
        num_epochs: int = 200,
        burn_in: int | None = None,
        init_std: float = 0.1,
        groups: Any = None,
        random_state: Any = None,
    ):
        self.k = k
        self.solver = solver
        self.num_epochs = num_epochs
        self.burn_in = burn_in
        self.init_std = init_std
        self.groups = groups
        self.random_state = random_state

    def fit(self, X, y) -> "FMOrdinalRegressor":
        """Train on ``X`` (dense or ``scipy.sparse``, ``(N, n)``) and ratings ``y``
        ``(N,)`` with at least two distinct values."""
        X, y = self._validate_fit(X, y, y_numeric=True)
        y = np.asarray(y, np.float64)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                f"FMOrdinalRegressor needs at least two distinct ratings in `y`; got "
                f"one class: {classes.tolist()}."
            )
        self.classes_ = classes
        self._fit(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(N, K)``: the probability of every class, columns in the order of
        ``classes_``, averaged over the kept samples."""
        check_is_fitted(self, "fm_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        return self.fm_.predict_proba(X)

    def predict(self, X, most_probable: bool = False) -> np.ndarray:
        """The expected rating of every row, float64 ``(N,)``; with
        ``most_probable=True`` the class of the largest :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        if most_probable:
            return self.classes_[np.argmax(proba, axis=1)]
        return proba @ self.classes_
