"""Worker commands for the failover benchmark: start, find their processes, wait for idle.

A ``graflow worker`` command is a supervisor (the process we start, leader of its own
process group) and one forked child per ``--concurrency`` slot, which runs the tasks
in-process; each child forks rq's scheduler process in turn. Children are found from /proc (their parent pid), so nothing here relies on
log lines or on worker internals beyond rq's worker hash (``state``, ``pid``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

#: Removed from our environment (and so from the workers'): the benchmark measures defaults.
_SCRUBBED_PREFIXES = ("GRAFLOW_", "REDIS_")


def scrub_environment() -> list[str]:
    """Drop graflow/Redis settings inherited from the shell; returns the names dropped."""
    names = sorted(k for k in os.environ if k.startswith(_SCRUBBED_PREFIXES))
    for name in names:
        del os.environ[name]
    return names


def graflow_root() -> str:
    """The source tree the workers import graflow from: the one this process imports."""
    import graflow

    return os.path.dirname(os.path.dirname(os.path.abspath(graflow.__file__)))


def wait_for(what: str, check: Callable[[], Any], timeout: float, step: float = 0.01) -> Any:
    """Poll ``check`` until it returns something truthy; ``RuntimeError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s; see the worker logs")
        time.sleep(step)


def child_pids(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` (scanned from /proc: no psutil needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class WorkerCommand:
    """One ``graflow worker`` command (supervisor + children) in its own process group."""

    def __init__(self, url: str, queue: str, name: str, *, heartbeat: float | None, concurrency: int = 1,
                 log_dir: str) -> None:  # fmt: skip
        self.name = name
        cmd = [sys.executable, "-m", "graflow", "worker", "--url", url, "--queue", queue, "--prefix", queue,
               "--name", name, "--concurrency", str(concurrency), "--log-level", "WARNING"]  # fmt: skip
        if heartbeat is not None:
            cmd += ["--heartbeat", str(heartbeat)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([graflow_root(), HERE])}
        self.log_path = os.path.join(log_dir, f"{name}.log")
        with open(self.log_path, "ab") as log:
            # cwd: ``-m`` puts it first on sys.path, so it must be the tree we mean to measure.
            self.proc = subprocess.Popen(cmd, env=env, cwd=graflow_root(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        self.pid = self.proc.pid  # the supervisor, also the process group id

    def children(self) -> list[int]:
        return child_pids(self.pid)

    def process_roles(self) -> dict[int, str]:
        """Every process of the command, ancestors first: the supervisor, its worker child,
        and the child's own child (rq's scheduler process, forked by ``Worker.work``)."""
        roles = {self.pid: "supervisor"}
        for kid in self.children():
            roles[kid] = "child"
            for grandchild in child_pids(kid):
                roles[grandchild] = "grandchild (rq scheduler)"
        return roles

    def alive(self) -> bool:
        return self.proc.poll() is None

    def idle(self, client: Any) -> bool:
        """Its one child is registered with rq under our name and waits for a job."""
        from rq.worker import Worker

        if not self.alive():
            raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}; see {self.log_path}")
        kids = self.children()
        if len(kids) != 1:
            return False
        state, pid = client.hmget(f"{Worker.redis_worker_namespace_prefix}{self.name}", "state", "pid")
        return state == b"idle" and pid is not None and int(pid) == kids[0]

    def kill_group(self) -> None:
        """SIGKILL supervisor and children at once, as on host loss."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm stop (SIGTERM to the supervisor, which forwards it); SIGKILL after 20 s."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill_group()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # a straggling child

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return f.read()[-chars:]
        return ""


def wait_all_idle(client: Any, workers: list[WorkerCommand], timeout: float = 120.0) -> None:
    wait_for("every worker idle", lambda: all(w.idle(client) for w in workers), timeout, step=0.05)


# -- the task bodies the workers run (imported by name: this folder is on their PYTHONPATH) --


def record_start(ctx: Any) -> None:
    """Append [supervisor pid, worker process pid, attempt, wall time] to the run's channel.

    Jobs run in-process in the worker child, so ``os.getpid()`` is the child and
    ``os.getppid()`` its supervisor (the worker command's pid and process group)."""
    ctx.get_channel().append("starts", [os.getppid(), os.getpid(), ctx.attempt, time.time()])


def _nap(seconds: float) -> None:
    """Short sleeps: a stop raised into the task (a canceled run) lands within 50 ms."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def failover_task(ctx: Any) -> str:
    record_start(ctx)
    _nap(600)  # the benchmark cancels the run once the next attempt has started
    return "ok"


def busy_task(ctx: Any) -> str:
    """Sleeps ``busy_seconds`` from the channel (read before the benchmark's window opens)."""
    seconds = float(ctx.get_channel().get("busy_seconds") or 40)
    record_start(ctx)
    _nap(seconds)
    return "ok"


def submit_one(url: str, queue: str, body: Callable[[Any], Any], label: str, **channel: Any) -> Any:
    """Submit a one-task workflow running ``body``; returns the ``WorkflowRun``."""
    from graflow.core.task import TaskWrapper
    from graflow.core.workflow import workflow
    from graflow.distributed import submit

    with workflow(label) as wf:
        TaskWrapper("slow", body, inject_context=True)
    return submit(wf, url, queue=queue, key_prefix=queue, initial_channel=channel or None)


def starts(run: Any) -> list[list[Any]]:
    return list(run.channel.get("starts") or [])


def wait_starts(run: Any, count: int, timeout: float) -> list[list[Any]]:
    """The first ``count`` start records, once there are that many."""

    def enough() -> list[list[Any]] | None:
        found = starts(run)
        return found[:count] if len(found) >= count else None

    result: list[list[Any]] = wait_for(f"attempt {count} of the task starting", enough, timeout)
    return result
