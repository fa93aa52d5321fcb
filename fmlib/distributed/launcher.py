"""A training cluster as local processes on 127.0.0.1: start, watch, stop.

:func:`launch` gives every task of the cluster (workers, parameter servers, a chief) its own
process running :mod:`fmlib.distributed.task`, on a free port, with its ``TF_CONFIG``; then
it watches them until the trainer(s) finish. Every process runs in a process group of its
own and dies with the launcher (``PR_SET_PDEATHSIG`` on Linux); whatever happens (success,
a process failing, a timeout, Ctrl-C), :func:`stop` ends every group with SIGTERM, then
SIGKILL after a grace period, and waits for each with a timeout. Chapter "Training on
several machines".
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from fmlib.validation import check_float, check_int

GRACE_SECONDS = 5.0  # SIGTERM -> SIGKILL
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 15


class ClusterError(RuntimeError):
    """A process of the local cluster failed, or the run took longer than its timeout."""


@dataclass
class Task:
    """One process of the cluster: its role in ``TF_CONFIG``, address, process and log."""

    kind: str  # "chief", "worker" or "ps"
    index: int
    address: str
    log: Path
    process: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.kind} {self.index}"


@dataclass(frozen=True)
class Kill:
    """A fault to inject: SIGKILL the task ``kind`` ``index`` once the trainer has saved a
    checkpoint at step >= ``step``, or ``seconds`` after the cluster started."""

    kind: str
    index: int
    step: int | None = None
    seconds: float | None = None

    def due(self, trainer_log: Path, elapsed: float) -> bool:
        if self.seconds is not None:
            return elapsed >= self.seconds
        text = trainer_log.read_text(errors="replace") if trainer_log.exists() else ""
        steps = [int(m) for m in re.findall(r"^checkpoint step=(\d+)", text, re.M)]
        return bool(steps) and max(steps) >= self.step


def parse_kill(text: str | None) -> Kill | None:
    """``"worker:1@step200"`` or ``"ps:0@30s"`` as a :class:`Kill` (None for None)."""
    if text is None:
        return None
    m = re.fullmatch(r"(worker|ps|chief):(\d+)@(?:step(\d+)|(\d+(?:\.\d*)?)s)", text)
    if not m:
        raise ValueError(
            "--kill must look like 'worker:1@step200' or 'ps:0@30s' "
            f"(KIND:INDEX@step<S> or @<T>s); got {text!r}"
        )
    kind, index, step, seconds = m.groups()
    return Kill(
        kind,
        int(index),
        None if step is None else int(step),
        None if seconds is None else float(seconds),
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 now (the OS picks them)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def cluster_spec(workers: int, ps: int, ports: list[int]) -> dict[str, list[str]]:
    """``TF_CONFIG``'s ``cluster``: workers only (``ps=0``, synchronous) or chief + workers + ps."""
    addresses = iter(f"127.0.0.1:{p}" for p in ports)
    spec = {"chief": [next(addresses)]} if ps else {}
    spec["worker"] = [next(addresses) for _ in range(workers)]
    if ps:
        spec["ps"] = [next(addresses) for _ in range(ps)]
    return spec


def tf_config(spec: dict, kind: str, index: int) -> str:
    """The ``TF_CONFIG`` of one task: the whole cluster, and which task this process is."""
    return json.dumps({"cluster": spec, "task": {"type": kind, "index": index}})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGKILL when the launcher dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(
            1, signal.SIGKILL
        )  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(tasks: list[Task], spec: dict, task_args: list[str], say=print) -> None:
    """Start one process per task, each in a new session (its own process group)."""
    for task in tasks:
        env = dict(os.environ, TF_CONFIG=tf_config(spec, task.kind, task.index))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with open(task.log, "wb") as log:
            task.process = subprocess.Popen(
                [sys.executable, "-m", "fmlib.distributed.task", *task_args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        say(f"started {task.name} on {task.address} (pid {task.process.pid})")


def stop(tasks: list[Task], grace: float = GRACE_SECONDS) -> None:
    """End every started process: SIGTERM to its group, SIGKILL after ``grace`` seconds,
    then wait (with a timeout) so that no process is left behind or unreaped."""
    running = [t.process for t in tasks if t.process is not None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in running:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        running = [p for p in running if p.poll() is None]
        if not running:
            return
    raise ClusterError(
        f"processes {[p.pid for p in running]} did not end after SIGKILL."
    )


def _exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = (
        path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    )
    kept = [
        line
        for line in text
        if not line.startswith(("WARNING: All log", "I0000", "W0000"))
    ]
    return "\n".join("    " + line for line in kept[-lines:]) or "    (empty log)"


def watch(
    tasks: list[Task],
    trainers: list[Task],
    timeout: float,
    *,
    spare: tuple[str, ...] = (),
    kill: Kill | None = None,
    say=print,
) -> None:
    """Wait until every trainer has exited with 0; any other exit, or ``timeout`` seconds, is
    a :class:`ClusterError` naming the process and showing the end of its log.

    Tasks of a kind in ``spare`` may end early (the parameter-server coordinator gives their
    work to the others): that is reported with ``say``, not an error. ``kill``: a fault to
    inject (SIGKILL to that task's process group) when it is due."""
    started = time.monotonic()
    deadline = started + timeout
    lost: set[str] = set()
    while True:
        if kill is not None and kill.due(trainers[0].log, time.monotonic() - started):
            victim = next(
                t for t in tasks if (t.kind, t.index) == (kill.kind, kill.index)
            )
            os.killpg(victim.process.pid, signal.SIGKILL)
            say(f"injected fault: killed {victim.name} (pid {victim.process.pid})")
            kill = None
        for task in tasks:
            code = task.process.poll()
            if code is None or (code == 0 and task in trainers) or task.name in lost:
                continue
            if task.kind in spare:
                lost.add(task.name)
                say(
                    f"{task.name} (pid {task.process.pid}) {_exit_text(code)}; "
                    "the coordinator gives its work to the other workers"
                )
                continue
            raise ClusterError(
                f"{task.name} (pid {task.process.pid}) {_exit_text(code)} "
                f"before training finished. End of its log {task.log}:\n"
                + _tail(task.log)
            )
        if all(t.process.poll() == 0 for t in trainers):
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"training did not finish within timeout={timeout} s; "
                "stopping the cluster."
            )
        time.sleep(POLL_SECONDS)


def launch(
    task_args: list[str],
    run_dir,
    *,
    workers: int = 2,
    ps: int = 0,
    timeout: float = 600.0,
    say=print,
    kill: Kill | str | None = None,
) -> dict:
    """Run a training cluster of local processes; returns the chief's JSON result.

    Args:
        task_args: options for ``python -m fmlib.distributed.task`` (training files, sizes, ...);
            ``--result`` is added here.
        run_dir: a folder for the processes' logs and the result.
        workers: number of worker processes (>= 1).
        ps: number of parameter servers; 0 trains synchronously
            (``MultiWorkerMirroredStrategy``, worker 0 reports), more adds a chief that
            coordinates (``ParameterServerStrategy``).
        timeout: seconds before the whole run is stopped as failed.
        say: where progress lines go (``print`` by default).
        kill: a fault to inject for tests (:func:`parse_kill`: ``"worker:1@step200"``,
            ``"ps:0@30s"``). With parameter servers a lost worker is not an error (the
            coordinator re-runs its work elsewhere); a lost parameter server is.

    Raises:
        ClusterError: a process failed or the run timed out (all processes are stopped).
        KeyboardInterrupt: Ctrl-C (all processes are stopped first).
    """
    workers = check_int(workers, "workers")
    ps = check_int(ps, "ps", 0)
    timeout = check_float(timeout, "timeout")
    if timeout == 0:
        raise ValueError("`timeout` must be > 0 seconds; got 0.")
    kill = parse_kill(kill) if isinstance(kill, str) or kill is None else kill
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_dir / "result.json"
    spec = cluster_spec(workers, ps, free_ports(workers + ps + (1 if ps else 0)))
    tasks = [
        Task(kind, i, address, run_dir / f"{kind}-{i}.log")
        for kind, addresses in spec.items()
        for i, address in enumerate(addresses)
    ]
    trainers = [t for t in tasks if t.kind == "chief"] if ps else tasks
    if kill is not None and not any(
        (t.kind, t.index) == (kill.kind, kill.index) for t in tasks
    ):
        raise ValueError(f"`kill`: the cluster has no task {kill.kind}:{kill.index}.")
    try:
        start(tasks, spec, [*task_args, "--result", str(result)], say)
        watch(
            tasks,
            trainers,
            timeout,
            spare=("worker",) if ps else (),
            kill=kill,
            say=say,
        )
    finally:
        stop(tasks)
    return json.loads(result.read_text())
