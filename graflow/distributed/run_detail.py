"""One run as the dashboard draws it: its graph with a state per node, and per task the
attempts, in a few pipelined reads.

The node states come from the session's own structures (``:completed``, ``:running``,
``:pending``, the lease set), not from replaying the event log: the log is capped
(``MAXLEN ~ 1000``) and a 1,000-task fan-out outgrows it, while the structures are
exact. The log adds what they do not keep: each attempt's worker, outcome and error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from graflow import keys
from graflow.core.cycle import base_task_id
from graflow.distributed import run_view
from graflow.distributed.run_shape import decode_shape
from graflow.redisconn import as_text


@dataclass
class LiveRun:
    """What changes while a run goes on: the summary, each node's state and counters, and
    the attempts running now."""

    summary: run_view.RunSummary
    #: task id -> pending, queued, running, redelivered, lost, completed, failed or
    #: canceled (tasks and groups the run has reached or knows of; docs/dashboard.md).
    nodes: dict[str, str] = field(default_factory=dict)
    #: task id -> [cycles, retries]: loop iterations started, retries used.
    counts: dict[str, list[int]] = field(default_factory=dict)
    #: dynamic task id -> the task that added it.
    parents: dict[str, str] = field(default_factory=dict)
    running: list[run_view.RunningAttempt] = field(default_factory=list)


def _specs(values: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for raw in values:
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def run_state(client: Any, prefix: str, session_id: str) -> LiveRun | None:
    """The run's current state (None when its keys are gone), in one pipeline."""
    k = keys.SessionKeys(prefix, session_id)
    pipe = client.pipeline(transaction=False)
    run_view._queue_reads(pipe, k)
    pipe.zrange(k.completed, 0, -1)
    pipe.hgetall(k.running)
    pipe.hvals(k.pending)
    pipe.hgetall(k.cycles)
    pipe.hgetall(k.retries)
    pipe.smembers(k.known)
    pipe.hgetall(k.parents)
    pipe.zrange(keys.leases(prefix), 0, -1, withscores=True)
    pipe.time()
    replies = pipe.execute()
    summary = run_view._summary(session_id, replies[:6])
    if summary is None:
        return None
    completed, running, pending, cycles, retries, known, parents, leases, (sec, usec) = replies[6:]
    attempts = run_view.parse_running(session_id, running, leases, sec + usec / 1e6)
    # A loop's iterations (``next_iteration``: ``{base}_cycle_{n}_{hex}``) are drawn as their
    # base task, which shows the state of the latest one and the count of iterations.
    nodes: dict[str, str] = {}
    for task_id in known:
        nodes[base_task_id(as_text(task_id))] = "pending"
    for task_id in completed:
        nodes[base_task_id(as_text(task_id))] = "completed"
    if summary.failed_task:
        nodes[base_task_id(summary.failed_task)] = "failed"
    final = summary.done
    for doc in _specs(pending):
        task_id = base_task_id(str(doc.get("task_id") or ""))
        if task_id:
            nodes[task_id] = "canceled" if final else ("redelivered" if doc.get("redeliveries") else "queued")
    for attempt in attempts:
        task_id = base_task_id(attempt.task_id)
        if not task_id:
            continue
        if final:
            nodes[task_id] = "canceled"
        elif attempt.lost:
            nodes[task_id] = "lost"
        else:
            nodes[task_id] = "redelivered" if attempt.redeliveries else "running"
    counts: dict[str, list[int]] = {}
    for name, n in cycles.items():
        counts.setdefault(as_text(name), [0, 0])[0] = int(n)
    for name, n in retries.items():
        counts.setdefault(as_text(name), [0, 0])[1] = int(n)
    folded = {}
    for child, parent in parents.items():
        child_id, parent_id = base_task_id(as_text(child)), base_task_id(as_text(parent))
        if child_id != parent_id:  # an iteration is its base task, not a child of it
            folded[child_id] = parent_id
    for attempt in attempts:
        attempt.task_id = attempt.task_id or attempt.spec_id[:8]
    return LiveRun(summary=summary, nodes=nodes, counts=counts, parents=folded, running=attempts)


def graph_shape(client: Any, prefix: str, session_id: str, state: LiveRun | None = None) -> dict[str, Any]:
    """The run's shape (``run_shape``) with its dynamic tasks added, each with an edge from
    the task that added it, and every node the state names that the shape lacks (a run
    submitted before shapes were kept is drawn from its states alone)."""
    shape = decode_shape(client.get(keys.SessionKeys(prefix, session_id).shape))
    ids = {n["id"] for n in shape["nodes"]}
    edges = {(u, v) for u, v in shape["edges"]}
    if state is not None:
        for child, parent in state.parents.items():
            if child not in ids:
                shape["nodes"].append({"id": child, "kind": "task", "dynamic": True})
                ids.add(child)
            if parent in ids and (parent, child) not in edges:
                shape["edges"].append([parent, child])
                edges.add((parent, child))
        for node in state.nodes:
            if node not in ids:
                shape["nodes"].append({"id": node, "kind": "task", "dynamic": True})
                ids.add(node)
    return shape


@dataclass
class Attempt:
    """One attempt of a task, as the event log tells it."""

    spec_id: str
    attempt: int
    #: The activation's own id: a loop iteration's (``{base}_cycle_{n}_{hex}``) is folded
    #: into its base task's attempts.
    task_id: str = ""
    worker: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str = "running"
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["duration"] = None if self.started_at is None or self.ended_at is None else self.ended_at - self.started_at
        return out


_OUTCOMES = {"completed": "completed", "retried": "failed (retried)", "failed": "failed", "unrunnable": "unrunnable"}


def attempts(events: Iterable[run_view.Event]) -> dict[str, list[Attempt]]:
    """task id -> its attempts oldest first, from the run's events. A ``redelivered`` event
    ends the attempt its lost worker held (outcome ``lost``)."""
    by_key: dict[tuple[str, int], Attempt] = {}
    per_task: dict[str, list[Attempt]] = {}
    for event in events:
        run_id = event.task
        task_id = base_task_id(run_id)
        spec_id = str(event.data.get("spec_id") or "")
        if not task_id or not spec_id:
            continue
        try:
            number = int(event.data.get("attempt") or 1)
        except (TypeError, ValueError):
            number = 1
        if event.kind == "redelivered":
            number -= 1  # the event names the new attempt; the lost one is the one before
        key = (spec_id, number)
        current = by_key.get(key)
        if current is None:
            if event.kind not in ("started", *_OUTCOMES, "redelivered"):
                continue
            current = by_key[key] = Attempt(spec_id=spec_id, attempt=number, task_id=run_id)
            per_task.setdefault(task_id, []).append(current)
        if event.kind == "started":
            current.worker = str(event.data.get("worker") or "")
            current.started_at = event.time
        elif event.kind in _OUTCOMES:
            current.outcome = _OUTCOMES[event.kind]
            current.ended_at = event.time
            current.error = str(event.data.get("error") or event.data.get("reason") or "")
        elif event.kind == "redelivered":
            current.outcome = "lost"
            current.ended_at = event.time
            current.worker = current.worker or str(event.data.get("lost_worker") or "")
    return per_task


def checkpoints(client: Any, prefix: str, session_id: str) -> list[dict[str, Any]]:
    """The run's checkpoints oldest first: location, time, steps done when it was written."""
    raw = client.hgetall(keys.SessionKeys(prefix, session_id).checkpoints)
    out = []
    for location, value in raw.items():
        try:
            doc = msgspec.json.decode(value)
        except msgspec.DecodeError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        out.append({"location": as_text(location), "time": run_view.number(str(doc.get("time", ""))),
                    "steps": int(doc.get("steps") or 0)})  # fmt: skip
    out.sort(key=lambda c: (c["time"] or 0.0, c["location"]))
    return out


def failure(client: Any, prefix: str, summary: run_view.RunSummary) -> dict[str, str]:
    """The run's error: failed task, type, message and traceback ({} when it has none). The
    summary holds all but the traceback, read only for a run that has an error."""
    if not (summary.failed_task or summary.error_type or summary.error):
        return {}
    traceback = client.hget(keys.SessionKeys(prefix, summary.session_id).meta, "traceback")
    return {"task": summary.failed_task, "type": summary.error_type, "message": summary.error,
            "traceback": as_text(traceback) if traceback else ""}  # fmt: skip


__all__ = ["Attempt", "LiveRun", "attempts", "checkpoints", "failure", "graph_shape", "run_state"]
