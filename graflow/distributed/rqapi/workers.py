"""rq's worker registrations, read in pipelines rather than through ``Worker.all``.

``Worker.all`` costs a round trip per worker (``EXISTS``, ``HGETALL``) and, on rq 3, two
more each for its running execution; it also drops a registration whose hash expired
(an ``SREM``: a read that writes, and the one sign of a lost worker gone). A view of the
pool (``graflow.distributed.pool_workers``) reads every worker in one pipeline instead:
the registration sets (``registration_sets``), then per worker its hash and, on rq 3, its
executions index (``queue_reads``, ``record``). The fields are the ones rq's
``Worker.refresh`` reads. A private use (``private.PRIVATE_USES``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graflow.distributed.rqapi import layout


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def registration_sets(queues: Sequence[str] | None) -> list[str]:
    """The sets naming the registered workers: those of ``queues`` (rq's
    ``rq:workers:<Q>``), or every worker on the connection (``rq:workers``) for None."""
    return [layout.workers_by_queue_key(q) for q in queues] if queues else [layout.WORKERS_SET]


def worker_name(member: Any) -> str | None:
    """The worker a registration set's member (its hash key) names; None for a stray one."""
    key = _text(member)
    return key[len(layout.WORKER_PREFIX) :] if key.startswith(layout.WORKER_PREFIX) else None


def queue_reads(pipe: Any, name: str) -> int:
    """Queue on ``pipe`` the reads of worker ``name``'s registration; returns how many
    replies ``record`` takes."""
    pipe.hgetall(layout.worker_key(name))
    index = layout.worker_executions_key(name)
    if index is None:
        return 1
    pipe.smembers(index)
    return 2


def timestamp(text: str | None) -> float | None:
    """One of rq's text timestamps (``utcformat``) as unix time; None when unset or unreadable."""
    if not text:
        return None
    try:
        return layout.utcparse(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class WorkerRecord:
    """What rq holds about one registered worker."""

    name: str
    #: The worker hash; empty once it expired (no heartbeat for rq's worker TTL) while the
    #: name is still registered: rq's sign of a lost worker, until a clean-up drops it.
    fields: dict[str, str]
    #: rq 3's executions index: ``<job_id>:<execution_id>`` of what it runs (rq 2: none).
    executions: tuple[str, ...] = ()

    @property
    def expired(self) -> bool:
        return not self.fields

    @property
    def state(self) -> str:
        return self.fields.get("state") or "?"  # rq's own default in Worker.refresh

    @property
    def hostname(self) -> str:
        return self.fields.get("hostname", "")

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(ValueError):
            return int(self.fields["pid"]) if self.fields.get("pid") else None
        return None

    @property
    def queues(self) -> list[str]:
        return [q for q in self.fields.get("queues", "").split(",") if q]

    @property
    def birth(self) -> float | None:
        return timestamp(self.fields.get("birth"))

    @property
    def last_heartbeat(self) -> float | None:
        return timestamp(self.fields.get("last_heartbeat"))

    def count(self, field: str) -> int:
        with contextlib.suppress(ValueError):
            return int(self.fields.get(field) or 0)
        return 0

    @property
    def successful(self) -> int:
        return self.count("successful_job_count")

    @property
    def failed(self) -> int:
        return self.count("failed_job_count")

    @property
    def current_job(self) -> str:
        """The id of the job it runs ("" when idle): rq 2's ``current_job`` field, or the
        job of rq 3's first execution (rq's composite ``job_id:execution_id``; rq job ids
        hold no ``:``)."""
        if self.fields.get("current_job"):
            return self.fields["current_job"]
        return min(self.executions).partition(":")[0] if self.executions else ""


def record(name: str, replies: Sequence[Any]) -> WorkerRecord:
    """The registration of ``name`` from the replies of its ``queue_reads``."""
    fields = {_text(k): _text(v) for k, v in (replies[0] or {}).items()}
    executions = tuple(sorted(_text(m) for m in replies[1])) if len(replies) > 1 and replies[1] else ()
    return WorkerRecord(name, fields, executions)


__all__ = ["WorkerRecord", "queue_reads", "record", "registration_sets", "timestamp", "worker_name"]
