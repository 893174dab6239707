"""Taking over the rq registration of a dead worker: its jobs back to the queue, its name free.

rq refuses to start a worker whose name is still registered (``There exists an active
worker named … already``) until the dead one's key expires, up to a minute later. Names
repeat by design: a supervisor restarts a crashed child under its slot name, and the
default ``<hostname>-<pid>`` repeats when a container restarts (same hostname, same pid
under ``init: true``). So a worker about to register first checks who holds its name:

* nobody, or a worker that registered its death: the name is free;
* a worker proven dead (same host and its pid gone, a zombie, this very process, or a
  process started after the registration; or, on any host, its liveness key lapsed: no
  lease pass renewed it for a lease, on the Redis server's clock, which is when the
  reaper would give its job away too): its running graflow jobs are redelivered at once
  (``failover.redeliver``, the reaper's path) and its registration is dropped;
* a live worker: wait up to one lease for it to prove dead, else refuse (``ConfigError``).

The supervisor uses the same hand-back the moment a child dies, so a task that kills its
process comes back in milliseconds instead of after its lease, and is failed as a poison
task after ``max_redeliveries`` deaths within seconds.

Redeliveries here and by the reaper exclude each other: both hold the queue's reaper
lock (``keys.reaper_lock``) and act only on a lease still in the started registry, which
the redelivery removes in the same transaction that records the old job as abandoned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graflow import keys
from graflow.exceptions import ConfigError
from graflow.redisconn import as_text
from graflow.worker import leases

log = logging.getLogger("graflow.worker")

#: Seconds between looks at a registration that still looks alive.
_POLL = 0.25
#: A process that started this long after a registration's birth cannot be its owner
#: (``/proc`` start times are in clock ticks from a boot time in whole seconds).
_START_SLACK = 1.0


@dataclass(frozen=True)
class Registration:
    """What rq recorded about the worker registered under ``name`` (its ``rq:worker:`` hash)."""

    name: str
    fields: dict[str, str]

    @property
    def pid(self) -> int:
        try:
            return int(self.fields.get("pid") or 0)
        except ValueError:
            return 0

    @property
    def hostname(self) -> str:
        return self.fields.get("hostname", "")

    @property
    def queues(self) -> list[str]:
        return [q for q in (self.fields.get("queues") or "").split(",") if q]

    @property
    def finished_jobs(self) -> int:
        """Jobs this registration finished (succeeded or failed) while it lived."""
        total = 0
        for field in ("successful_job_count", "failed_job_count"):
            with contextlib.suppress(ValueError):
                total += int(self.fields.get(field) or 0)
        return total

    def _time(self, field: str) -> float | None:
        from graflow.distributed.rqapi.layout import utcparse

        raw = self.fields.get(field)
        if not raw:
            return None
        try:
            return utcparse(raw).timestamp()
        except ValueError:
            return None

    def dead_because(self, lease_seconds: float, alive: bool = True) -> str | None:
        """Why this registration's worker is certainly dead, or None if it may be alive.

        ``alive``: its liveness key (``keys.worker_alive``) exists. It lapses a lease after
        the last pass that renewed it, on the Redis server's clock: no host's clock decides."""
        if "death" in self.fields:
            return "it registered its death"
        pid, birth = self.pid, self._time("birth")
        if pid and self.hostname == socket.gethostname():
            if pid == os.getpid():
                return f"its pid {pid} is now this process"
            state = _process_state(pid)
            if state is None:
                return f"its process {pid} is gone"
            if state == "Z":
                return f"its process {pid} has exited"
            started = _process_started_at(pid)
            if started is not None and birth is not None and started > birth + _START_SLACK:
                return f"its pid {pid} now belongs to a process started after it registered"
        if not alive:
            return f"its liveness lapsed (no lease pass renewed it for {lease_seconds:g} s)"
        return None


def worker_key(name: str) -> str:
    from graflow.distributed.rqapi import layout

    return layout.worker_key(name)


def read_registration(connection: Any, name: str) -> Registration | None:
    raw = connection.hgetall(worker_key(name))
    if not raw:
        return None
    return Registration(name, {as_text(k): as_text(v) for k, v in raw.items()})


def drop_registration(connection: Any, name: str, queues: Iterable[str]) -> None:
    """Remove ``name`` from rq's worker sets and delete its hash (what rq's own death
    registration would have done), so a new worker may register under that name."""
    from graflow.distributed.rqapi import layout

    key = worker_key(name)
    index = layout.worker_executions_key(name)  # rq 3: its executions index (rq info)
    with connection.pipeline() as pipe:
        pipe.srem(layout.WORKERS_SET, key)
        for queue in set(queues):
            pipe.srem(layout.workers_by_queue_key(queue), key)
        pipe.delete(key)
        if index is not None:
            pipe.delete(index)
        pipe.execute()


def hand_back_jobs(
    connection: Any, name: str, queues: Iterable[str], *, prefix: str, max_redeliveries: int, why: str,
    by: str, stopping: Callable[[], bool] = lambda: False, timed_out: float | None = None,
) -> list[str]:  # fmt: skip
    """Redeliver every graflow job whose lease the dead worker ``name`` still holds on
    ``queues``; returns the reasons recorded. Other jobs are left to rq's clean-up.
    ``timed_out``: it was killed for running past that timeout (``failover.redeliver``)."""
    from graflow.distributed.rqapi import Job, JSONSerializer, StartedJobRegistry
    from graflow.worker import failover

    reasons: list[str] = []
    for queue in dict.fromkeys(queues):
        registry = StartedJobRegistry(queue, connection=connection, serializer=JSONSerializer)
        with _reaper_lock(connection, prefix, queue, stopping) as held:
            if not held:
                continue  # stopping: the reaper gives the job away after its lease
            for member in connection.zrange(registry.key, 0, -1):
                text = as_text(member)
                job_id = text.rsplit(":", 1)[0] if ":" in text else text
                if as_text(connection.hget(Job.key_for(job_id), "worker_name") or b"") != name:
                    continue
                try:
                    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
                except Exception:
                    continue  # gone: nothing to re-run
                if not failover.is_graflow_job(job):
                    continue
                try:
                    reasons.append(failover.redeliver(connection, job, lost_worker=name, why=why, lease=member,
                                                       max_redeliveries=max_redeliveries, reaper=by,
                                                       timed_out=timed_out,
                                                       leases_key=keys.leases(prefix)))  # fmt: skip
                except Exception:  # its lease stays: the reaper retries once it expires
                    log.exception("%s: could not hand back job %s of dead worker %s", by, job_id, name)
    return reasons


@contextlib.contextmanager
def _reaper_lock(connection: Any, prefix: str, queue: str, stopping: Callable[[], bool]) -> Any:
    """The queue's reaper lock, waited for (a reaper pass holds it for milliseconds; its
    TTL bounds the wait); yields False if ``stopping()`` turned true while waiting."""
    from redis.exceptions import LockError

    from graflow.worker.failover import LOCK_SECONDS

    lock = connection.lock(keys.reaper_lock(prefix, queue), timeout=LOCK_SECONDS)
    deadline = time.monotonic() + LOCK_SECONDS + 1.0
    while not lock.acquire(blocking=False):
        if stopping() or time.monotonic() > deadline:
            yield False
            return
        time.sleep(0.02)
    try:
        yield True
    finally:
        with contextlib.suppress(LockError):  # it outlived LOCK_SECONDS: already free
            lock.release()


def claim_name(
    connection: Any, name: str, *, queues: Iterable[str], prefix: str, lease_seconds: float,
    max_redeliveries: int, stopping: Callable[[], bool] = lambda: False,
) -> str | None:  # fmt: skip
    """Make ``name`` registrable by this process (see the module docstring).

    Returns why a dead holder's registration was taken over (None when the name was
    free). Raises ``ConfigError`` when a live worker keeps it for a whole lease.
    """
    deadline = time.monotonic() + lease_seconds + 1.0
    while True:
        held = read_registration(connection, name)
        if held is None:
            return None
        reason = held.dead_because(lease_seconds, alive=leases.is_alive(connection, prefix, name))
        if reason is not None:
            break
        if stopping() or time.monotonic() > deadline:
            raise ConfigError(
                f"worker name {name!r} is registered by a live worker (pid {held.pid} on "
                f"{held.hostname or 'an unknown host'}, heartbeating); stop that worker or "
                "choose another --name"
            )
        time.sleep(_POLL)
    if "death" not in held.fields:
        served = [*queues, *held.queues]
        hand_back_jobs(connection, name, served, prefix=prefix, max_redeliveries=max_redeliveries,
                       why=f"lost ({reason})", by=name, stopping=stopping)  # fmt: skip
        log.warning(
            "worker %s: took over the registration of a dead worker with this name (%s)",
            name,
            reason,
        )
    drop_registration(connection, name, [*queues, *held.queues])
    return reason


def _process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``Z`` for a zombie), ``"?"`` if alive but
    unreadable, None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def _process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (Unix time, Linux only), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        ticks = os.sysconf("SC_CLK_TCK")
        return btime + int(fields[19]) / ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


__all__ = [
    "Registration",
    "claim_name",
    "drop_registration",
    "hand_back_jobs",
    "read_registration",
    "worker_key",
]
