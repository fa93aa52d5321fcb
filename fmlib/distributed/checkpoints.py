r"""Checkpoints of a distributed training run, and resuming from the last one.

A checkpoint holds the training state after exactly :math:`s` units of work (steps, or
shards for the parameter-server trainer): the variables :math:`w_0, \mathbf w, \mathbf V`
(sharded ones saved shard by shard, from the servers that hold them), any optimizer slots
the trainer adds to the dict, and the counter :math:`s` itself. A resumed run restores
them and starts at unit :math:`s`, so that no unit already applied is applied again and at
most the ``every`` units since the last checkpoint are lost.

* Parameter servers: the coordinator waits for every scheduled unit (``join``) before it
  saves, so the checkpoint is a consistent state; a lost parameter server ends the run, and
  ``--resume`` restarts the whole cluster from the last checkpoint (TensorFlow's advice).
* Synchronous workers: every worker saves (the first one into ``directory``, the others
  into scratch folders it removes), as ``tf.distribute`` needs; a lost worker ends the run
  and ``--resume`` restarts it from the last checkpoint.

Chapter "Training on several machines".
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

from fmlib.distributed.evaluation import train_epochs
from fmlib.validation import check_int

KEEP = 2  # checkpoints kept (the newest and the one before)


def train_state(model, opt) -> dict:
    """The variables a checkpoint keeps: ``w0``, ``w``, ``V``, and the optimizer's step
    counter and slots (:class:`~fmlib.distributed.optimizers.RowOptimizer`), e.g.
    ``V_m``, ``V_v`` for Adam; sharded ones shard by shard."""
    state = {"w0": model.w0, "w": model.w, "V": model.V, "iterations": opt.iterations}
    for name, slots in opt.slots.items():
        state.update({f"{name}_{slot}": var for slot, var in slots.items()})
    return state


def train_epochs_from(
    first: int, model, run_epoch, num_epochs, task, validation_files, lr, on_epoch
):
    """:func:`~fmlib.distributed.evaluation.train_epochs` for epochs ``first`` to
    ``num_epochs`` (a resumed run): the history and progress rows keep their epoch."""
    shift = first - 1

    def shifted(row: dict) -> None:
        on_epoch({**row, "epoch": row["epoch"] + shift})

    history = train_epochs(
        model,
        run_epoch,
        num_epochs - shift,
        task,
        validation_files,
        lr,
        None if on_epoch is None else shifted,
    )
    history.index = (history.index + shift).rename("epoch")
    return history


class Checkpoints:
    """Save every ``every`` units into ``directory``; restore from it when ``resume``.

    Args:
        directory: the folder of the checkpoints (shared by the processes of a local
            cluster; on real machines a shared file system or bucket).
        every: save after every ``every`` units (and at the end of training).
        resume: restore the newest checkpoint in ``directory`` (if there is one) instead of
            starting afresh; without ``resume`` a non-empty ``directory`` is an error, so
            that an old run is never continued by mistake.
        writer: False on a process whose copy must not be kept (a synchronous worker other
            than the first): it saves into a scratch folder and deletes it.
        say: where the "checkpoint step=..." lines go (``print`` by default).
    """

    def __init__(self, directory, every: int, *, resume=False, writer=True, say=print):
        self.directory = os.fspath(directory)
        self.every = check_int(every, "every")
        self.resume, self.writer, self.say = bool(resume), bool(writer), say
        self._manager = None
        if not resume and tf.train.latest_checkpoint(self.directory):
            raise ValueError(
                f"`directory` {self.directory!r} already holds a checkpoint: pass "
                "resume=True (--resume) to continue it, or choose an empty folder."
            )

    def track(self, variables: dict) -> int:
        """Watch ``variables`` (name -> variable, e.g. ``{"w0": ..., "w": ..., "V": ...}``
        plus optimizer slots); restore them when resuming. Returns the unit to start at."""
        self.unit = tf.Variable(0, dtype=tf.int64, trainable=False, name="unit")
        self.checkpoint = tf.train.Checkpoint(unit=self.unit, **variables)
        folder = self.directory if self.writer else self._scratch()
        self._manager = tf.train.CheckpointManager(self.checkpoint, folder, KEEP)
        latest = tf.train.latest_checkpoint(self.directory)
        if self.resume and latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            self.say(f"resumed from {latest} at step={int(self.unit.numpy())}")
        return int(self.unit.numpy())

    def due(self, unit: int) -> bool:
        """Whether a checkpoint is due after ``unit`` units."""
        return unit % self.every == 0

    def save(self, unit: int, steps: int | None = None) -> None:
        """Save the state after ``unit`` units (the caller has applied all of them);
        ``steps``: the training steps they make, when a unit is not one step."""
        self.unit.assign(unit)
        self._manager.save(checkpoint_number=unit)
        if not self.writer:
            shutil.rmtree(self._manager.directory, ignore_errors=True)
        extra = "" if steps is None else f" (unit {unit})"
        self.say(f"checkpoint step={unit if steps is None else steps}{extra}")

    def _scratch(self) -> str:
        return os.path.join(self.directory, f".scratch-{os.getpid()}")
