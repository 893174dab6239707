"""What an operator sees of pooled runs: summaries, running attempts, events, the run list.

Reads only, each in one pipeline: ``graflow runs``, ``graflow status`` (and its live
view) and ``WorkflowRun.details()`` are built on these. The run list pages through the
run index (``keys.run_index``) newest first; it never SCANs the keyspace.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from graflow import keys
from graflow.distributed import liveness
from graflow.distributed.dispatch import parse_job_id
from graflow.distributed.session import FINAL_STATES
from graflow.redisconn import as_text

#: The session fields a summary reads (one HMGET per run).
_FIELDS = ("state", "stop_reason", "workflow_name", "created_at", "started_at", "finished_at", "updated_at",
           "error_type", "failed_task", "error", "steps", "max_steps", "tasks", "last_checkpoint", "queue")  # fmt: skip


def number(value: str | None) -> float | None:
    """A numeric session field as a float; None when unset or not a number."""
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass
class RunSummary:
    """One run as ``graflow runs`` lists it."""

    session_id: str
    state: str
    workflow: str = ""
    stop_reason: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    completed: int = 0
    pending: int = 0
    running: int = 0
    #: Tasks known so far: the graph's static tasks and groups plus those added at run time.
    known: int = 0
    steps: int = 0
    max_steps: int = 0
    queue: str = ""
    workers: dict[str, int] = field(default_factory=dict)
    error_type: str = ""
    failed_task: str = ""
    error: str = ""
    last_checkpoint: str = ""

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def age(self, now: float | None = None) -> float | None:
        return None if self.created_at is None else max(0.0, (now or time.time()) - self.created_at)

    def duration(self, now: float | None = None) -> float | None:
        """Seconds from creation to the end (or to now, for a live run)."""
        if self.created_at is None:
            return None
        end = self.finished_at if self.done and self.finished_at else (now or time.time())
        return max(0.0, end - self.created_at)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["done"] = self.done
        return out


@dataclass
class RunningAttempt:
    """An attempt the session records as running, and what its lease says about its worker."""

    task_id: str
    spec_id: str
    attempt: int
    worker: str
    started_at: float | None
    #: The attempt's lease has expired: its worker is lost and a worker will redeliver it.
    lost: bool = False
    #: Times the activation was redelivered after a lost worker before this attempt.
    redeliveries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Event:
    """One entry of a run's event log, naming its task."""

    id: str
    time: float
    kind: str
    data: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.data.get("task_id") or self.data.get("group_id") or "")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "event": self.kind, "data": self.data}


def _queue_reads(pipe: Any, k: keys.SessionKeys) -> None:
    pipe.hmget(k.meta, *_FIELDS)
    pipe.zcard(k.completed)
    pipe.hlen(k.pending)
    pipe.hlen(k.running)
    pipe.scard(k.known)
    pipe.hgetall(k.workers)


def _summary(session_id: str, replies: Sequence[Any]) -> RunSummary | None:
    values, completed, pending, running, known, workers = replies
    meta = {name: as_text(v) if v is not None else "" for name, v in zip(_FIELDS, values, strict=True)}
    if not meta["state"]:
        return None
    return RunSummary(
        session_id=session_id, state=meta["state"], workflow=meta["workflow_name"], stop_reason=meta["stop_reason"],
        created_at=number(meta["created_at"]), started_at=number(meta["started_at"]),
        finished_at=number(meta["finished_at"]), updated_at=number(meta["updated_at"]),
        completed=int(completed), pending=int(pending), running=int(running),
        known=int(number(meta["tasks"]) or 0) + int(known), steps=int(number(meta["steps"]) or 0),
        max_steps=int(number(meta["max_steps"]) or 0), queue=meta["queue"],
        workers={as_text(w): int(n) for w, n in workers.items()}, error_type=meta["error_type"],
        failed_task=meta["failed_task"], error=meta["error"], last_checkpoint=meta["last_checkpoint"],
    )  # fmt: skip


def summaries(client: Any, prefix: str, sessions: Sequence[str]) -> list[RunSummary | None]:
    """The summaries of ``sessions`` (None for one whose keys are gone), in one pipeline."""
    pipe = client.pipeline(transaction=False)
    for session_id in sessions:
        _queue_reads(pipe, keys.SessionKeys(prefix, session_id))
    replies = pipe.execute()
    return [_summary(s, replies[i * 6 : i * 6 + 6]) for i, s in enumerate(sessions)]


def list_runs(
    client: Any,
    prefix: str,
    *,
    states: Iterable[str] = (),
    workflow: str | None = None,
    since: float | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    """Runs under ``prefix`` created at or after ``since`` (unix time), newest first, at most
    ``limit``, filtered by state and workflow name. Runs whose keys are gone leave the index."""
    liveness.prune_index(client, prefix)
    wanted = set(states)
    index = keys.run_index(prefix)
    low = "-inf" if since is None else since
    out: list[RunSummary] = []
    offset, page = 0, max(100, limit * 2)
    while len(out) < limit:
        sessions = [as_text(s) for s in client.zrevrangebyscore(index, "+inf", low, start=offset, num=page)]
        if not sessions:
            break
        offset += len(sessions)
        gone = []
        for session_id, summary in zip(sessions, summaries(client, prefix, sessions), strict=True):
            if summary is None:
                gone.append(session_id)
            elif (not wanted or summary.state in wanted) and (not workflow or summary.workflow == workflow):
                out.append(summary)
        if gone:  # purged, or its keys expired a moment before the index noted it
            liveness.forget(client, prefix, *gone)
            offset -= len(gone)
    return out[:limit]


def leased_jobs(leases: Iterable[tuple[Any, Any]]) -> dict[str, float]:
    """rq job id -> its lease deadline, from ``ZRANGE keys.leases(P) … WITHSCORES``
    (members ``{job_id}:{execution_id}``; the latest deadline when a job has several)."""
    out: dict[str, float] = {}
    for member, score in leases:
        job = as_text(member).rpartition(":")[0]
        out[job] = max(out.get(job, float(score)), float(score))
    return out


def parse_running(session_id: str, running: dict[Any, Any], leases: Iterable[tuple[Any, Any]],
                  now: float) -> list[RunningAttempt]:  # fmt: skip
    """The session's ``:running`` records as attempts, oldest first, each marked ``lost``
    when its lease expired before ``now`` (the Redis server's clock). ``task_id`` is ""
    for a record whose spec does not name one (a producer's group placeholder)."""
    deadlines: dict[tuple[str, int], float] = {}
    for job, deadline in leased_jobs(leases).items():
        parts = parse_job_id(job)
        if parts is not None and parts[0] == session_id:
            deadlines[(parts[1], parts[2])] = deadline
    out = []
    for spec_id, raw in running.items():
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        spec: Any = {}
        if doc.get("spec"):
            try:
                spec = msgspec.json.decode(doc["spec"])
            except (msgspec.DecodeError, TypeError):
                spec = {}
        spec = spec if isinstance(spec, dict) else {}
        spec_id = as_text(spec_id)
        attempt = int(doc.get("attempt") or 1)
        lease_end = deadlines.get((spec_id, attempt))
        out.append(RunningAttempt(task_id=str(spec.get("task_id") or ""), spec_id=spec_id, attempt=attempt,
                                  worker=str(doc.get("worker") or ""), started_at=number(str(doc.get("started_at") or "")),
                                  lost=lease_end is not None and lease_end < now,
                                  redeliveries=int(spec.get("redeliveries") or 0)))  # fmt: skip
    out.sort(key=lambda a: (a.started_at or 0.0, a.task_id))
    return out


def running_attempts(client: Any, prefix: str, session_id: str) -> list[RunningAttempt]:
    """The run's running attempts, each marked ``lost`` when its lease has expired (on the
    Redis server's clock): its worker is gone and the pool will redeliver it."""
    k = keys.SessionKeys(prefix, session_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(k.running)
    pipe.zrange(keys.leases(prefix), 0, -1, withscores=True)
    pipe.time()
    running, leases, (seconds, micros) = pipe.execute()
    out = parse_running(session_id, running, leases, seconds + micros / 1e6)
    for attempt in out:
        attempt.task_id = attempt.task_id or attempt.spec_id[:8]
    return out


def events(client: Any, prefix: str, session_id: str, *, after: str | None = None, count: int | None = None) -> list[Event]:
    """Events oldest first: the last ``count`` (all with None), or those after entry ``after``."""
    log = keys.SessionKeys(prefix, session_id).log
    if after is not None:
        raw = client.xrange(log, min=f"({after}", max="+", count=count)
    elif count is not None:
        raw = list(reversed(client.xrevrange(log, count=count)))
    else:
        raw = client.xrange(log)
    out = []
    for entry_id, fields in raw:
        data = {as_text(a): as_text(b) for a, b in fields.items()}
        ident = as_text(entry_id)
        try:
            payload = msgspec.json.decode(data.get("data", "{}"))
        except msgspec.DecodeError:
            payload = {}
        out.append(Event(ident, int(ident.split("-")[0]) / 1000.0, data.get("event", ""),
                         payload if isinstance(payload, dict) else {}))  # fmt: skip
    return out


__all__ = ["Event", "RunSummary", "RunningAttempt", "events", "leased_jobs", "list_runs", "number", "parse_running",
           "running_attempts", "summaries"]
