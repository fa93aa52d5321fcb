"""Training an FM on several processes or machines with ``tf.distribute``.

* :func:`train_multi_worker`: synchronous data parallelism (``MultiWorkerMirroredStrategy``,
  all-reduced gradients; equal to one process on the full batches).
* :func:`train_parameter_server`: ``w`` and ``V`` sharded over parameter servers
  (``ParameterServerStrategy`` with a ``ClusterCoordinator``; asynchronous SGD on the rows a
  batch needs).
* :func:`run_local` and ``python -m fmlib.distributed``: a cluster of local processes.
* :func:`~fmlib.distributed.shards.write_shards`: data as TFRecord shards with a manifest, each worker reading its
  own; :class:`~fmlib.distributed.checkpoints.Checkpoints`: save every N steps, resume after a failure.

Both trainers train a :class:`fmlib.FactorizationMachine` created under
``strategy.scope()``, with the forward pass of :mod:`fmlib.distributed.lookup` (pull the
rows a batch touches, Lemma 3.1) and the step of :mod:`fmlib.distributed.optimizers`: the
lazy SGD, Adagrad and Adam, penalties and tasks of ``fit(updates="sparse")``, with the
optimizer's slots (:class:`~fmlib.distributed.optimizers.RowOptimizer`) placed like their rows. Chapter "Training on
several machines".
"""

import importlib as _importlib

# public name -> the module that defines it, loaded on first use (PEP 562): so that
# ``python -m fmlib.distributed --help`` and a bad flag answer before TensorFlow loads
_EXPORTS = {
    "Batch": "fmlib.distributed.lookup",
    "Checkpoints": "fmlib.distributed.checkpoints",
    "ClusterError": "fmlib.distributed.launcher",
    "evaluate_files": "fmlib.distributed.evaluation",
    "fm_score_rows": "fmlib.distributed.lookup",
    "launch": "fmlib.distributed.launcher",
    "parse_batch": "fmlib.distributed.records",
    "pull_rows": "fmlib.distributed.lookup",
    "read_batches": "fmlib.distributed.records",
    "read_manifest": "fmlib.distributed.shards",
    "RowOptimizer": "fmlib.distributed.optimizers",
    "run_local": "fmlib.distributed.run",
    "score_pulled": "fmlib.distributed.lookup",
    "sharded_shapes": "fmlib.distributed.ps",
    "synthetic_split": "fmlib.distributed.records",
    "train_multi_worker": "fmlib.distributed.sync",
    "train_parameter_server": "fmlib.distributed.ps",
    "write_examples": "fmlib.distributed.records",
    "write_shards": "fmlib.distributed.shards",
}

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


def __getattr__(name: str):
    """Load a public name on first use; later uses find it in the module."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fmlib.distributed' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
