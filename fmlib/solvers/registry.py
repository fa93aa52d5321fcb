"""The solver registry: every solver's hyper-parameters, declared once and checked once.

``fmlib.fit``, the scikit-learn estimators (:class:`fmlib.FMRegressor`,
:class:`fmlib.FMClassifier`), :class:`fmlib.BayesianFM` and the command line all look a
solver up here. Each solver declares the hyper-parameters it uses, with a default and a
constraint, in the manner of scikit-learn's parameter constraints:

=============  =============================================================================
solver         hyper-parameters
=============  =============================================================================
``gradient``   ``num_epochs``, ``batch_size``, ``optimizer``, ``lr``, ``lambda_w``,
               ``lambda_v``, ``updates``, ``regularization``, ``shuffle``, ``seed``
``als``        ``num_epochs``, ``lambda_w``, ``lambda_v``, ``groups``
``mcmc``       ``num_epochs`` (sweeps), ``burn_in``, ``groups``, ``init_std``, ``seed``;
               the only solver of ``task="ordinal"``
=============  =============================================================================

:func:`resolve` checks the values a caller set (each against its constraint, the message
naming the argument, what was expected and what was given), refuses a hyper-parameter the
chosen solver does not use, and fills in the defaults of the others. A value left at
None counts as not set.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import keras

from fmlib.learning.optimizers import OPTIMIZERS
from fmlib.learning.sparse import REGULARIZATIONS
from fmlib.validation import check_float, check_int, check_learning_rate, check_seed

UPDATES = ("dense", "sparse")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its default and the check that returns the value or raises."""

    default: Any
    check: Callable[[Any, str], Any]
    doc: str


@dataclass(frozen=True)
class Solver:
    """A solver: its name, the tasks it trains and its hyper-parameters."""

    name: str
    tasks: tuple[str, ...]
    params: dict[str, Param]
    doc: str


def _positive_int(value, name):
    return check_int(value, name, 1)


def _non_negative_int(value, name):
    return check_int(value, name, 0)


def _non_negative_float(value, name):
    return check_float(value, name)


def _one_of(*choices):
    def check(value, name):
        if not (isinstance(value, str) and value in choices):
            raise ValueError(f"`{name}` must be one of {choices}; got {value!r}.")
        return value

    return check


def _optimizer(value, name):
    if isinstance(value, keras.optimizers.Optimizer):
        return value
    if isinstance(value, str):
        if value.lower() not in OPTIMIZERS:
            raise ValueError(
                f"`{name}` must be one of {sorted(OPTIMIZERS)} or a Keras "
                f"optimizer; got {value!r}."
            )
        return value.lower()
    raise TypeError(
        f"`{name}` must be a name or a keras.optimizers.Optimizer; "
        f"got {type(value).__name__}."
    )


def _anything(
    value, name
):  # checked where it is used (it needs the data: shuffle, groups)
    return value


NUM_EPOCHS = Param(10, _positive_int, "passes over the data (ALS, MCMC: sweeps)")
LAMBDA_W = Param(0.0, _non_negative_float, "L2 strength of w")
LAMBDA_V = Param(0.0, _non_negative_float, "L2 strength of V")
GROUPS = Param(
    None, _anything, "feature groups (FeatureEncoder.groups_ or a label per column)"
)
SEED = Param(None, check_seed, "seed of the random numbers")

# chapters: gradient, "Learning" and "Performance and scale"; als and mcmc, "Beyond SGD:
# coordinate descent and MCMC"

SOLVERS: dict[str, Solver] = {
    "gradient": Solver(
        "gradient",
        ("regression", "classification"),
        {
            "num_epochs": NUM_EPOCHS,
            "batch_size": Param(256, _positive_int, "rows per step"),
            "optimizer": Param(
                "adam", _optimizer, "'adam', 'sgd', 'adagrad' or a Keras optimizer"
            ),
            "lr": Param(
                0.01, check_learning_rate, "learning rate of a named optimizer"
            ),
            "lambda_w": LAMBDA_W,
            "lambda_v": LAMBDA_V,
            "updates": Param(
                None, _one_of(*UPDATES), "'dense' or 'sparse' (row-sparse steps)"
            ),
            "regularization": Param(
                None,
                _one_of(*REGULARIZATIONS),
                "which rows carry the penalty (updates='sparse')",
            ),
            "shuffle": Param(
                True, _anything, "reshuffle every epoch, or a BlockChunks"
            ),
            "seed": SEED,
        },
        "minibatch gradient descent",
    ),
    "als": Solver(
        "als",
        ("regression",),
        {
            "num_epochs": NUM_EPOCHS,
            "lambda_w": LAMBDA_W,
            "lambda_v": LAMBDA_V,
            "groups": GROUPS,
        },
        "coordinate descent on the sum of squared errors",
    ),
    "mcmc": Solver(
        "mcmc",
        ("regression", "classification", "ordinal"),
        {
            "num_epochs": Param(200, _positive_int, "Gibbs sweeps"),
            "burn_in": Param(
                None, _non_negative_int, "sweeps discarded (default num_epochs // 10)"
            ),
            "groups": GROUPS,
            "init_std": Param(
                0.1, _non_negative_float, "standard deviation of the initial V"
            ),
            "seed": SEED,
        },
        "Gibbs sampling of the Bayesian FM",
    ),
}


def get_solver(solver: Any, task: str | None = None) -> Solver:
    """The registry's entry for ``solver``; ValueError for an unknown one or a task it cannot train."""
    if not (isinstance(solver, str) and solver in SOLVERS):
        raise ValueError(f"`solver` must be one of {tuple(SOLVERS)}; got {solver!r}.")
    entry = SOLVERS[solver]
    if task is not None and task not in entry.tasks:
        raise ValueError(
            f"`solver={solver!r}` trains {', '.join(entry.tasks)} models; "
            f"got task={task!r}."
        )
    return entry


def resolve(
    solver: Any, given: dict[str, Any], task: str | None = None
) -> dict[str, Any]:
    """Every hyper-parameter of ``solver``: the ``given`` ones checked, the others defaulted.

    ``given`` maps argument names to the values a caller set; None means "not set". A name
    the solver does not use is a ValueError naming it and the solvers that do use it.
    """
    entry = get_solver(solver, task)
    unused = [
        name
        for name, value in given.items()
        if value is not None and name not in entry.params
    ]
    if unused:
        name = unused[0]
        users = [s for s, e in SOLVERS.items() if name in e.params]
        raise ValueError(
            f"`{name}` is not used by solver={solver!r} (it takes "
            f"{', '.join(entry.params)}); `{name}` is for solver "
            f"{' or '.join(map(repr, users)) or 'none'}: leave it unset."
        )
    values = {}
    for name, param in entry.params.items():
        value = given.get(name)
        values[name] = param.default if value is None else param.check(value, name)
    return values


class HyperParameters:
    """scikit-learn's parameter contract without scikit-learn: ``get_params`` and
    ``set_params`` read the constructor's arguments, which ``__init__`` stores unchanged,
    so that ``sklearn.clone``, ``GridSearchCV`` and pickling work."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind != p.VAR_KEYWORD
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as set (``deep`` has no nested estimators to expand)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "HyperParameters":
        """Set constructor arguments; an unknown name is a ValueError naming it."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"`{name}` is not a parameter of {type(self).__name__}; "
                    f"its parameters are {valid}."
                )
            setattr(self, name, value)
        return self
