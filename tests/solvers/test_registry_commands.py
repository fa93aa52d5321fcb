"""The command line's table in the solver registry (COMMANDS): every method's flags, the
flags it refuses, the tasks it trains, and that reading the table loads no TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fmlib.interop.cli import FLAGS, LIBFM_METHODS, TF_METHODS, main
from fmlib.solvers.registry import COMMANDS, REGULARIZATIONS, check_command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# written from libFM 1.4.4's documentation and fmlib's: which method takes which flag
TAKES = {
    "relation": {"als", "mcmc"},
    "save_model": {"sgd", "sgda", "als"},
    "load_model": {"sgd", "sgda", "als"},
    "validation": {"sgd", "sgda", "als", "mcmc"},
    "rlog": {"sgd", "sgda", "als", "mcmc"},
    "batch_size": {"adam", "adagrad"},
}
VALUES = {
    "relation": "r",
    "save_model": "m",
    "load_model": "m",
    "validation": "v",
    "rlog": "l",
    "batch_size": 4,
}


def test_the_command_table_covers_the_cli():
    assert set(COMMANDS) == set(LIBFM_METHODS + TF_METHODS)
    assert set().union(*(e.params for e in COMMANDS.values())) == set(FLAGS)


def test_regularizations_agree_with_the_sparse_solver():
    from fmlib.learning.sparse import REGULARIZATIONS as used

    assert REGULARIZATIONS == used


@pytest.mark.parametrize("method", sorted(COMMANDS))
@pytest.mark.parametrize("flag", sorted(TAKES))
def test_a_flag_is_taken_exactly_by_its_methods(method, flag):
    given = {flag: VALUES[flag]}
    if method in TAKES[flag]:
        check_command(method, "regression", given)
    else:
        users = sorted(TAKES[flag])
        with pytest.raises(ValueError, match=f"-{flag} works with .*{method}"):
            check_command(method, "regression", given)
        assert all(u in str(check_command_error(method, given)) for u in users)


def check_command_error(method, given):
    try:
        check_command(method, "regression", given)
    except ValueError as err:
        return err
    raise AssertionError("no error")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("iter", 0, "-iter must be >= 1; got 0"),
        ("init_stdev", -1.0, "-init_stdev must be >= 0"),
        ("init_stdev", float("nan"), "-init_stdev must be >= 0"),
        ("seed", 2**32, "-seed must be in 0..2\\*\\*32-1"),
        ("verbosity", -1, "-verbosity must be >= 0"),
    ],
)
def test_constraints_name_the_flag(flag, value, message):
    with pytest.raises(ValueError, match=message):
        check_command("mcmc", "regression", {flag: value})


def test_ordinal_task_is_for_mcmc_only(capsys):
    check_command("mcmc", "ordinal", {})
    for method in sorted(set(COMMANDS) - {"mcmc"}):
        with pytest.raises(ValueError, match="-task o .*works with -method mcmc"):
            check_command(method, "ordinal", {})
    with pytest.raises(SystemExit) as exit_:
        main(["-task", "o", "-train", "t", "-method", "als"])
    assert exit_.value.code == 2
    assert "-task o (ordinal) works with -method mcmc" in capsys.readouterr().err


def test_reading_the_table_loads_no_tensorflow():
    code = (
        "import sys\nfrom fmlib.solvers.registry import COMMANDS, check_command\n"
        "check_command('als', 'regression', {'iter': 3})\n"
        "print('tensorflow' in sys.modules, 'numba' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["False", "False"], done.stderr
