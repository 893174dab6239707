"""Reading a run's task output (``P:session:{S}:output``), once or as it is written.

The worker's capture (``graflow.worker.capture``) writes one entry per piece of an
attempt's output (``stream`` stdout, stderr, log, or ``omitted`` for the marker of a
truncated attempt) and, when the attempt wrote anything, an ``end`` entry with its
outcome, the bytes it dropped and the run's state at that moment (``run``). Attempts write
their rest together with their end entry in one step, so an attempt whose output has
started and has no end entry yet is still running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graflow import keys
from graflow.distributed.session import FINAL_STATES
from graflow.redisconn import as_text

#: Seconds ``follow_logs`` waits after the run's end for output still on its way, when
#: it cannot tell that the attempt that ended the run has written all of its own.
FOLLOW_GRACE = 2.0
_PAGE = 1000


@dataclass(frozen=True)
class LogEntry:
    """One entry of the output stream."""

    id: str
    task_id: str
    spec_id: str
    attempt: int
    worker: str
    stream: str
    text: str = ""
    #: End entries only: the attempt's outcome, the bytes it did not keep, the run's state.
    outcome: str = ""
    dropped: int = 0
    run: str = ""

    @property
    def time(self) -> float:
        """When Redis stored it (seconds since the epoch)."""
        return int(self.id.split("-", 1)[0]) / 1000.0

    @property
    def is_end(self) -> bool:
        return self.stream == "end"

    def lines(self) -> list[str]:
        """The text as lines (a last line without its newline counts)."""
        parts = self.text.split("\n")
        return parts[:-1] if parts and parts[-1] == "" else parts

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "time": self.time, "task_id": self.task_id, "spec_id": self.spec_id,
                               "attempt": self.attempt, "worker": self.worker, "stream": self.stream}  # fmt: skip
        if self.is_end:
            out.update(outcome=self.outcome, dropped=self.dropped, run=self.run)
        else:
            out["text"] = self.text
        return out


def _entry(entry_id: Any, fields: dict[Any, Any]) -> LogEntry:
    f = {as_text(k): as_text(v) for k, v in fields.items()}
    try:
        attempt, dropped = int(f.get("attempt") or 0), int(f.get("dropped") or 0)
    except ValueError:
        attempt, dropped = 0, 0
    return LogEntry(
        id=as_text(entry_id), task_id=f.get("task_id", ""), spec_id=f.get("spec_id", ""), attempt=attempt,
        worker=f.get("worker", ""), stream=f.get("stream", ""), text=f.get("text", ""),
        outcome=f.get("outcome", ""), dropped=dropped, run=f.get("run", ""),
    )  # fmt: skip


def read_logs(
    client: Any, prefix: str, session_id: str, task_id: str | None = None, after: str | None = None
) -> list[LogEntry]:
    """The run's output so far, oldest first: of task ``task_id`` only when given, and only
    entries after stream id ``after`` when given."""
    stream = keys.SessionKeys(prefix, session_id).output
    out: list[LogEntry] = []
    start = f"({after}" if after else "-"
    while True:
        page = client.xrange(stream, min=start, max="+", count=_PAGE)
        for entry_id, fields in page:
            entry = _entry(entry_id, fields)
            if task_id is None or entry.task_id == task_id:
                out.append(entry)
        if len(page) < _PAGE:
            return out
        start = f"({as_text(page[-1][0])}"


def _number(value: Any) -> float:
    try:
        return float(as_text(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def _ending_task(meta: list[Any]) -> str | None:
    """The task whose attempt ended the run (its last step), when the run records it."""
    state, last_task, failed_task = (as_text(v) if v is not None else None for v in meta[:3])
    if state in ("completed", "terminated"):
        return last_task or None
    if state == "failed":
        return failed_task or None
    return None


def follow_logs(
    client: Any,
    prefix: str,
    session_id: str,
    task_id: str | None = None,
    after: str | None = None,
    *,
    block: float = 1.0,
    grace: float = FOLLOW_GRACE,
) -> Iterator[LogEntry]:
    """The run's output as it is written (XREAD BLOCK), until the run has ended and its
    output with it: no attempt with output is still open and the attempt that ended the
    run has written its end entry (or ``grace`` seconds after the end, for an attempt that
    wrote nothing, or a canceled run). Stops at once when the session is gone."""
    k = keys.SessionKeys(prefix, session_id)
    last = after or "0-0"
    open_attempts: set[tuple[str, int]] = set()
    ended_by: set[str] = set()  # tasks with an end entry written after the run ended
    final_at: float | None = None
    while True:
        meta = client.hmget(k.meta, ["state", "last_task", "failed_task", "finished_at"])
        if meta[0] is None:
            return
        if final_at is None and as_text(meta[0]) in FINAL_STATES:
            # A run that ended a while ago (by its finishing worker's clock) has no output
            # on its way any more: what the stream holds is all there is.
            final_at = time.monotonic() - min(grace, max(0.0, time.time() - _number(meta[3])))
        wait = block if final_at is None else max(0.0, min(block, final_at + grace - time.monotonic()))
        reply = client.xread({k.output: last}, count=_PAGE, block=max(1, int(wait * 1000)))
        for _name, entries in reply or []:
            for entry_id, fields in entries:
                entry = _entry(entry_id, fields)
                last = entry.id
                key = (entry.spec_id, entry.attempt)
                if entry.is_end:
                    open_attempts.discard(key)
                    if entry.run in FINAL_STATES:
                        ended_by.add(entry.task_id)
                else:
                    open_attempts.add(key)
                if task_id is None or entry.task_id == task_id:
                    yield entry
        if final_at is not None:
            ending = _ending_task(meta)
            if not open_attempts and ending is not None and ending in ended_by:
                return
            # Past the grace: stop once nothing more comes or every attempt is closed.
            if time.monotonic() >= final_at + grace and (not reply or not open_attempts):
                return


__all__ = ["FOLLOW_GRACE", "LogEntry", "follow_logs", "read_logs"]
