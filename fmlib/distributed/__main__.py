"""``python -m fmlib.distributed --workers 2 --ps 1``: train an FM on a local cluster.

Starts the cluster as processes on 127.0.0.1 (free ports, one ``TF_CONFIG`` each), trains
on synthetic ratings (or on your TFRecord files with ``--train``/``--test``), prints the
history table of :func:`fmlib.fit`, and stops every process on success, failure, timeout or
Ctrl-C. ``--ps 0`` trains synchronously (``MultiWorkerMirroredStrategy``). Chapter
"Training on several machines".
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile


def parser() -> argparse.ArgumentParser:
    from fmlib.distributed.task import training_parser

    p = argparse.ArgumentParser(
        prog="python -m fmlib.distributed",
        description=__doc__,
        parents=[training_parser()],
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    p.add_argument(
        "--ps",
        type=int,
        default=1,
        help="parameter servers (1); 0: synchronous all-reduce",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for the run (600)"
    )
    p.add_argument("--users", type=int, default=300, help="synthetic data: users (300)")
    p.add_argument("--items", type=int, default=200, help="synthetic data: items (200)")
    p.add_argument(
        "--ratings", type=int, default=20000, help="synthetic ratings (20000)"
    )
    p.add_argument(
        "--run-dir", default=None, help="folder for logs (default: temporary)"
    )
    p.add_argument("--save", default=None, help=".npz file for the trained model")
    p.add_argument(
        "--kill",
        default=None,
        metavar="KIND:INDEX@WHEN",
        help="inject a fault: SIGKILL task KIND:INDEX (e.g. worker:1, ps:0) WHEN = "
        "'step<S>' (once the trainer has saved a checkpoint at step >= S) or '<T>s' "
        "(T seconds after the cluster started)",
    )
    return p


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through launch()'s cleanup


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from .launcher import parse_kill
    from .task import TRAINING_BOUNDS, flag_errors, manifest_features

    # every flag checked before any process starts: one line per error, exit code 2 (argparse's)
    errors = flag_errors(
        args,
        {
            **TRAINING_BOUNDS,
            "--workers": (1, False),
            "--ps": (0, False),
            "--timeout": (0, True),
            "--users": (1, False),
            "--items": (1, False),
            "--ratings": (1, False),
        },
    )
    if args.train is not None and args.n_features is None:
        args.n_features = manifest_features(args.train)
        if args.n_features is None:
            errors.append("--train needs --n-features (or a manifest.json beside it)")
    if args.resume and args.checkpoint_dir is None:
        errors.append("--resume needs --checkpoint-dir")
    try:
        kill = parse_kill(args.kill)
    except ValueError as err:
        errors.append(str(err))
    if errors:
        for line in errors:
            print(f"{p.prog}: error: {line}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    from fmlib.distributed.launcher import ClusterError, launch
    from fmlib.distributed.run import run_local

    try:
        if args.train is None:
            from fmlib.distributed.records import synthetic_split

            X, y, Xt, yt = synthetic_split(
                args.users, args.items, args.ratings, seed=args.seed
            )
            print(
                f"data: {X.shape[0]} training and {Xt.shape[0]} test ratings, "
                f"{X.shape[1]} features",
                flush=True,
            )
            history, result = run_local(
                X,
                y,
                Xt,
                yt,
                workers=args.workers,
                ps=args.ps,
                k=args.k,
                num_epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                optimizer=args.optimizer,
                regularization=args.regularization,
                lambda_w=args.lambda_w,
                lambda_v=args.lambda_v,
                task=args.task,
                init_std=args.init_std,
                seed=args.seed,
                shuffle=not args.no_shuffle,
                timeout=args.timeout,
                run_dir=args.run_dir,
                save=args.save,
                say=lambda line: print(line, flush=True),
                checkpoint_dir=args.checkpoint_dir,
                checkpoint_every=args.checkpoint_every,
                resume=args.resume,
                kill=kill,
            )
        else:
            from fmlib.distributed.evaluation import history_frame

            forwarded = sys.argv[1:] if argv is None else list(argv)
            with tempfile.TemporaryDirectory(prefix="fmlib-cluster-") as scratch:
                result = launch(
                    _task_args(forwarded),
                    args.run_dir or scratch,
                    workers=args.workers,
                    ps=args.ps,
                    timeout=args.timeout,
                    say=lambda line: print(line, flush=True),
                    kill=kill,
                )
            history = history_frame(result["history"], result.get("epoch_seconds"))
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the cluster was stopped", file=sys.stderr)
        return 130
    except SystemExit as stop:
        if isinstance(stop.code, int) and stop.code > 128:
            print("terminated: the cluster was stopped", file=sys.stderr)
        raise
    print(f"{result['strategy']}: {result['workers']} workers, {result['ps']} ps")
    print(history.round(4).to_string())
    for name in ("w", "V"):
        shards = result[f"{name}_shards"]
        print(
            f"{name}: {len(shards)} shard(s): "
            + ", ".join(f"{tuple(shape)} on {device}" for shape, device in shards)
        )
    return 0


LAUNCHER_ONLY = {
    "--workers": 1,
    "--ps": 1,
    "--timeout": 1,
    "--users": 1,
    "--items": 1,
    "--ratings": 1,
    "--run-dir": 1,
    "--kill": 1,
}


def _task_args(argv: list[str]) -> list[str]:
    """The options meant for the training processes: argv without the launcher's own."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=")[0] in LAUNCHER_ONLY:
            skip = 0 if "=" in arg else LAUNCHER_ONLY[arg]
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
