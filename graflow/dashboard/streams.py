"""The dashboard's live updates: server-sent events, each carrying only what changed.

A run's stream wakes on the run's pub/sub channel (every Lua step publishes there), waits
``COALESCE`` seconds for the rest of a burst, then sends one update: the summary, the
node states and counters that changed, and the new log entries. It also looks once a
second when nothing is published, because a lease expiring (a lost worker) publishes
nothing. Updates are computed from the session's structures, so a missed message costs
at most a second, never a wrong picture.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from graflow import keys
from graflow.dashboard.backend import Backend
from graflow.exceptions import SessionNotFoundError

#: Seconds a burst of events is gathered into one update.
COALESCE = 0.05
#: Seconds between looks when nothing is published (lost leases, the runs list).
IDLE = 1.0
#: New log entries one update carries at most (the page asks for more if it wants).
EVENTS_PER_UPDATE = 500


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in new.items() if old.get(k) != v}


async def run_updates(
    backend: Backend, async_client: Any, session_id: str, after: str, sleep: Callable[[float], Any] = asyncio.sleep
) -> AsyncIterator[bytes]:
    """Updates of one run until it has ended and nothing more changes."""
    pubsub = async_client.pubsub()
    await pubsub.subscribe(keys.SessionKeys(backend.prefix, session_id).events)
    nodes: dict[str, str] = {}
    counts: dict[str, Any] = {}
    known: list[str] = []
    summary: dict[str, Any] = {}
    last = after
    try:
        while True:
            try:
                live = await run_in_threadpool(backend.live, session_id)
            except SessionNotFoundError:
                yield sse({"error": f"run {session_id} is gone (purged or expired)"}, "gone")
                return
            events = await run_in_threadpool(backend.events, session_id, last, EVENTS_PER_UPDATE)
            update: dict[str, Any] = {}
            if events:
                last = events[-1]["id"]
                update["events"] = events
            if (n := _changed(nodes, live["nodes"])) or len(live["nodes"]) != len(nodes):
                update["nodes"] = n
                nodes = live["nodes"]
            if c := _changed(counts, live["counts"]):
                update["counts"] = c
                counts = live["counts"]
            if live["known"] != known:
                update["known"] = live["known"]
                known = live["known"]
            row = {k: v for k, v in live["summary"].items() if k not in ("age", "duration")}
            if row != summary:
                summary = row
                update["summary"] = live["summary"]
            if update:
                update["now"] = live["now"]
                update["last_event"] = last
                yield sse(update)
            if live["summary"]["done"] and len(events) < EVENTS_PER_UPDATE:
                yield sse({"state": live["summary"]["state"]}, "end")
                return
            if len(events) == EVENTS_PER_UPDATE:
                continue  # a backlog: send the rest before waiting
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=IDLE)
            if message is None:
                yield b": idle\n\n"  # also tells a proxy the connection is alive
                continue
            await sleep(COALESCE)
            while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0) is not None:
                pass
    finally:
        await pubsub.aclose()


async def runs_updates(
    backend: Backend, states: list[str], workflow: str | None, sleep: Callable[[float], Any] = asyncio.sleep
) -> AsyncIterator[bytes]:
    """The runs list, re-sent whenever a row changes (looked at once a second)."""
    previous: list[dict[str, Any]] | None = None
    while True:
        doc = await run_in_threadpool(backend.runs, states, workflow)
        rows = [{k: v for k, v in r.items() if k not in ("age", "duration")} for r in doc["runs"]]
        if rows != previous:
            previous = rows
            yield sse(doc)
        else:
            yield b": idle\n\n"
        await sleep(IDLE)


__all__ = ["run_updates", "runs_updates", "sse"]
