"""``python -m fmlib``: libFM's command line, with libFM's algorithms.

.. code-block:: text

    python -m fmlib -task r -train train.libfm -test test.libfm -dim '1,1,8' \\
        -iter 100 -method mcmc -out pred.txt -seed 1

takes libFM 1.4.4's flags with libFM's meaning: ``-method sgd|sgda|als|mcmc`` run libFM's
algorithms (:mod:`fmlib.solvers.libfm`: per-example SGD, SGD with adaptive regularisation
on ``-validation``, alternating least squares, Gibbs sampling), ``-regular``,
``-learn_rate``, ``-init_stdev`` and ``-dim`` mean what they mean in libFM, predictions are
clipped to the range of the training targets as libFM clips them, ``-relation`` reads
libFM's block-structure files, ``-meta`` its groups, ``-rlog`` writes libFM's columns,
``-save_model``/``-load_model`` its text model file. One line per iteration is printed as
it ends, ``#Iter=  0\\tTrain=...\\tTest=...`` as libFM prints it. ``-method adam|adagrad``
are fmlib's minibatch solvers (:func:`fmlib.fit`, TensorFlow) under their own names.

Only ``adam``/``adagrad`` and ``-task o`` import TensorFlow; ``--help``, bad flags and
malformed files answer before any heavy import. ``--help`` lists what differs from libFM.
Exit codes: 0 success, 1 a file could not be read or is malformed, 2 bad flags, 3 training
diverged.
Chapter "Using fmlib with scikit-learn and libFM files".
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Sequence

LIBFM_METHODS = ("sgd", "sgda", "als", "mcmc")
TF_METHODS = ("adam", "adagrad")

DIFFERENCES = """\
methods: sgd, sgda, als and mcmc are libFM's algorithms with libFM's meaning of every flag;
  adam and adagrad are fmlib's minibatch solvers (TensorFlow; -batch_size, default 256).
differences from libFM:
  -seed        seeds fmlib's generator (numba's), not libFM's rand(): the same seed gives
               the same run in fmlib, not libFM's initial values.
  -test        optional (libFM requires it); without it there is no Test column and no -out.
  -load_model  keeps the loaded w for als (libFM draws w anew after loading); as in
               libFM, -load_model and -save_model are refused with mcmc.
  -relation    als and mcmc as libFM runs them (per-block-row caches); libFM refuses
               relations with sgd and sgda, and so does fmlib. -task o samples on the
               relation blocks with fmlib.BayesianFM.
  -out         9 significant digits (libFM writes 6).
  -cache_size  accepted and ignored (it applies to libFM's binary data files).
  -verbosity   1 or more prints the data sizes and the model's settings.
  -learn_rate  one value (libFM's 'a,b,c' form is accepted by libFM but unused by its sgd).
  adam/adagrad: -dim must be '1,1,k'; -regular r0 must be 0; -task c uses the logistic loss.
  -task o      ordinal regression (fmlib.BayesianFM(task='ordinal')), -method mcmc only.
  flags        a flag the method does not take (fmlib.solvers.registry.COMMANDS) is refused.
exit codes: 0 success, 1 unreadable or malformed file, 2 bad flags, 3 training diverged.
"""


class CommandLineError(Exception):
    """A data or file problem: printed as one line, exit code 1."""


class TrainingDiverged(Exception):
    """Non-finite parameters after an iteration: exit code 3."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage block): ``prog: error: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """libFM's flags (one dash, as libFM spells them) plus fmlib's ``-batch_size``."""
    p = _Parser(
        prog="python -m fmlib",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a Factorization Machine on libFM files with libFM's "
        "flags and algorithms.",
        epilog=DIFFERENCES,
        add_help=False,
    )
    p.add_argument("-h", "--help", "-help", action="help", help="this screen")
    p.add_argument(
        "-task",
        required=True,
        choices=tuple(TASKS),
        help="r: regression, c: binary classification (targets <= 0: negative), "
        "o: ordinal regression (mcmc only; targets the levels 0..L-1)",
    )
    p.add_argument(
        "-train", required=True, metavar="FILE", help="training data (libFM text)"
    )
    p.add_argument("-test", metavar="FILE", help="test data (libFM text)")
    p.add_argument(
        "-validation",
        metavar="FILE",
        help="validation data: the rows sgda learns its regularisation on",
    )
    p.add_argument(
        "-dim",
        default="1,1,8",
        help="'k0,k1,k': use bias, use 1-way terms, k factors (default '1,1,8')",
    )
    p.add_argument("-iter", type=int, default=100, help="iterations (default 100)")
    p.add_argument(
        "-method",
        default="mcmc",
        choices=LIBFM_METHODS + TF_METHODS,
        type=str.lower,
        help="default mcmc",
    )
    p.add_argument(
        "-learn_rate",
        default="0.1",
        help="learning rate of sgd/sgda/adam/adagrad (default 0.1)",
    )
    p.add_argument(
        "-regular",
        default="",
        help="'r0,r1,r2' (bias, 1-way, 2-way) or 'r' for all, for sgd and als; "
        "for als also 'r0,rw_1..rw_G,rv_1..rv_G' per -meta group (default 0)",
    )
    p.add_argument(
        "-init_stdev",
        type=float,
        default=0.1,
        help="standard deviation of the initial factors (default 0.1)",
    )
    p.add_argument(
        "-meta", metavar="FILE", help="group id of every feature, one per line"
    )
    p.add_argument(
        "-relation",
        metavar="PREFIXES",
        help="BS relation files: comma-separated prefixes (each with .x, .train, "
        ".test and optionally .groups)",
    )
    p.add_argument("-out", metavar="FILE", help="write the test predictions here")
    p.add_argument(
        "-rlog", metavar="FILE", help="write libFM's per-iteration measurements"
    )
    p.add_argument(
        "-verbosity", type=int, default=0, help="how much to print (default 0)"
    )
    p.add_argument(
        "-save_model", metavar="FILE", help="write the model (sgd, sgda, als)"
    )
    p.add_argument(
        "-load_model", metavar="FILE", help="start from this model (sgd, sgda, als)"
    )
    p.add_argument("-seed", type=int, default=None, help="seed of all random draws")
    p.add_argument("-cache_size", help=argparse.SUPPRESS)
    p.add_argument(
        "-batch_size",
        type=int,
        default=256,
        help="fmlib only: rows per step of adam/adagrad (default 256)",
    )
    return p


def _floats(text: str, flag: str, parser) -> list[float]:
    try:
        values = [float(t) for t in text.split(",")] if text.strip() else []
    except ValueError:
        parser.error(f"-{flag} must be comma-separated numbers; got {text!r}.")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        parser.error(f"-{flag} must be numbers >= 0; got {text!r}.")
    return values


TASKS = {"r": "regression", "c": "classification", "o": "ordinal"}
FLAGS = (
    "iter", "init_stdev", "seed", "verbosity", "meta", "learn_rate", "regular",
    "validation", "rlog", "save_model", "load_model", "relation", "batch_size",
)  # fmt: skip


def _check_flags(args: argparse.Namespace, parser) -> None:
    """The method's flags through the solver registry's command table
    (:data:`fmlib.solvers.registry.COMMANDS`): a flag the method does not take, or a value
    out of its range, exits with code 2."""
    from fmlib.solvers.registry import check_command

    given = {
        flag: getattr(args, flag)
        for flag in FLAGS
        if getattr(args, flag) != parser.get_default(flag)
    }
    if "learn_rate" in given:
        given["learn_rate"] = args.lr
    try:
        check_command(args.method, TASKS[args.task], given)
    except ValueError as err:
        parser.error(str(err))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags parsed and checked; a bad one exits with code 2 and a one-line message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    dim = args.dim.split(",")
    if (
        len(dim) != 3
        or not all(d.strip().isdigit() for d in dim)
        or int(dim[0]) > 1
        or int(dim[1]) > 1
    ):
        parser.error(
            f"-dim must be 'k0,k1,k' with k0, k1 in {{0, 1}} and k >= 0; "
            f"got {args.dim!r}."
        )
    args.k0, args.k1, args.k = bool(int(dim[0])), bool(int(dim[1])), int(dim[2])
    tf_method = args.method in TF_METHODS
    if tf_method and (not (args.k0 and args.k1) or args.k < 1):
        parser.error(
            f"-dim must be '1,1,k' with k >= 1 for -method {args.method} (fmlib's "
            f"minibatch solvers always learn w0 and w); got {args.dim!r}."
        )
    if args.task == "o" and (not (args.k0 and args.k1) or args.k < 1):
        parser.error(
            f"-dim must be '1,1,k' with k >= 1 for -task o (fmlib.BayesianFM always "
            f"learns w0 and w); got {args.dim!r}."
        )
    if args.task == "o" and (args.rlog or args.validation):
        parser.error("-rlog and -validation are libFM's: -task o takes neither.")
    args.regular_values = _floats(args.regular, "regular", parser)
    n_reg = len(args.regular_values)
    if n_reg not in (0, 1, 3) and not (args.method == "als" and n_reg % 2 == 1):
        parser.error(
            f"-regular must be 'r' or 'r0,r1,r2' (als also 'r0' and one 1-way and "
            f"one 2-way value per -meta group); got {args.regular!r}."
        )
    if tf_method and n_reg == 3 and args.regular_values[0] != 0:
        parser.error(
            f"-regular: -method {args.method} does not regularise w0, so r0 must be "
            f"0; got {args.regular!r}."
        )
    learn_rate = _floats(args.learn_rate, "learn_rate", parser)
    if len(learn_rate) != 1 or learn_rate[0] <= 0:
        parser.error(f"-learn_rate must be one number > 0; got {args.learn_rate!r}.")
    args.lr = learn_rate[0]
    if args.method == "sgda" and args.validation is None:
        parser.error(
            "-method sgda learns its regularisation on -validation: give the file."
        )
    _check_flags(args, parser)
    if args.out is not None and args.test is None:
        parser.error("-out writes the test predictions: it needs -test.")
    args.relations = [r for r in (args.relation or "").split(",") if r]
    return args


# --- data ----------------------------------------------------------------------------
class Data:
    """The files as libFM loads them: rows, targets (±1 for -task c), the joint width;
    with -relation the main rows (``X``, ``test``) and, apart, each relation's matrix
    (``blocks``) and per part the block row of every data row (``block_index``)."""

    def __init__(self, args: argparse.Namespace):
        import numpy as np

        from fmlib.interop.libfm_files import read_libfm_text

        parts = {"train": args.train, "test": args.test, "validation": args.validation}
        loaded = {}
        try:
            for name, path in parts.items():
                if path is not None:
                    if not os.path.isfile(path):
                        raise CommandLineError(f"-{name}: no file at {path!r}.")
                    loaded[name] = read_libfm_text(path)
            # numba's modules only once the files have been read (a bad file answers fast)
            from fmlib.interop.libfm_relations import Relation, read_groups
            from fmlib.solvers.libfm import as_rows

            width = max(rows.n_cols for rows, _ in loaded.values())
            groups = (
                read_groups(args.meta, width)
                if args.meta
                else np.zeros(width, np.int64)
            )
            relations = [Relation(prefix) for prefix in args.relations]
            # libFM's block structure: the main rows and, per relation, its matrix and
            # the block row of every data row (never the joined matrix)
            self.blocks = [rel.B for rel in relations]
            self.block_index = {}
            for name, (rows, y) in loaded.items():
                if relations and name == "validation":
                    raise CommandLineError(
                        "-validation is for sgda; relations for als and mcmc."
                    )
                loaded[name] = (as_rows(rows, width), y)
                self.block_index[name] = [
                    rel.index(name, rows.n_rows) for rel in relations
                ]
            for rel in relations:  # libFM: each relation's groups follow the main ones
                rel_groups = (
                    rel.groups
                    if rel.groups is not None
                    else np.zeros(rel.B.n_cols, np.int64)
                )
                groups = np.concatenate([groups, rel_groups + groups.max() + 1])
        except (OSError, ValueError) as err:
            raise CommandLineError(str(err)) from None
        self.X, self.y = loaded["train"]
        self.test = loaded.get("test")
        self.validation = loaded.get("validation")
        self.n = width + sum(B.n_cols for B in self.blocks)
        self.groups = groups
        self.n_groups = int(groups.max()) + 1
        self.main_width = width
        self.target_range = (float(self.y.min()), float(self.y.max()))
        if args.task == "c":  # libFM: targets <= 0 are the negative class
            for rows_y in (self.y,) + tuple(
                p[1] for p in (self.test, self.validation) if p
            ):
                rows_y[:] = np.where(rows_y <= 0, -1.0, 1.0)


# --- the libFM methods ---------------------------------------------------------------
class RLog:
    """libFM's ``-rlog``: a header of field names, then one tab-separated line per
    iteration, unset fields ``nan``, numbers as C++ prints them (6 significant digits)."""

    def __init__(self, path: str | None, fields: list[str]):
        self.fields = fields
        self.handle = open(path, "w", encoding="utf-8") if path else None
        self.values: dict[str, float] = {}
        if self.handle:
            self.handle.write("\t".join(fields) + "\n")
            self.handle.flush()

    def log(self, **values: float) -> None:
        self.values.update(values)

    def new_line(self) -> None:
        if self.handle:
            self.handle.write(
                "\t".join(_g(self.values.get(f, math.nan)) for f in self.fields) + "\n"
            )
            self.handle.flush()
        self.values = {}

    def close(self) -> None:
        if self.handle:
            self.handle.close()


def _g(x: float) -> str:
    """A number as C++'s ``ostream << double`` prints it (``%g``, 6 digits)."""
    return "%g" % x


def _rlog_fields(args, data) -> list[str]:
    base = (["rmse", "mae"] if args.task == "r" else ["accuracy"]) + [
        "time_pred",
        "time_learn",
        "time_learn2",
        "time_learn4",
    ]
    if args.method == "sgd":
        return base + ["rmse_train"]
    if args.method == "sgda":
        fields = base + ["rmse_train", "rmse_val", "wmean", "wvar"]
        for f in range(args.k):
            fields += [f"vmean{f}", f"vvar{f}"]
        for g in range(data.n_groups):
            fields += [f"regw[{g}]"] + [f"regv[{g},{f}]" for f in range(args.k)]
        return fields
    kinds = ["this", "all", "all_but5"]
    fields = (
        base
        + ["alpha"]
        + (
            [f"rmse_mcmc_{s}" for s in kinds]
            if args.task == "r"
            else [f"acc_mcmc_{s}" for s in kinds] + [f"ll_mcmc_{s}" for s in kinds]
        )
    )
    for g in range(data.n_groups):
        fields += [f"wmu[{g}]", f"wlambda[{g}]"]
        for f in range(args.k):
            fields += [f"vmu[{g},{f}]", f"vlambda[{g},{f}]"]
    return fields


def _regular(args, data):
    """``(r0, rw, rv)`` scalars, or per group for als's long form (libFM's rules)."""
    import numpy as np

    r = args.regular_values
    if len(r) == 0:
        return (0.0, 0.0, 0.0), None
    if len(r) == 1:
        return (r[0],) * 3, None
    if len(r) == 3:
        return tuple(r), None
    G = data.n_groups
    if len(r) != 1 + 2 * G:
        raise CommandLineError(
            f"-regular has {len(r)} values; per group it needs "
            f"1 + 2 x {G} groups = {1 + 2 * G}."
        )
    return (r[0], 0.0, 0.0), (np.array(r[1 : 1 + G]), np.array(r[1 + G :]))


def _evaluate(task: str, y_hat, y, target_range):
    """libFM's ``evaluate``: (RMSE of the clipped predictions, MAE) or (accuracy, nan)."""
    import numpy as np

    if task == "r":
        err = np.clip(y_hat, *target_range) - y
        return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))
    return float(np.mean((y_hat >= 0) == (y >= 0))), math.nan


def run_libfm(args: argparse.Namespace, out=None, *, lean_start: bool = False):
    """Train with one of libFM's methods as the flags say, printing libFM's lines; returns
    the test predictions (or None without -test). ``lean_start``: start numba without
    its optional modules (``fmlib.interop.numba_start``); only for a process of its
    own, as ``python -m fmlib`` is."""
    import contextlib

    from fmlib.interop.numba_start import lean_numba

    out = sys.stdout if out is None else out
    # numba's import and first call, without its optional modules if asked
    with lean_numba() if lean_start else contextlib.nullcontext():
        data = Data(args)  # first: a bad file is reported before numba loads

        from fmlib.solvers import libfm as L

        task = L.REGRESSION if args.task == "r" else L.CLASSIFICATION
        seed = args.seed if args.seed is not None else int(time.time()) % 2**32
        params = L.init_params(
            data.n, args.k, args.init_stdev, seed, args.method, args.k0, args.k1
        )
    if args.load_model:
        from fmlib.interop.libfm_model import read_libfm_model

        try:
            loaded = read_libfm_model(args.load_model, n_features=data.n)
        except (OSError, ValueError) as err:
            raise CommandLineError(f"-load_model: {err}") from None
        if loaded.V.shape[1] != args.k or (loaded.k0, loaded.k1) != (args.k0, args.k1):
            raise CommandLineError(
                f"-load_model: {args.load_model} has k={loaded.V.shape[1]}, bias "
                f"{int(loaded.k0)}, 1-way {int(loaded.k1)}; -dim says {args.dim!r}."
            )
        params.w0[:], params.w[:], params.V[:] = loaded.w0, loaded.w, loaded.V
    reg, per_group = _regular(args, data)
    print(
        f"fmlib: {data.X.n_rows} training rows, {data.n} features, task "
        f"{'regression' if task == 0 else 'classification'}, method {args.method}, "
        f"k={args.k}",
        file=out,
        flush=True,
    )
    if args.verbosity > 0:
        print(
            f"num_attributes={data.n}\tnum_groups={data.n_groups}\tuse w0={int(args.k0)}"
            f"\tuse w1={int(args.k1)}\tdim v={args.k}\treg_w0={reg[0]}\treg_w={reg[1]}"
            f"\treg_v={reg[2]}\tinit ~ N(0,{args.init_stdev})\tlearn_rate={args.lr}"
            f"\tmin_target={data.target_range[0]}\tmax_target={data.target_range[1]}",
            file=out,
            flush=True,
        )
    rlog = RLog(args.rlog, _rlog_fields(args, data))
    try:
        if args.method in ("sgd", "sgda"):
            predictions = _run_sgd(args, data, params, reg, task, rlog, out, L)
        else:
            predictions = _run_coordinate(
                args, data, params, reg, per_group, task, rlog, out, L
            )
    finally:
        rlog.close()
    if args.save_model:
        from fmlib.interop.libfm_model import write_libfm_model

        write_libfm_model(args.save_model, params)
        print(f"Writing FM model to {args.save_model}", file=out, flush=True)
    return predictions


def _check_finite(params, iteration: int, lr: float | None = None) -> None:
    import numpy as np

    if not (
        np.isfinite(params.w0[0])
        and np.all(np.isfinite(params.w))
        and np.all(np.isfinite(params.V))
    ):
        advice = (
            f"try a smaller -learn_rate (lr={lr} now)"
            if lr is not None
            else "try a stronger -regular, or scale the data down"
        )
        raise TrainingDiverged(
            f"training diverged at iteration {iteration}: non-finite "
            f"parameters ({advice})."
        )


def _line(i: int, train: float, test: float | None, extra: str = "") -> str:
    text = f"#Iter={i:3d}\tTrain={_g(train)}"
    return text + (f"\tTest={_g(test)}" if test is not None else "") + extra


def _run_sgd(args, data, params, reg, task, rlog, out, L):
    import numpy as np

    sgda = None
    if args.method == "sgda":
        sgda = L.SGDA(
            data.X,
            data.y,
            data.validation[0],
            data.validation[1],
            params,
            groups=data.groups,
            learn_rate=args.lr,
            task=task,
            target_range=data.target_range,
        )
    test = data.test
    main_metric = "rmse" if args.task == "r" else "accuracy"

    def evaluate(rows, y):
        start = time.process_time()
        value, mae = _evaluate(args.task, L.predict(rows, params), y, data.target_range)
        rlog.log(**{main_metric: value, "time_pred": time.process_time() - start})
        if args.task == "r":
            rlog.log(mae=mae)
        return value

    for i in range(args.iter):
        start = time.process_time()
        if sgda is None:
            L.sgd_epoch(data.X, data.y, params, args.lr, reg, task, data.target_range)
        else:
            sgda.epoch()
        learn = time.process_time() - start
        _check_finite(params, i, args.lr)
        if sgda is not None:
            val = evaluate(*data.validation)
        train = evaluate(data.X, data.y)
        test_value = evaluate(*test) if test else None
        print(_line(i, train, test_value), file=out, flush=True)
        rlog.log(rmse_train=train, time_learn=learn)
        if sgda is not None:
            rlog.log(rmse_val=val, wmean=0.0, wvar=sgda.variances[0])
            for f in range(args.k):
                rlog.log(**{f"vmean{f}": 0.0, f"vvar{f}": sgda.variances[1 + f]})
            for g in range(data.n_groups):
                rlog.log(**{f"regw[{g}]": sgda.reg_w[g]})
                rlog.log(**{f"regv[{g},{f}]": sgda.reg_v[g, f] for f in range(args.k)})
        rlog.new_line()
    train = _evaluate(args.task, L.predict(data.X, params), data.y, data.target_range)[
        0
    ]
    final = f"Final\tTrain={_g(train)}"
    if test:
        final += f"\tTest={_g(_evaluate(args.task, L.predict(test[0], params), test[1], data.target_range)[0])}"
    print(final, file=out, flush=True)
    if not test:
        return None
    y_hat = L.predict(test[0], params)
    return (
        np.clip(y_hat, *data.target_range)
        if args.task == "r"
        else 1 / (1 + np.exp(-y_hat))
    )


def _run_coordinate(args, data, params, reg, per_group, task, rlog, out, L):
    import numpy as np

    test = data.test
    options = dict(
        groups=data.groups,
        regular=reg,
        sample=args.method == "mcmc",
        task=task,
        target_range=data.target_range,
    )
    if data.blocks:  # -relation: libFM's per-block-row caches
        learner = L.RelationalCoordinateLearner(
            data.X,
            data.y,
            test[0] if test else None,
            params,
            data.blocks,
            data.block_index["train"],
            data.block_index.get("test"),
            **options,
        )
    else:
        learner = L.CoordinateLearner(
            data.X, data.y, test[0] if test else None, params, **options
        )
    if per_group is not None:
        learner.w_lambda[:] = per_group[0]
        learner.v_lambda[:] = per_group[1][:, None]
    lo, hi = data.target_range
    for i in range(args.iter):
        start, wall = time.process_time(), time.perf_counter()
        learner.sweep()
        learn = time.process_time() - start
        rlog.log(
            time_learn=learn,
            time_learn2=learn,
            time_learn4=time.perf_counter() - wall,
            alpha=learner.alpha,
        )
        _check_finite(params, i)
        extra, test_value = "", None
        if test:
            y = test[1]
            # libFM's normalisers; all_but5 before sweep 5 divides by the unsigned i - 4
            norm_but5 = 1.0 / ((i - 4) % 2**32) if i != 4 else math.inf
            results = {}
            for kind, pred, norm in (
                ("this", learner.test_this, 1.0),
                ("all", learner.test_sum, 1.0 / (i + 1)),
                ("all_but5", learner.test_sum_but5, norm_but5),
            ):
                with np.errstate(invalid="ignore"):
                    p = pred * norm
                if args.task == "r":
                    p = np.where(np.isnan(p), hi, np.minimum(hi, np.maximum(lo, p)))
                    err = p - y
                    results[kind] = (
                        float(np.sqrt(np.mean(err**2))),
                        float(np.mean(np.abs(err))),
                    )
                else:
                    m = (y + 1) / 2
                    pll = np.clip(p, 0.01, 0.99)
                    ll = float(
                        np.mean(-(m * np.log10(pll) + (1 - m) * np.log10(1 - pll)))
                    )
                    acc = float(np.mean(((p >= 0.5) & (y > 0)) | ((p < 0.5) & (y < 0))))
                    results[kind] = (acc, ll)
            test_value = results["all"][0]
            if args.task == "r":
                rlog.log(
                    rmse=results["all"][0],
                    mae=results["all"][1],
                    **{f"rmse_mcmc_{k}": v[0] for k, v in results.items()},
                )
            else:
                extra = f"\tTest(ll)={_g(results['all'][1])}"
                rlog.log(
                    accuracy=results["all"][0],
                    **{f"acc_mcmc_{k}": v[0] for k, v in results.items()},
                    **{f"ll_mcmc_{k}": v[1] for k, v in results.items()},
                )
        for g in range(data.n_groups):
            rlog.log(
                **{f"wmu[{g}]": learner.w_mu[g], f"wlambda[{g}]": learner.w_lambda[g]}
            )
            for f in range(args.k):
                rlog.log(
                    **{
                        f"vmu[{g},{f}]": learner.v_mu[g, f],
                        f"vlambda[{g},{f}]": learner.v_lambda[g, f],
                    }
                )
        print(_line(i, learner.train_metric, test_value, extra), file=out, flush=True)
        rlog.new_line()
    if not test:
        return None
    if args.method == "mcmc":
        p = learner.test_sum / args.iter
    else:
        p = learner.test_this
    return np.clip(p, lo, hi) if args.task == "r" else np.clip(p, 0.0, 1.0)


# --- ordinal regression: fmlib's Bayesian FM ----------------------------------------
def run_ordinal(args: argparse.Namespace, out=None):
    """``-task o -method mcmc``: :class:`fmlib.BayesianFM` with ``task="ordinal"`` (the
    ordered probit of :mod:`fmlib.solvers.ordinal`; libFM has no ordinal task). The classes
    are the training file's distinct targets; the predictions written are the expected
    ratings, averaged over every sweep as libFM averages its mcmc predictions; one line per
    sweep as it ends (Train: accuracy of the sweep's most probable class; Test: RMSE of the
    running mean). With ``-relation`` the sampler runs on the relation blocks.

    This path imports TensorFlow, and not by accident: :class:`fmlib.BayesianFM` checks its
    inputs with :mod:`fmlib.validation` (which accepts ``tf.SparseTensor``), scores samples
    with :class:`fmlib.FactorizationMachine` and relation designs with
    :mod:`fmlib.data.design_predict`, all TensorFlow modules."""
    import numpy as np

    from fmlib.interop.libfm_files import load_libfm
    from fmlib.interop.libfm_relations import load_libfm_relational, read_groups
    from fmlib.solvers.mcmc import BayesianFM

    out = sys.stdout if out is None else out
    try:
        width = max(load_libfm(p)[0].shape[1] for p in (args.train, args.test) if p)
        if args.relations:
            X, y = load_libfm_relational(args.train, args.relations, "train", width)
            Xt, yt = (
                load_libfm_relational(args.test, args.relations, "test", width)
                if args.test
                else (None, None)
            )
        else:
            X, y = load_libfm(args.train)
            X.resize((X.shape[0], width))
            Xt, yt = load_libfm(args.test) if args.test else (None, None)
            if Xt is not None:
                Xt.resize((Xt.shape[0], width))
        groups = read_groups(args.meta, width) if args.meta else np.zeros(width, int)
        n = X.shape[1]
        if n > width:  # libFM: each relation's columns form groups after the main ones
            extra = [np.full(X.groups[r].stop - X.groups[r].start, i + 1 + groups.max())
                     for i, r in enumerate(list(X.groups)[1:])]  # fmt: skip
            groups = np.concatenate([groups] + extra)
    except (OSError, ValueError) as err:
        raise CommandLineError(str(err)) from None
    print(
        f"fmlib: {X.shape[0]} training rows, {n} features, task ordinal, method mcmc, "
        f"k={args.k}",
        file=out,
        flush=True,
    )
    bfm = BayesianFM(
        k=args.k,
        num_sweeps=args.iter,
        burn_in=0,
        task="ordinal",
        groups=groups,
        init_std=args.init_stdev,
        seed=args.seed,
        keep_samples=False,
    )

    def progress(row: dict) -> None:  # one line per sweep, as it ends
        test = row["test_rmse_mean"] if Xt is not None else None
        print(
            _line(row["sweep"] - 1, row["train_accuracy"], test), file=out, flush=True
        )

    try:
        bfm.fit(X, y, Xt, yt, on_sweep=progress)
    except ValueError as err:
        raise CommandLineError(str(err)) from None
    return bfm.test_prediction_ if Xt is not None else None


# --- fmlib's minibatch solvers (TensorFlow) -------------------------------------------
def run_tf(args: argparse.Namespace, out=None):
    """``-method adam|adagrad``: :func:`fmlib.fit`'s minibatch solvers on the mean loss."""

    from fmlib.interop.libfm_files import load_libfm
    from fmlib.interop.sklearn import train_epochs
    from fmlib.learning.divergence import TrainingDivergedError
    from fmlib.learning.metrics import evaluate
    from fmlib.model.fm import FactorizationMachine
    from fmlib.validation import as_labels

    out = sys.stdout if out is None else out
    task = "classification" if args.task == "c" else "regression"
    metric = "accuracy" if task == "classification" else "rmse"
    try:
        X, y = load_libfm(args.train)
        Xt, yt = load_libfm(args.test) if args.test else (None, None)
        width = max(X.shape[1], Xt.shape[1] if Xt is not None else 0)
        groups = None
        if args.meta:
            from fmlib.interop.libfm_relations import read_groups

            groups = read_groups(args.meta, width)
        X.resize((X.shape[0], width))
        y = as_labels(y, task, f"the targets of {args.train}")
        if Xt is not None:
            Xt.resize((Xt.shape[0], width))
            yt = as_labels(yt, task, f"the targets of {args.test}")
    except (OSError, ValueError) as err:
        raise CommandLineError(str(err)) from None
    r = args.regular_values
    lambda_w, lambda_v = (
        (0.0, 0.0) if not r else ((r[0], r[0]) if len(r) == 1 else r[1:3])
    )
    print(
        f"fmlib: {X.shape[0]} training rows, {X.shape[1]} features, task {task}, "
        f"method {args.method}, k={args.k}",
        file=out,
        flush=True,
    )
    model = FactorizationMachine(
        X.shape[1], args.k, init_std=args.init_stdev, seed=args.seed
    )
    epochs = train_epochs(
        model,
        X,
        y,
        solver=args.method,
        task=task,
        num_epochs=args.iter,
        batch_size=args.batch_size,
        lr=args.lr,
        lambda_w=lambda_w,
        lambda_v=lambda_v,
        groups=groups,
        seed=args.seed,
    )
    try:
        for iteration, _ in enumerate(epochs):
            train = evaluate(model, X, y)[metric]
            test = evaluate(model, Xt, yt)[metric] if Xt is not None else None
            print(_line(iteration, train, test), file=out, flush=True)
    except TrainingDivergedError as err:
        raise TrainingDiverged(str(err)) from None
    if Xt is None:
        return None
    return model.predict_proba(Xt) if task == "classification" else model.predict(Xt)


def main(argv: Sequence[str] | None = None, *, lean_start: bool = False) -> int:
    """Entry point of ``python -m fmlib``; returns the exit code. ``lean_start=True``
    (what ``python -m fmlib`` passes) starts numba without the optional modules the
    libFM methods never use, which leaves numba without them for the rest of the
    process (``fmlib.interop.numba_start``); called from Python, ``main`` leaves
    numba as it is."""
    args = parse_args(argv)
    try:
        if args.method in TF_METHODS:
            predictions = run_tf(args)
        elif args.task == "o":
            predictions = run_ordinal(args)
        else:
            predictions = run_libfm(args, lean_start=lean_start)
        if args.out is not None:
            from fmlib.fileio import (
                write_text,  # atomically: a failure keeps an old file
            )

            write_text(args.out, "".join("%.9g\n" % p for p in predictions.tolist()))
    except CommandLineError as err:
        print(f"python -m fmlib: error: {err}", file=sys.stderr)
        return 1
    except TrainingDiverged as err:
        print(f"python -m fmlib: error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        print(
            f"python -m fmlib: interrupted (Ctrl-C){': ' + str(err) if str(err) else ''}; "
            "nothing was written.",
            file=sys.stderr,
        )
        return 130
    except OSError as err:
        print(f"python -m fmlib: error: cannot write: {err}", file=sys.stderr)
        return 1
    return 0
