"""Train on a local cluster from Python: write the records, launch, read the history.

Chapter "Training on several machines".
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from fmlib.distributed.evaluation import history_frame
from fmlib.distributed.launcher import launch
from fmlib.distributed.records import write_examples
from fmlib.distributed.shards import write_shards
from fmlib.validation import as_host_matrix, check_int

PS_SHARDS_PER_WORKER = 4  # shards run_local writes per worker for parameter servers


def run_local(
    X_train,
    y_train,
    X_test=None,
    y_test=None,
    *,
    workers: int = 2,
    ps: int = 0,
    k: int = 8,
    num_epochs: int = 5,
    batch_size: int = 256,
    lr: float = 0.05,
    optimizer: str = "sgd",
    regularization: str = "present",
    lambda_w: float = 0.0,
    lambda_v: float = 0.0,
    task: str = "regression",
    init_std: float = 0.01,
    seed: int = 0,
    shuffle: bool = True,
    timeout: float = 600.0,
    run_dir=None,
    save=None,
    say=print,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
    resume: bool = False,
    kill=None,
) -> tuple[pd.DataFrame, dict]:
    """Train an FM on ``workers`` local worker processes (and ``ps`` parameter servers).

    ``ps=0`` trains synchronously (:func:`~fmlib.distributed.train_multi_worker`), ``ps >= 1``
    on parameter servers (:func:`~fmlib.distributed.train_parameter_server`);
    ``optimizer``, ``regularization``, ``lambda_w``, ``lambda_v`` and ``task`` are theirs
    (those of ``fit(updates="sparse")``). The data are
    written as TFRecord files into ``run_dir`` (a temporary folder, removed afterwards, when
    None) next to the processes' logs: one file for synchronous workers (each keeps its
    share of every global batch), ``PS_SHARDS_PER_WORKER`` shards per worker for parameter
    servers (the coordinator's units of work). ``checkpoint_dir``, ``checkpoint_every``,
    ``resume``: checkpoints (:class:`~fmlib.distributed.checkpoints.Checkpoints`);
    ``kill``: a fault to inject (:func:`~fmlib.distributed.launcher.parse_kill`).

    Returns:
        ``(history, result)``: the history table of :func:`fmlib.fit` and the chief's
        result (strategy, cluster sizes, ``V_shards``: the shape and device of every shard).
        With ``save`` (a path), the trained model is also saved there
        (:meth:`fmlib.FactorizationMachine.load` reads it).

    Raises:
        fmlib.distributed.ClusterError: a process failed or the run timed out.
    """
    Xh = as_host_matrix(X_train, None, "float32", name="X_train", min_rows=1)
    n_features = Xh.shape[1]
    k = check_int(k, "k")
    temporary = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="fmlib-cluster-") if temporary else run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ps:
            train = write_shards(
                [(Xh, y_train)],
                run_dir / "train",
                PS_SHARDS_PER_WORKER * check_int(workers, "workers"),
            )
        else:
            write_examples(run_dir / "train.tfrecord", Xh, y_train)
            train = [str(run_dir / "train.tfrecord")]
        args = [
            "--train",
            *train,
            "--n-features",
            str(n_features),
            "--k",
            str(k),
            "--epochs",
            str(num_epochs),
            "--batch-size",
            str(batch_size),
            "--lr",
            str(lr),
            "--init-std",
            str(init_std),
            "--seed",
            str(seed),
            *("--optimizer", optimizer, "--regularization", regularization),
            *("--lambda-w", str(lambda_w), "--lambda-v", str(lambda_v)),
            *("--task", task),
        ]
        if X_test is not None:
            write_examples(run_dir / "test.tfrecord", X_test, y_test)
            args += ["--test", str(run_dir / "test.tfrecord")]
        if not shuffle:
            args.append("--no-shuffle")
        if save is not None:
            args += ["--save", str(Path(save).resolve())]
        if checkpoint_dir is not None:
            every = check_int(checkpoint_every, "checkpoint_every")
            args += ["--checkpoint-dir", str(Path(checkpoint_dir).resolve())]
            args += ["--checkpoint-every", str(every)] + (
                ["--resume"] if resume else []
            )
        result = launch(
            args, run_dir, workers=workers, ps=ps, timeout=timeout, say=say, kill=kill
        )
    finally:
        if temporary:
            shutil.rmtree(run_dir, ignore_errors=True)
    return history_frame(result["history"], result.get("epoch_seconds")), result
