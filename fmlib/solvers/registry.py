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

The command line (``python -m fmlib``) looks its methods up in :data:`COMMANDS`: libFM's
``sgd``, ``sgda``, ``als`` and ``mcmc`` (:mod:`fmlib.solvers.libfm`) and fmlib's ``adam``
and ``adagrad``, each with the flags it takes and the tasks it trains
(:func:`check_command`).

:func:`resolve` checks the values a caller set (each against its constraint, the message
naming the argument, what was expected and what was given), refuses a hyper-parameter the
chosen solver does not use, and fills in the defaults of the others. A value left at
None counts as not set.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

UPDATES = ("dense", "sparse")
# fmlib.learning.sparse.REGULARIZATIONS, written here so that the registry loads without
# TensorFlow (a test checks the two agree)
REGULARIZATIONS = ("occurrence", "present", "global")


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


# the checks import fmlib.validation (TensorFlow) when they run, not when the table loads:
# the command line reads the table before deciding whether it needs TensorFlow at all
def _positive_int(value, name):
    from fmlib.validation import check_int

    return check_int(value, name, 1)


def _non_negative_int(value, name):
    from fmlib.validation import check_int

    return check_int(value, name, 0)


def _non_negative_float(value, name):
    from fmlib.validation import check_float

    return check_float(value, name)


def _learning_rate(value, name):
    from fmlib.validation import check_learning_rate

    return check_learning_rate(value, name)


def _seed(value, name):
    from fmlib.validation import check_seed

    return check_seed(value, name)


def _one_of(*choices):
    def check(value, name):
        if not (isinstance(value, str) and value in choices):
            raise ValueError(f"`{name}` must be one of {choices}; got {value!r}.")
        return value

    return check


def _optimizer(value, name):
    import keras

    from fmlib.learning.optimizers import OPTIMIZERS

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
SEED = Param(None, _seed, "seed of the random numbers")

# chapters: gradient, "Learning" and "Performance and scale"; als, "Coordinate descent";
# mcmc, "The Bayesian factorization machine"

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
            "lr": Param(0.01, _learning_rate, "learning rate of a named optimizer"),
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


# --- the command line's methods (python -m fmlib, libFM's flags) ---------------------------
# Each method lists the flags it takes, keyed by flag name; a flag a method does not take is
# refused (libFM refuses -relation with sgd/sgda and models with mcmc; -batch_size is fmlib's,
# for its minibatch solvers). A flag libFM accepts and ignores for a method stays accepted
# ("accepted, unused, as in libFM"). The checks are plain Python: this table is read before
# the command line imports numba or TensorFlow.


def _flag_at_least(minimum):
    def check(value, name):
        if not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum}; got {value}.")
        return value

    return check


def _flag_seed(value, name):
    if value is not None and not 0 <= value < 2**32:
        raise ValueError(f"{name} must be in 0..2**32-1; got {value}.")
    return value


def _flag_positive(value, name):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be one number > 0; got {value}.")
    return value


def _flag_non_negative(value, name):
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0; got {value}.")
    return value


def _flag(doc):
    return Param(None, _anything, doc)


_COMMON_FLAGS = {
    "iter": Param(100, _flag_at_least(1), "iterations (sweeps, epochs)"),
    "init_stdev": Param(0.1, _flag_non_negative, "standard deviation of the initial V"),
    "seed": Param(None, _flag_seed, "seed of all random draws"),
    "verbosity": Param(0, _flag_at_least(0), "how much to print"),
    "meta": _flag("group of every feature"),
    "learn_rate": Param(0.1, _flag_positive, "learning rate"),
    "regular": _flag("'r0,r1,r2' or 'r'"),
}
_UNUSED = "accepted, unused, as in libFM"
_LIBFM_FLAGS = {
    "validation": _flag("validation rows"),
    "rlog": _flag("libFM's per-iteration measurements"),
}
_MODEL_FLAGS = {"save_model": _flag("model file"), "load_model": _flag("model file")}
_RELATION_FLAGS = {"relation": _flag("BS relation files")}
_BOTH = ("regression", "classification")

COMMANDS: dict[str, Solver] = {
    "sgd": Solver(
        "sgd",
        _BOTH,
        {**_COMMON_FLAGS, **_LIBFM_FLAGS, **_MODEL_FLAGS},
        "libFM's per-example SGD (fmlib.solvers.libfm)",
    ),
    "sgda": Solver(
        "sgda",
        _BOTH,
        {**_COMMON_FLAGS, **_LIBFM_FLAGS, **_MODEL_FLAGS},
        "libFM's SGD with regularisation learned on -validation",
    ),
    "als": Solver(
        "als",
        _BOTH,
        {**_COMMON_FLAGS, **_LIBFM_FLAGS, **_MODEL_FLAGS, **_RELATION_FLAGS},
        "libFM's alternating least squares (learn_rate: " + _UNUSED + ")",
    ),
    "mcmc": Solver(
        "mcmc",
        _BOTH + ("ordinal",),
        {**_COMMON_FLAGS, **_LIBFM_FLAGS, **_RELATION_FLAGS},
        "libFM's Gibbs sampler; -task o: fmlib.BayesianFM(task='ordinal') "
        "(learn_rate, regular: " + _UNUSED + ")",
    ),
    "adam": Solver(
        "adam",
        _BOTH,
        {**_COMMON_FLAGS, "batch_size": Param(256, _flag_at_least(1), "rows per step")},
        "fmlib.fit's minibatch Adam (TensorFlow)",
    ),
    "adagrad": Solver(
        "adagrad",
        _BOTH,
        {**_COMMON_FLAGS, "batch_size": Param(256, _flag_at_least(1), "rows per step")},
        "fmlib.fit's minibatch Adagrad (TensorFlow)",
    ),
}


_LIBFM = ("sgd", "sgda", "als", "mcmc")
_MODEL_WHY = (
    ", as in libFM (an mcmc prediction is an average over samples, not one model)"
)
_WHY = {  # why libFM's own methods refuse a flag
    "relation": "; libFM does not support relations with {method}, nor does fmlib",
    "save_model": _MODEL_WHY,
    "load_model": _MODEL_WHY,
}


def check_command(method: str, task: str, given: dict[str, Any]) -> None:
    """Check the command line's flags against :data:`COMMANDS`: ``given`` maps the flags set
    (without their dash) to their values. A ValueError names the flag, what it needs and
    what it got; ``task`` is ``"regression"``, ``"classification"`` or ``"ordinal"``."""
    if method not in COMMANDS:
        raise ValueError(f"-method must be one of {tuple(COMMANDS)}; got {method!r}.")
    entry = COMMANDS[method]
    if task not in entry.tasks:
        users = [m for m, e in COMMANDS.items() if task in e.tasks]
        raise ValueError(
            f"-task {task[0]} ({task}) works with -method {_and(users)}; "
            f"got -method {method}."
        )
    for flag in given:
        if flag not in entry.params:
            users = [m for m, e in COMMANDS.items() if flag in e.params]
            why = _WHY.get(flag) if method in _LIBFM else None
            raise ValueError(
                f"-{flag} works with {_and(users)}"
                + (why.format(method=method) if why else f", not with -method {method}")
                + "."
            )
    for flag, value in given.items():
        entry.params[flag].check(value, f"-{flag}")


def _and(names: list[str]) -> str:
    """``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


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
