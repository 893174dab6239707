"""Helpers of the failover tests: a worker pool that is kept at strength, and run checks.

``FoPool`` is ``tests/workerpool.Pool`` with this folder on the workers' PYTHONPATH, a
clean environment (none of the test process's graflow settings leak in), and a
tear-down that also deletes the rq job keys of its sessions. ``Keeper`` plays the
orchestrator: it restarts every worker that exits (a crash point, a kill) so the pool
stays at its size, and can SIGKILL random workers on a schedule.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from workerpool import (
    Pool,
    wait_until,  # noqa: F401  (shared test helper)
)

from graflow.distributed import WorkflowRun, submit
from graflow.distributed.session import SessionStore

HERE = Path(__file__).resolve().parent
_SCRUB = ("GRAFLOW_SECRET_KEY", "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_KEY_PREFIX", "GRAFLOW_REDIS_URL",
          "REDIS_URL", "REDIS_PASSWORD", "GRAFLOW_SESSION_TTL", "GRAFLOW_GRAPH_TTL", "GRAFLOW_CHECKPOINT_TTL",
          "GRAFLOW_CRASH_AT", "GRAFLOW_CRASH_ONCE_FILE", "GRAFLOW_HEARTBEAT", "GRAFLOW_MAX_REDELIVERIES")  # fmt: skip




class FoPool(Pool):
    """Workers on a private queue/prefix; ``args`` default to a 1.5 s heartbeat."""

    def __init__(self, redis_url: str, size: int = 2, *, args: list[str] | None = None, prefix: str | None = None,
                 **env: str) -> None:  # fmt: skip
        super().__init__(redis_url, size, extra_paths=[str(HERE)], prefix=prefix,
                         args=args or ["--heartbeat", "1.5"], **env)  # fmt: skip
        self.lock = threading.Lock()

    def start_worker(self, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        saved = {k: os.environ.pop(k) for k in _SCRUB if k in os.environ}
        try:
            with self.lock:
                return super().start_worker(name, **env)
        finally:
            os.environ.update(saved)

    def submit(self, wf: Any, **kw: Any) -> WorkflowRun:
        return submit(wf, self.redis_url, queue=self.queue, key_prefix=self.prefix, **kw)

    def full_logs(self) -> str:
        """Every worker log in full (``logs_text`` keeps the last 4000 characters of each)."""
        out = []
        for path in self.logs:
            with contextlib.suppress(OSError), open(path, errors="replace") as f:
                out.append(f.read())
        return "\n".join(out)

    def logs_text(self) -> str:
        out = []
        for i in range(len(self.logs)):
            with contextlib.suppress(OSError):
                out.append(f"--- worker log {i} ---\n{self.log_text(i)}")
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.procs:  # the whole group, also when its supervisor has exited
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(10)
        for path in self.logs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.cleanup()

class Keeper(threading.Thread):
    """Keeps ``pool`` at its size: a worker that exits is replaced at once (with ``env``).

    ``kills``/``every``: SIGKILL the process group of a random live worker that many
    times, about every ``every`` seconds (a whole worker lost, as on host loss).
    """

    def __init__(self, pool: FoPool, *, kills: int = 0, every: tuple[float, float] = (1.0, 2.0),
                 seed: int | None = None, **env: str) -> None:  # fmt: skip
        super().__init__(daemon=True, name="failover-keeper")
        self.pool = pool
        self.env = env
        self.slots = [p for p in pool.procs if p.poll() is None]
        self.kills_left = kills
        self.every = every
        self.rng = random.Random(seed)
        self.exits: list[tuple[int, int | None, float]] = []  # (pid, exit code, when)
        self.killed: list[tuple[int, float]] = []
        self.restarts = 0
        self._halt = threading.Event()
        self._next_kill = time.monotonic() + self.rng.uniform(*every)

    def run(self) -> None:
        while not self._halt.wait(0.02):
            for i, proc in enumerate(self.slots):
                code = proc.poll()
                if code is not None:
                    self.exits.append((proc.pid, code, time.time()))
                    self.slots[i] = self.pool.start_worker(**self.env)
                    self.restarts += 1
            if self.kills_left and time.monotonic() >= self._next_kill:
                victim = self.rng.choice(self.slots)
                try:
                    os.killpg(victim.pid, signal.SIGKILL)
                    self.killed.append((victim.pid, time.time()))
                    self.kills_left -= 1
                except ProcessLookupError:
                    pass
                self._next_kill = time.monotonic() + self.rng.uniform(*self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def __enter__(self) -> Keeper:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` (a worker command) still runs."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def orphans(pgid: int) -> list[int]:
    """Processes of the worker command ``pgid`` whose parent is not in it (Linux ``/proc``):
    what a dead worker process left behind (its rq scheduler process, say)."""
    members: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members[int(entry)] = int(fields[1])
    return [pid for pid, parent in members.items() if pid != pgid and parent not in members]


def store_of(run: WorkflowRun) -> SessionStore:
    return SessionStore(run.client, run.key_prefix, run.session_id)


def channel_state(run: WorkflowRun, volatile: tuple[str, ...] = ("ran",)) -> dict[str, Any]:
    """The run's channel, key → value, minus keys whose value depends on timing."""
    channel = run.channel
    return {k: channel.get(k) for k in sorted(channel.keys()) if k not in volatile}


def ran_counts(run: WorkflowRun) -> Counter[str]:
    return Counter(run.channel.get("ran") or [])


def done_markers(run: WorkflowRun) -> dict[str, str]:
    raw = run.client.hgetall(store_of(run).keys.done)
    return {k.decode(): v.decode() for k, v in raw.items()}


def completed_events(run: WorkflowRun) -> Counter[str]:
    """How many ``completed`` events the session log holds per task id."""
    return Counter(e["data"].get("task_id") for e in store_of(run).events(1000) if e["event"] == "completed")


def leases(pool: FoPool) -> list[str]:
    """The started-registry entries (leases) of the pool's queue."""
    from rq.registry import StartedJobRegistry

    client = _client(pool)
    key = StartedJobRegistry(pool.queue, connection=client).key
    return [m.decode() for m in client.zrange(key, 0, -1)]


def abandoned(pool: FoPool) -> dict[str, str]:
    """Job id → failure reason of the abandoned jobs in the queue's failed registry."""
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    client = _client(pool)
    out = {}
    for job_id in FailedJobRegistry(pool.queue, connection=client, serializer=JSONSerializer).get_job_ids():
        job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
        result = job.latest_result()
        reason = (result.exc_string or "") if result is not None else ""
        if reason.startswith("abandoned"):
            out[job_id] = reason
    return out


def _client(pool: FoPool) -> Any:
    import redis

    return redis.Redis.from_url(pool.redis_url)
