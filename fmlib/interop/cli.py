"""``python -m fmlib``: a command line that mirrors libFM's.

.. code-block:: text

    python -m fmlib -task r -train train.libfm -test test.libfm -dim '1,1,8' \\
        -iter 100 -method mcmc -out pred.txt -seed 1

reads libFM files (:func:`fmlib.load_libfm`), trains with the chosen method, prints
the train and test RMSE (regression) or accuracy (classification) after every iteration, as
``#Iter=  0  Train=...  Test=...``, and writes one test prediction per line to ``-out``
(classification: the probability of the positive class, as libFM does). ``--help`` lists
what differs from libFM. Exit codes: 0 success, 1 a file could not be read or is
malformed, 2 bad flags, 3 training diverged. Chapter "Using fmlib with scikit-learn and
libFM files".
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.validation import as_labels
from fmlib.solvers.mcmc import BayesianFM
from fmlib.model.fm import FactorizationMachine
from fmlib.learning.divergence import TrainingDivergedError
from fmlib.learning.metrics import evaluate
from fmlib.interop.libfm_files import load_libfm
from fmlib.interop.sklearn import SOLVERS, train_epochs

DIFFERENCES = """\
differences from libFM:
  -method      adds adam and adagrad; libFM's sgda (SGD with adaptive regularisation) is
               not available. sgd/adam/adagrad are minibatch (-batch_size, default 256),
               libFM's sgd visits one example at a time (-batch_size 1 is that, slowly).
  -dim         fmlib always learns w0 and w: the first two numbers must be 1.
  -regular     'r0,r1,r2' or one value r (= r1 = r2); w0 is never regularised, so r0
               must be 0. sgd/adam/adagrad penalise the mean loss (lambda * ||theta||^2
               per step), als the sum over rows as libFM does: see fmlib.fit.
  -meta        one group id per feature (a line each), as in libFM: priors per group
               (mcmc) and block updates (als).
  -test        optional (libFM requires it); without it there is no Test column and no -out.
  progress     the #Iter lines; when stdout is redirected, a progress bar on stderr
               (sgd/adam/adagrad/als). mcmc prints its lines when the sampler is done.
  Train=       RMSE or accuracy of the current model on the training file after each
               iteration; for mcmc the current sample's, and Test= is the running mean
               of the posterior predictions, as in libFM.
  not supported: -relation (block structure), -cache_size, -validation, -rlog,
               -load_model, -save_model, -verbosity.
exit codes: 0 success, 1 unreadable or malformed file, 2 bad flags, 3 training diverged.
"""

UNSUPPORTED = (
    "relation",
    "cache_size",
    "validation",
    "rlog",
    "load_model",
    "save_model",
    "verbosity",
)


class CommandLineError(Exception):
    """A data or file problem: printed as one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage block): ``prog: error: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """libFM's flags (one dash, as libFM spells them) plus ``-batch_size``."""
    parser = _Parser(
        prog="python -m fmlib",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a Factorization Machine on libFM files, like libFM's command line.",
        epilog=DIFFERENCES,
    )
    parser.add_argument(
        "-task",
        required=True,
        choices=("r", "c"),
        help="r: regression, c: binary classification (labels 0/1 or -1/+1)",
    )
    parser.add_argument(
        "-train", required=True, metavar="FILE", help="training data (libFM format)"
    )
    parser.add_argument("-test", metavar="FILE", help="test data (libFM format)")
    parser.add_argument(
        "-dim",
        default="1,1,8",
        help="'1,1,k': bias, linear term, k factors " "(default '1,1,8')",
    )
    parser.add_argument("-iter", type=int, default=100, help="iterations (default 100)")
    parser.add_argument(
        "-method",
        default="mcmc",
        choices=("sgd", "adam", "adagrad", "als", "mcmc"),
        help="default mcmc",
    )
    parser.add_argument(
        "-learn_rate",
        type=float,
        default=0.1,
        help="learning rate of sgd/adam/adagrad (default 0.1)",
    )
    parser.add_argument(
        "-regular",
        default="0",
        help="'r0,r1,r2' or 'r' for sgd/adam/adagrad/als " "(default '0')",
    )
    parser.add_argument(
        "-init_stdev",
        type=float,
        default=0.1,
        help="standard deviation of the initial V (default 0.1)",
    )
    parser.add_argument(
        "-batch_size",
        type=int,
        default=256,
        help="fmlib only: rows per step of sgd/adam/adagrad (default 256)",
    )
    parser.add_argument(
        "-meta", metavar="FILE", help="group id of every feature, one per line"
    )
    parser.add_argument("-out", metavar="FILE", help="write the test predictions here")
    parser.add_argument(
        "-seed", type=int, default=None, help="seed of all random draws"
    )
    for name in UNSUPPORTED:
        parser.add_argument(f"-{name}", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags parsed and checked; a bad one exits with code 2 and a one-line message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [name for name in UNSUPPORTED if getattr(args, name) is not None]
    if given:
        parser.error(
            f"-{given[0]} is a libFM flag that fmlib does not support (see --help)."
        )
    dim = args.dim.split(",")
    if (
        len(dim) != 3
        or dim[:2] != ["1", "1"]
        or not dim[2].strip().isdigit()
        or int(dim[2]) < 1
    ):
        parser.error(
            f"-dim must be '1,1,k' with k >= 1 (fmlib always learns w0 and w); "
            f"got {args.dim!r}."
        )
    args.k = int(dim[2])
    try:
        regular = [float(r) for r in args.regular.split(",")]
    except ValueError:
        parser.error(
            f"-regular must be numbers 'r0,r1,r2' or 'r'; got {args.regular!r}."
        )
    if len(regular) not in (1, 3) or min(regular) < 0 or not all(np.isfinite(regular)):
        parser.error(
            f"-regular must be 'r0,r1,r2' or 'r', each >= 0; got {args.regular!r}."
        )
    if len(regular) == 3 and regular[0] != 0:
        parser.error(
            f"-regular: fmlib does not regularise w0, so r0 must be 0; got {args.regular!r}."
        )
    args.lambda_w, args.lambda_v = regular[-2:] if len(regular) == 3 else regular * 2
    for name, minimum in (("iter", 1), ("batch_size", 1)):
        if getattr(args, name) < minimum:
            parser.error(f"-{name} must be >= {minimum}; got {getattr(args, name)}.")
    if not (np.isfinite(args.learn_rate) and args.learn_rate > 0):
        parser.error(f"-learn_rate must be > 0; got {args.learn_rate}.")
    if not (np.isfinite(args.init_stdev) and args.init_stdev >= 0):
        parser.error(f"-init_stdev must be >= 0; got {args.init_stdev}.")
    if args.seed is not None and args.seed < 0:
        parser.error(f"-seed must be >= 0; got {args.seed}.")
    if args.method == "als" and args.task == "c":
        parser.error(
            "-method als trains regression (-task r); for -task c use mcmc or sgd."
        )
    if args.out is not None and args.test is None:
        parser.error("-out writes the test predictions: it needs -test.")
    return args


def read_data(args: argparse.Namespace):
    """``(X, y, X_test, y_test, groups)``: both files at the width of the wider one."""
    task = "classification" if args.task == "c" else "regression"
    try:
        X, y = load_libfm(args.train)
        Xt, yt = load_libfm(args.test) if args.test else (None, None)
        width = max(X.shape[1], Xt.shape[1] if Xt is not None else 0)
        groups = None
        if args.meta:
            groups = np.loadtxt(args.meta, dtype=np.int64, ndmin=1)
            if groups.size < width:
                raise ValueError(
                    f"{args.meta}: {groups.size} group ids, but the data has "
                    f"{width} features; give one id per line for each."
                )
            width = groups.size
        X.resize((X.shape[0], width))
        y = as_labels(y, task, f"the targets of {args.train}")
        if Xt is not None:
            Xt.resize((Xt.shape[0], width))
            yt = as_labels(yt, task, f"the targets of {args.test}")
    except (OSError, ValueError) as err:
        raise CommandLineError(str(err)) from None
    return X, y, Xt, yt, groups


def _progress(method: str, done: int, total: int, width: int = 30) -> None:
    """A progress bar on stderr, redrawn in place, when stdout (the #Iter lines) goes to a
    file and stderr to a terminal."""
    if sys.stdout.isatty() or not sys.stderr.isatty():
        return
    bar = "#" * (width * done // total)
    end = "\n" if done == total else ""
    print(
        f"\r{method} [{bar:<{width}}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def _line(iteration: int, train: float, test: float | None) -> str:
    text = f"#Iter={iteration:3d}\tTrain={train:.6f}"
    return text + (f"\tTest={test:.6f}" if test is not None else "")


def run(args: argparse.Namespace, out=None) -> np.ndarray | None:
    """Train as the flags say, print one line per iteration (to ``out``, by default
    ``sys.stdout``); returns the test predictions."""
    out = sys.stdout if out is None else out
    task = "classification" if args.task == "c" else "regression"
    metric = "accuracy" if task == "classification" else "rmse"
    X, y, Xt, yt, groups = read_data(args)
    print(
        f"fmlib: {X.shape[0]} training rows, {X.shape[1]} features, task {task}, "
        f"method {args.method}, k={args.k}",
        file=out,
    )
    if args.method == "mcmc":
        bfm = BayesianFM(
            args.k,
            num_sweeps=args.iter,
            task=task,
            groups=groups,
            init_std=args.init_stdev,
            seed=args.seed,
        )
        bfm.fit(X, y, *((Xt, yt) if Xt is not None else ()))
        for sweep, row in bfm.trace_.iterrows():
            test = row.get(f"test_{metric}_mean")
            print(
                _line(
                    sweep - 1,
                    row[f"train_{metric}"],
                    (
                        None
                        if Xt is None
                        else float(np.nan_to_num(test, nan=row[f"test_{metric}"]))
                    ),
                ),
                file=out,
            )
        if Xt is None:
            return None
        return bfm.predict_proba(Xt) if task == "classification" else bfm.predict(Xt)
    dtype = tf.float64 if args.method == "als" else tf.float32
    model = FactorizationMachine(
        X.shape[1], args.k, init_std=args.init_stdev, seed=args.seed, dtype=dtype
    )
    epochs = train_epochs(
        model,
        X,
        y,
        solver=args.method,
        task=task,
        num_epochs=args.iter,
        batch_size=args.batch_size,
        lr=args.learn_rate,
        lambda_w=args.lambda_w,
        lambda_v=args.lambda_v,
        groups=groups,
        seed=args.seed,
    )
    for iteration, _ in enumerate(epochs):
        _progress(args.method, iteration + 1, args.iter)
        train = evaluate(model, X, y)[metric]
        test = evaluate(model, Xt, yt)[metric] if Xt is not None else None
        print(_line(iteration, train, test), file=out)
    if Xt is None:
        return None
    return model.predict_proba(Xt) if task == "classification" else model.predict(Xt)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fmlib``; returns the exit code."""
    args = parse_args(argv)
    try:
        predictions = run(args)
        if args.out is not None:
            np.savetxt(args.out, np.asarray(predictions, np.float64), fmt="%.9g")
    except CommandLineError as err:
        print(f"python -m fmlib: error: {err}", file=sys.stderr)
        return 1
    except TrainingDivergedError as err:
        print(f"python -m fmlib: error: {err}", file=sys.stderr)
        return 3
    except OSError as err:
        print(f"python -m fmlib: error: cannot write -out: {err}", file=sys.stderr)
        return 1
    return 0
