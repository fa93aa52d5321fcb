"""Training an FM on several processes or machines with ``tf.distribute``.

* :func:`train_multi_worker`: synchronous data parallelism (``MultiWorkerMirroredStrategy``,
  all-reduced gradients; equal to one process on the full batches).
* :func:`train_parameter_server`: ``w`` and ``V`` sharded over parameter servers
  (``ParameterServerStrategy`` with a ``ClusterCoordinator``; asynchronous SGD on the rows a
  batch needs).
* :func:`run_local` and ``python -m fmlib.distributed``: a cluster of local processes.
* :func:`write_shards`: data as TFRecord shards with a manifest, each worker reading its
  own; :class:`Checkpoints`: save every N steps, resume after a failure.

Both trainers train a :class:`fmlib.FactorizationMachine` created under
``strategy.scope()``, with the forward pass of :mod:`fmlib.distributed.lookup` (pull the
rows a batch touches, Lemma 3.1) and the step of :mod:`fmlib.distributed.optimizers`: the
lazy SGD, Adagrad and Adam, penalties and tasks of ``fit(updates="sparse")``, with the
optimizer's slots (:class:`RowOptimizer`) placed like their rows. Chapter "Training on
several machines".
"""

from fmlib.distributed.checkpoints import Checkpoints
from fmlib.distributed.evaluation import evaluate_files
from fmlib.distributed.launcher import ClusterError, launch
from fmlib.distributed.lookup import Batch, fm_score_rows, pull_rows, score_pulled
from fmlib.distributed.optimizers import RowOptimizer
from fmlib.distributed.ps import sharded_shapes, train_parameter_server
from fmlib.distributed.records import (
    parse_batch,
    read_batches,
    synthetic_split,
    write_examples,
)
from fmlib.distributed.run import run_local
from fmlib.distributed.shards import read_manifest, write_shards
from fmlib.distributed.sync import train_multi_worker

__all__ = [
    "Batch",
    "Checkpoints",
    "ClusterError",
    "evaluate_files",
    "fm_score_rows",
    "launch",
    "parse_batch",
    "pull_rows",
    "read_batches",
    "read_manifest",
    "RowOptimizer",
    "run_local",
    "score_pulled",
    "sharded_shapes",
    "synthetic_split",
    "train_multi_worker",
    "train_parameter_server",
    "write_examples",
    "write_shards",
]
