"""The pool's workers as an operator sees them: ``graflow workers`` and the dashboard.

Reads only. rq knows each worker (name, host, pid, queues, state, counts, its current
job); graflow knows what that job is (its run, task and attempt, from the session's
``running`` hash) and how long it may still run (its lease, ``keys.leases``). Both are
read in two pipelines, however many workers: the registered names with the prefix's
leases and the Redis clock, then every worker's registration with the running record of
every leased attempt. A third is sent only for current jobs no lease of the prefix
covers (a plain ``rq worker``'s, or one between its lease's removal and the worker hash's
update), to find their session under the prefix and when they started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from graflow import keys
from graflow.distributed.dispatch import parse_job_id
from graflow.distributed.rqapi import layout
from graflow.distributed.rqapi import workers as rq_workers
from graflow.distributed.run_view import leased_jobs
from graflow.redisconn import as_text

#: ``state`` of a worker whose rq heartbeat key (its hash) expired while its name is
#: still registered: it died without registering its death.
LOST = "lost"


@dataclass
class WorkerView:
    """One registered rq worker, and the graflow attempt it runs if any."""

    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    #: rq's state (``idle``, ``busy``, ``suspended``, ``started`` …), or ``lost``.
    state: str
    #: The rq job id it runs, "" when none.
    current_job: str = ""
    #: The graflow run of the current job: "" when idle, or when the job is not a graflow
    #: job of a run under the prefix read.
    session_id: str = ""
    #: The task of the current attempt, "" when unknown (its ``START`` not recorded yet).
    task_id: str = ""
    attempt: int | None = None
    #: Unix time the current job started (the worker's clock).
    started_at: float | None = None
    #: Unix time of the last rq heartbeat (the worker's clock).
    last_heartbeat: float | None = None
    birth: float | None = None
    #: The current attempt's lease deadline, unix time on the Redis server's clock. Past
    #: it (against ``WorkersSnapshot.now``), the worker is lost and a reaper will redeliver.
    lease_deadline: float | None = None
    #: Seconds since the lease was last renewed (Redis clock): ``lease_seconds - (deadline
    #: - now)``, known only when the caller tells the lease length (``GRAFLOW_HEARTBEAT``
    #: of the pool); renewals come every third of it, so more than that means the renewing
    #: supervisor is stalled or gone, and more than ``lease_seconds`` that the lease
    #: expired. None without a lease, without ``lease_seconds``, or when the deadline lies
    #: further out than one lease (a reaper's claim, or a longer lease than told).
    lease_age: float | None = None
    successful: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["queues"] = list(self.queues)
        return out


@dataclass
class WorkersSnapshot:
    """The workers, and the Redis server's time they were read at (lease deadlines' clock)."""

    now: float
    workers: list[WorkerView] = field(default_factory=list)


@dataclass(frozen=True)
class _Attempt:
    """A graflow attempt under the prefix: its job id's parts and its running record."""

    session_id: str
    spec_id: str
    attempt: int
    record: dict[str, Any] | None
    deadline: float | None

    @property
    def task_id(self) -> str:
        spec = (self.record or {}).get("spec")
        if not spec:
            return ""
        try:
            doc = msgspec.json.decode(spec)
        except (msgspec.DecodeError, TypeError):
            return ""
        return str(doc.get("task_id") or "") if isinstance(doc, dict) else ""

    @property
    def worker(self) -> str:
        return str((self.record or {}).get("worker") or "")

    @property
    def started_at(self) -> float | None:
        value = (self.record or {}).get("started_at")
        return float(value) if isinstance(value, int | float) else None


def _running_record(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _attempt_record(attempt: _Attempt, raw: Any) -> _Attempt:
    """``attempt`` with its running record, when that record is of this very attempt."""
    record = _running_record(raw)
    if record is not None and int(record.get("attempt") or 1) != attempt.attempt:
        record = None  # a later attempt of the activation runs now
    return _Attempt(attempt.session_id, attempt.spec_id, attempt.attempt, record, attempt.deadline)


def snapshot(client: Any, prefix: str, queues: Sequence[str] | None = None, *,
             lease_seconds: float | None = None) -> WorkersSnapshot:  # fmt: skip
    """The rq workers serving ``queues`` (every rq worker on the connection for None),
    sorted by name, with the graflow attempt each runs when it is one of a run under
    ``prefix``. ``lease_seconds``: the pool's lease length, for ``lease_age``."""
    sets = rq_workers.registration_sets(queues)
    pipe = client.pipeline(transaction=False)
    for key in sets:
        pipe.smembers(key)
    pipe.zrange(keys.leases(prefix), 0, -1, withscores=True)
    pipe.time()
    *members, leases, (seconds, micros) = pipe.execute()
    now = float(seconds) + float(micros) / 1e6

    served = _registered(queues, members)
    attempts = _leased(leases)

    names = sorted(served)
    pipe = client.pipeline(transaction=False)
    counts = [rq_workers.queue_reads(pipe, name) for name in names]
    for attempt in attempts.values():
        pipe.hget(keys.SessionKeys(prefix, attempt.session_id).running, attempt.spec_id)
    replies = pipe.execute()
    records, at = [], 0
    for name, count in zip(names, counts, strict=True):
        records.append(rq_workers.record(name, replies[at : at + count]))
        at += count
    attempts = {job: _attempt_record(a, raw) for (job, a), raw in zip(attempts.items(), replies[at:], strict=True)}

    by_worker = {a.worker: job for job, a in attempts.items() if a.worker}
    views = [_view(r, served[r.name], attempts, by_worker) for r in records]
    _resolve_uncovered(client, prefix, [v for v in views if v.current_job and v.current_job not in attempts])
    for view in views:
        leased = attempts.get(view.current_job)
        if leased is not None and leased.deadline is not None:
            view.lease_deadline = leased.deadline
            if lease_seconds is not None:
                age = lease_seconds - (leased.deadline - now)
                view.lease_age = age if age >= 0 else None
    return WorkersSnapshot(now, views)


def _registered(queues: Sequence[str] | None, members: list[Any]) -> dict[str, list[str]]:
    """Worker name -> the queues read whose registration set lists it."""
    served: dict[str, list[str]] = {}
    labels: list[str | None] = list(queues) if queues else [None]
    for queue, names in zip(labels, members, strict=True):
        for member in names:
            name = rq_workers.worker_name(member)
            if name is not None:
                served.setdefault(name, []).extend([queue] if queue else [])
    return served


def _leased(leases: list[tuple[Any, float]]) -> dict[str, _Attempt]:
    """rq job id -> the graflow attempt holding a lease."""
    attempts: dict[str, _Attempt] = {}
    for job, deadline in leased_jobs(leases).items():
        parts = parse_job_id(job)
        if parts is not None:
            attempts[job] = _Attempt(*parts, record=None, deadline=deadline)
    return attempts


def list_workers(client: Any, prefix: str, queues: Sequence[str] | None = None, *,
                 lease_seconds: float | None = None) -> list[WorkerView]:  # fmt: skip
    """``snapshot(...).workers``: the workers sorted by name (see ``snapshot``)."""
    return snapshot(client, prefix, queues, lease_seconds=lease_seconds).workers


def _view(record: rq_workers.WorkerRecord, queues: list[str], attempts: dict[str, _Attempt],
          by_worker: dict[str, str]) -> WorkerView:  # fmt: skip
    view = WorkerView(
        name=record.name, hostname=record.hostname, pid=record.pid, queues=record.queues or queues,
        state=LOST if record.expired else record.state, current_job=record.current_job,
        last_heartbeat=record.last_heartbeat, birth=record.birth, successful=record.successful,
        failed=record.failed,
    )  # fmt: skip
    if record.expired and not view.current_job:
        # rq forgot what it ran; the running record of a leased attempt still names it.
        view.current_job = by_worker.get(record.name, "")
    attempt = attempts.get(view.current_job)
    if attempt is not None:
        _fill(view, attempt)
    return view


def _fill(view: WorkerView, attempt: _Attempt) -> None:
    view.session_id, view.attempt = attempt.session_id, attempt.attempt
    view.task_id, view.started_at = attempt.task_id, attempt.started_at


def _resolve_uncovered(client: Any, prefix: str, views: list[WorkerView]) -> None:
    """Fill the current jobs no lease of the prefix covers, in one more pipeline: the
    session when the job is a graflow attempt whose run exists under ``prefix`` (its
    running record names the attempt), and when the job started (rq's job hash)."""
    if not views:
        return
    pipe = client.pipeline(transaction=False)
    parts = [parse_job_id(v.current_job) for v in views]
    for view, part in zip(views, parts, strict=True):
        pipe.hget(layout.JOB_PREFIX + view.current_job, "started_at")
        if part is not None:
            pipe.hget(keys.SessionKeys(prefix, part[0]).running, part[1])
    replies = iter(pipe.execute())
    for view, part in zip(views, parts, strict=True):
        started = next(replies)
        view.started_at = rq_workers.timestamp(as_text(started) if started is not None else None)
        if part is None:
            continue
        attempt = _attempt_record(_Attempt(*part, record=None, deadline=None), next(replies))
        if attempt.record is not None:
            _fill(view, attempt)
            view.started_at = attempt.started_at or view.started_at


__all__ = ["LOST", "WorkerView", "WorkersSnapshot", "list_workers", "snapshot"]
