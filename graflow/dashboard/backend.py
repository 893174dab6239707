"""What the dashboard's pages read: every document it serves, built from Redis.

Plain synchronous functions over one redis-py client (the web layer calls them in a
thread pool), so they are tested without a browser and shared by the JSON API and the
live streams. Nothing here renders HTML: the pages build their DOM from these documents
with ``textContent``, so task ids, channel keys and results (user data) are never markup.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from graflow import keys
from graflow.codec import SecretKey
from graflow.core.cycle import base_task_id
from graflow.distributed import run_detail, run_view
from graflow.distributed.run_logs import read_logs
from graflow.exceptions import SessionNotFoundError

#: A result preview shows at most this many characters of the value's JSON (or repr).
PREVIEW_CHARS = 4096
#: A result stored in more bytes than this is not loaded for a preview at all.
PREVIEW_MAX_BYTES = 1 << 20
#: Log entries a task's panel shows (the newest).
TASK_LOG_ENTRIES = 200
#: Events the run page loads with the run (older ones: ``events?before=``).
PAGE_EVENTS = 200
#: Rows the runs page lists.
RUNS_LIMIT = 200

_MISSING = object()


@dataclass
class Backend:
    """The pool the dashboard shows: one Redis, one key prefix."""

    client: Any
    redis_url: str
    prefix: str
    secret_key: SecretKey = None
    queues: list[str] = field(default_factory=list)

    # -- runs ----------------------------------------------------------------------
    def runs(self, states: list[str] | None = None, workflow: str | None = None, limit: int = RUNS_LIMIT) -> dict[str, Any]:
        rows = run_view.list_runs(self.client, self.prefix, states=states or (), workflow=workflow or None, limit=limit)
        now = time.time()
        return {"now": now, "prefix": self.prefix, "runs": [_run_row(r, now) for r in rows]}

    # -- one run -------------------------------------------------------------------
    def state(self, session_id: str) -> run_detail.LiveRun:
        state = run_detail.run_state(self.client, self.prefix, session_id)
        if state is None:
            raise SessionNotFoundError(session_id, f"prefix {self.prefix!r}")
        return state

    def run(self, session_id: str) -> dict[str, Any]:
        """The run page's document: summary, graph and its layout, node states, attempts
        by task, checkpoints, error, latest events."""
        from graflow.dashboard.layout import layout

        state = self.state(session_id)
        shape = run_detail.graph_shape(self.client, self.prefix, session_id, state)
        events = run_view.events(self.client, self.prefix, session_id, count=None)
        attempts = run_detail.attempts(events)
        nodes = _with_event_states(state, attempts)
        now = time.time()
        return {
            "now": now, "session_id": session_id, "summary": _run_row(state.summary, now),
            "shape": shape, "layout": layout(shape), "nodes": nodes, "counts": state.counts,
            "attempts": {t: len(a) for t, a in attempts.items()},
            "redelivered": _redelivered(attempts),
            "checkpoints": self.checkpoints(session_id), "error": run_detail.failure(self.client, self.prefix, state.summary),
            "running": [a.to_dict() for a in state.running],
            "events": [e.to_dict() for e in events[-PAGE_EVENTS:]], "events_total": len(events),
            "last_event": events[-1].id if events else "0-0",
        }  # fmt: skip

    def live(self, session_id: str) -> dict[str, Any]:
        """What a live update carries: summary, node states and counters (the stream sends
        only what changed since its last update)."""
        state = self.state(session_id)
        now = time.time()
        return {"now": now, "summary": _run_row(state.summary, now), "nodes": state.nodes, "counts": state.counts,
                "known": sorted(set(state.nodes) | set(state.parents))}  # fmt: skip

    def events(self, session_id: str, after: str | None = None, count: int = 500) -> list[dict[str, Any]]:
        return [e.to_dict() for e in run_view.events(self.client, self.prefix, session_id, after=after, count=count)]

    def checkpoints(self, session_id: str) -> list[dict[str, Any]]:
        from graflow.dashboard.files import checkpoint_meta

        # meta.json's steps are the checkpoint's own; the session's note is the fallback
        return [c | {k: v for k, v in checkpoint_meta(c["location"]).items() if v is not None or k == "size"}
                for c in run_detail.checkpoints(self.client, self.prefix, session_id)]

    def task(self, session_id: str, task_id: str) -> dict[str, Any]:
        """A task's panel: state, attempts, result preview, error, captured logs, channel keys
        written. A loop iteration's id names its base task (the node that draws it)."""
        task_id = base_task_id(task_id)
        state = self.state(session_id)
        events = run_view.events(self.client, self.prefix, session_id, count=None)
        attempts = run_detail.attempts(events)
        nodes = _with_event_states(state, attempts)
        shape = run_detail.graph_shape(self.client, self.prefix, session_id, state)
        if task_id not in nodes and not any(n["id"] == task_id for n in shape["nodes"]):
            raise KeyError(task_id)
        failure = run_detail.failure(self.client, self.prefix, state.summary)
        logs = [e.to_dict() for e in read_logs(self.client, self.prefix, session_id)
                if base_task_id(e.task_id) == task_id][-TASK_LOG_ENTRIES:]  # fmt: skip
        cycles, retries = state.counts.get(task_id, [0, 0])
        return {
            "session_id": session_id, "task_id": task_id, "state": nodes.get(task_id, "pending"),
            "cycles": cycles, "retries": retries, "parent": state.parents.get(task_id, ""),
            "attempts": [a.to_dict() for a in attempts.get(task_id, [])],
            "error": failure if base_task_id(failure.get("task", "")) == task_id else {},
            "result": self.result_preview(session_id, task_id), "logs": logs,
            "writes": self.writes(session_id, task_id),
        }  # fmt: skip

    def result_preview(self, session_id: str, task_id: str) -> dict[str, Any]:
        """The task's stored result, size-capped, as text. It is decoded the way the
        workers decode channel values (signed envelopes with the pool's key): nothing the
        engine would not load, and never in the browser."""
        from graflow.distributed.run import WorkflowRun

        name = f"{keys.channel_prefix(self.prefix, session_id)}{task_id}.__result__"
        try:
            size = int(self.client.strlen(name) or 0)
        except redis.ResponseError:  # a list or hash a task wrote under that name: not a result
            return {"present": True, "size": None, "text": "", "note": "not a result value (a list or hash)"}
        if not size:
            return {"present": False}
        if size > PREVIEW_MAX_BYTES:
            return {"present": True, "size": size, "text": "", "note": f"too large to preview ({size} bytes)"}
        run = WorkflowRun(session_id, client=self.client, redis_url=self.redis_url, key_prefix=self.prefix,
                          secret_key=self.secret_key)  # fmt: skip
        try:
            value = run.get_result(task_id, _MISSING)
        except Exception as exc:  # a foreign or unsigned value, a class this process lacks
            return {"present": True, "size": size, "text": "", "note": f"cannot preview: {type(exc).__name__}: {exc}"}
        if value is _MISSING:
            return {"present": False}
        try:
            text = json.dumps(value, indent=2, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
        cut = len(text) > PREVIEW_CHARS
        return {"present": True, "size": size, "type": type(value).__name__, "text": text[:PREVIEW_CHARS],
                "truncated": cut}  # fmt: skip

    def writes(self, session_id: str, task_id: str) -> list[str]:
        from graflow.distributed.run_writes import task_writes

        merged: dict[str, None] = {}
        for run_id, names in task_writes(self.client, self.prefix, session_id).items():
            if base_task_id(run_id) == task_id:
                merged.update(dict.fromkeys(names))
        return list(merged)

    # -- workers -------------------------------------------------------------------
    def workers(self) -> dict[str, Any]:
        """The workers page: every worker of the pool's queues (all rq workers on this Redis
        when none were named), with ``now`` on the Redis clock the lease deadlines use."""
        from graflow import settings
        from graflow.distributed.pool_workers import snapshot

        view = snapshot(self.client, self.prefix, self.queues or None, lease_seconds=settings.current().heartbeat)
        return {"now": view.now, "workers": [w.to_dict() for w in view.workers]}


def _run_row(summary: run_view.RunSummary, now: float) -> dict[str, Any]:
    row = summary.to_dict()
    row["age"] = summary.age(now)
    row["duration"] = summary.duration(now)
    return row


def _with_event_states(state: run_detail.LiveRun, attempts: dict[str, list[run_detail.Attempt]]) -> dict[str, str]:
    """Node states, with what only the log tells: a branch that failed inside a group
    (the run goes on, so the session names no failed task)."""
    nodes = dict(state.nodes)
    for task_id, tried in attempts.items():
        if tried and tried[-1].outcome == "failed" and nodes.get(task_id) in (None, "pending", "skipped"):
            nodes[task_id] = "failed"
    return nodes


def _redelivered(attempts: dict[str, list[run_detail.Attempt]]) -> dict[str, int]:
    return {t: n for t, a in attempts.items() if (n := sum(1 for x in a if x.outcome == "lost"))}


__all__ = ["PREVIEW_CHARS", "Backend"]
