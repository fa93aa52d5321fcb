"""One process of a training cluster: ``python -m fmlib.distributed.task [options]``.

What the process does follows ``TF_CONFIG`` (set by :mod:`fmlib.distributed.launcher` on
one machine, or by you on each real machine; chapter "Training on several machines"):

* a cluster with ``"ps"`` tasks (``ParameterServerStrategy``): tasks ``worker`` and ``ps``
  start a TensorFlow server and wait; the ``chief`` is the coordinator, trains, and writes
  the result;
* a cluster of ``worker`` tasks only (``MultiWorkerMirroredStrategy``): every worker trains
  its shard; worker 0 writes the result.

The result is a JSON file (``--result``): the history rows, the strategy, and where the
shards of ``w`` and ``V`` live. ``--save`` writes the trained model as a
:meth:`fmlib.FactorizationMachine.save` file.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault(
    "GRPC_FAIL_FAST", "use_caller"
)  # the TF guide's advice for PS clusters
MIN_INTER_OP_THREADS = 4


def training_parser() -> argparse.ArgumentParser:
    """The options every training process takes (the launcher passes them on)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--train",
        "--train-files",
        dest="train",
        nargs="+",
        help="TFRecord file(s) or glob(s) of the training examples (shards)",
    )
    p.add_argument(
        "--test", nargs="+", default=None, help="TFRecord file(s) to validate on"
    )
    p.add_argument(
        "--n-features",
        type=int,
        help="number of columns n of X (default: the shards' manifest.json)",
    )
    p.add_argument("--k", type=int, default=8, help="latent factors (default 8)")
    p.add_argument(
        "--init-std", type=float, default=0.01, help="std of V's init (0.01)"
    )
    p.add_argument("--epochs", type=int, default=5, help="passes over the data (5)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="global batch size (256)"
    )
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (0.05)")
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adagrad", "adam"),
        default="sgd",
        help="lazy optimizer of fit(updates='sparse') (sgd)",
    )
    p.add_argument(
        "--regularization",
        choices=("present", "occurrence", "global"),
        default="present",
        help="which rows carry the penalty, as in fmlib.fit (present)",
    )
    p.add_argument("--lambda-w", type=float, default=0.0, help="L2 strength of w (0)")
    p.add_argument("--lambda-v", type=float, default=0.0, help="L2 strength of V (0)")
    p.add_argument(
        "--task",
        choices=("regression", "classification"),
        default="regression",
        help="squared or logistic loss (regression)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of V's init and shuffling (0)"
    )
    p.add_argument("--no-shuffle", action="store_true", help="keep the file order")
    p.add_argument(
        "--shards",
        type=int,
        default=None,
        help="shards of w and V (default: one per parameter server)",
    )
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="folder of checkpoints (none: no checkpoints)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=100,
        help="steps between checkpoints (100; parameter servers: rounded up to a shard)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in --checkpoint-dir",
    )
    return p


def manifest_features(train) -> int | None:
    """``n_features`` from the ``manifest.json`` beside the first training file, if any."""
    import glob
    import json

    from fmlib.distributed.records import MANIFEST

    first = sorted(glob.glob(train[0]))[:1] if glob.has_magic(train[0]) else train[:1]
    if not first:
        return None
    manifest = os.path.join(os.path.dirname(os.path.abspath(first[0])), MANIFEST)
    if not os.path.exists(manifest):
        return None
    with open(manifest) as f:
        return json.load(f).get("n_features")


def flag_errors(args, bounds: dict) -> list[str]:
    """One line per flag out of range: ``bounds`` maps a flag to ``(minimum, strict)``; a flag
    whose value is None (not given) is skipped. NaN and infinities are out of range. Also
    the one combination refused: ``--regularization global`` without ``--optimizer sgd``."""
    import math

    errors = []
    for flag, (minimum, strict) in bounds.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None:
            continue
        ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
        if not ok:
            errors.append(
                f"{flag} must be {'>' if strict else '>='} {minimum}; got {value}"
            )
    optimizer = getattr(args, "optimizer", "sgd")
    if getattr(args, "regularization", None) == "global" and optimizer != "sgd":
        errors.append(
            f"--regularization global needs --optimizer sgd (lazy {optimizer} cannot "
            "apply a penalty with a gradient in every row)"
        )
    return errors


TRAINING_BOUNDS = {
    "--n-features": (1, False),
    "--k": (1, False),
    "--init-std": (0, False),
    "--epochs": (1, False),
    "--batch-size": (1, False),
    "--lr": (0, True),
    "--lambda-w": (0, False),
    "--lambda-v": (0, False),
    "--seed": (0, False),
    "--shards": (1, False),
    "--checkpoint-every": (1, False),
}


def main(argv=None) -> int:
    faulthandler.register(
        signal.SIGUSR1
    )  # `kill -USR1 <pid>`: Python stacks into the log
    parser = argparse.ArgumentParser(
        prog="python -m fmlib.distributed.task",
        parents=[training_parser()],
        description=__doc__,
    )
    parser.add_argument("--result", default=None, help="JSON file the chief writes")
    parser.add_argument("--save", default=None, help=".npz file for the trained model")
    args = parser.parse_args(argv)
    errors = flag_errors(args, TRAINING_BOUNDS)
    if errors:
        for line in errors:
            print(f"{parser.prog}: error: {line}", file=sys.stderr)
        return 2
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # keep lost workers' errors, not retracing notes
    # TensorFlow sizes its inter-op thread pool by the usable cores; with one core (taskset, a
    # 1-CPU container) a parameter-server worker blocks its only thread and never runs a step.
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    tf.config.threading.set_inter_op_parallelism_threads(
        max(MIN_INTER_OP_THREADS, cores or 1)
    )
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    if not cluster:
        parser.error(
            "TF_CONFIG is not set: this process needs to know its cluster and task."
        )
    if "ps" in cluster and resolver.task_type in ("worker", "ps"):
        config = tf.compat.v1.ConfigProto(
            inter_op_parallelism_threads=max(MIN_INTER_OP_THREADS, cores or 1)
        )
        server = tf.distribute.Server(
            resolver.cluster_spec(),
            job_name=resolver.task_type,
            task_index=resolver.task_id,
            protocol="grpc",
            config=config,
            start=True,
        )
        server.join()  # serves until the launcher (or you) stops the process
        return 0
    if args.train is not None and args.n_features is None:
        args.n_features = manifest_features(args.train)
    if args.train is None or args.n_features is None:
        parser.error("the training process needs --train and --n-features.")
    if "ps" in cluster:
        result = _train_parameter_server(args, resolver, len(cluster["ps"]))
    else:
        result = _train_multi_worker(args)
    if result is not None and args.result:
        from fmlib.fileio import write_text

        write_text(
            args.result, json.dumps(result)
        )  # atomically: the launcher reads it whole
    if "ps" in cluster:
        # the coordinator's shutdown waits for workers that were lost (ClusterCoordinator's
        # __del__ joins their threads): the result is written, so leave without it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _train_multi_worker(args) -> dict | None:
    import tensorflow as tf

    from fmlib.distributed.sync import train_multi_worker
    from fmlib.model.fm import FactorizationMachine

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = FactorizationMachine(
            args.n_features, k=args.k, init_std=args.init_std, seed=args.seed
        )
    history = train_multi_worker(
        strategy,
        model,
        args.train,
        validation_files=args.test,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        **_optimization(args),
        shuffle=not args.no_shuffle,
        seed=args.seed,
        on_epoch=_progress,
        checkpoints=_checkpoints(args, writer=strategy.cluster_resolver.task_id == 0),
    )
    if not strategy.cluster_resolver.task_id == 0:
        return None
    return _result("multi-worker", model, history, args)


def _train_parameter_server(args, resolver, n_ps: int) -> dict:
    import tensorflow as tf

    from fmlib.distributed.ps import train_parameter_server
    from fmlib.model.fm import FactorizationMachine

    shards = args.shards or n_ps
    strategy = tf.distribute.ParameterServerStrategy(
        resolver,
        variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(
            shards
        ),
    )
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        model = FactorizationMachine(
            args.n_features, k=args.k, init_std=args.init_std, seed=args.seed
        )
    history = train_parameter_server(
        coordinator,
        model,
        args.train,
        validation_files=args.test,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        **_optimization(args),
        on_epoch=_progress,
        checkpoints=_checkpoints(args),
        seed=args.seed,
    )
    return _result("parameter-server", model, history, args)


def _checkpoints(args, writer: bool = True):
    """The run's :class:`~fmlib.distributed.checkpoints.Checkpoints` (None without a folder)."""
    if args.checkpoint_dir is None:
        return None
    from fmlib.distributed.checkpoints import Checkpoints

    say = lambda line: print(line, flush=True)  # noqa: E731
    return Checkpoints(
        args.checkpoint_dir,
        args.checkpoint_every,
        resume=args.resume,
        writer=writer,
        say=say,
    )


def _optimization(args) -> dict:
    """The optimizer, penalty and task flags as the trainers' keyword arguments."""
    return {
        "optimizer": args.optimizer,
        "regularization": args.regularization,
        "lambda_w": args.lambda_w,
        "lambda_v": args.lambda_v,
        "task": args.task,
    }


def _progress(row: dict) -> None:
    print(
        " ".join(
            f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in row.items()
        ),
        flush=True,
    )


def _result(kind: str, model, history, args) -> dict:
    """The JSON result: history rows, cluster sizes, shard placement; saves the model."""
    import tensorflow as tf

    from fmlib.distributed.ps import sharded_shapes
    from fmlib.model.fm import FactorizationMachine

    if args.save:  # a plain, single-process copy of the trained weights
        plain = FactorizationMachine(args.n_features, k=args.k)
        plain.set_weights(
            w0=model.w0.numpy(),
            w=tf.convert_to_tensor(model.w).numpy(),
            V=tf.convert_to_tensor(model.V).numpy(),
        )
        plain.task = args.task
        plain.save(args.save)
    cluster = (
        tf.distribute.cluster_resolver.TFConfigClusterResolver()
        .cluster_spec()
        .as_dict()
    )
    return {
        "strategy": kind,
        "workers": len(cluster.get("worker", [])),
        "ps": len(cluster.get("ps", [])),
        "history": history.reset_index().to_dict(orient="records"),
        "epoch_seconds": history.attrs.get("epoch_seconds", []),
        "w_shards": sharded_shapes(model.w),
        "V_shards": sharded_shapes(model.V),
    }


if __name__ == "__main__":
    sys.exit(main())
