"""Checkpoints written by workers: small, session-id only, from a state snapshot.

The snapshot is taken inside the commit (deferred requests) or in one MULTI
(immediate requests), so activations completing concurrently on other workers
appear as pending, never half-applied. Activations inside a running group are
folded into the group's own activation: the whole group runs again on resume.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from graflow import settings
from graflow.core.checkpoint_schema import SCHEMA_VERSION, BackendInfo, PendingEntry, StateDoc
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import decode

logger = logging.getLogger("graflow.worker")

#: Told ``(workflow name, bytes written)`` after each checkpoint this process writes for a
#: pooled run (the worker's metrics register here: this layer knows no worker code).
_written_hooks: list[Callable[[str, int], None]] = []


def on_written(hook: Callable[[str, int], None]) -> None:
    """Call ``hook(workflow, nbytes)`` after every pool checkpoint this process writes."""
    if hook not in _written_hooks:
        _written_hooks.append(hook)


def _tell_written(workflow: str, nbytes: int) -> None:
    for hook in _written_hooks:
        try:
            hook(workflow, nbytes)
        except Exception:  # an observer never fails the write
            logger.warning("checkpoint hook failed", exc_info=True)
#: Session fields of a deferred checkpoint in flight: set by the commit, cleared once written.
DEFERRED_FIELDS = ("checkpointing", "checkpoint_request")

if TYPE_CHECKING:
    from graflow.core.checkpoint_meta import CheckpointMetadata
    from graflow.core.task_context import CheckpointRequest
    from graflow.distributed.pool_context import PoolContext
    from graflow.distributed.session import SessionStore


def _pairs(flat: list[Any]) -> dict[str, str]:
    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _top_level(store: SessionStore, wire: Wire) -> Wire:
    """The activation to re-run for ``wire``: itself, or the outermost group it runs inside."""
    while wire.group_run:
        record = store.group(wire.group_run)
        if not record.get("spec"):
            break
        wire = decode(record["spec"])
    return wire


def pending_from_snapshot(store: SessionStore, snap: dict[str, Any], exclude: str | None) -> list[PendingEntry]:
    specs: list[Wire] = [decode(raw) for raw in snap.get("pending") or []]
    for raw in snap.get("running") or []:
        entry = msgspec.json.decode(raw)
        if entry.get("spec"):
            specs.append(decode(entry["spec"]))
    seen: set[str] = set()
    entries: list[PendingEntry] = []
    for wire in sorted((_top_level(store, w) for w in specs), key=lambda w: w.enqueued_at):
        if wire.spec_id in seen or wire.phase == "finish" or wire.task_id == exclude:
            continue
        seen.add(wire.spec_id)
        entries.append(
            PendingEntry(
                task_id=wire.task_id, spec_id=wire.spec_id, created_at=wire.enqueued_at,
                attempt=wire.attempt, retry_count=wire.retry_count, dynamic=wire.dynamic,
                parent_task_id=wire.parent_task_id, trace_id=wire.trace_id or None,
            )
        )  # fmt: skip
    return entries


def state_from_snapshot(
    pctx: PoolContext, snap: dict[str, Any], checkpoint_id: str, resuming: str | None, storage: str
) -> StateDoc:
    joins = {t: list(msgspec.json.decode(v)) for t, v in _pairs(snap.get("joins") or []).items()}
    return StateDoc(
        schema_version=SCHEMA_VERSION,
        checkpoint_id=checkpoint_id,
        session_id=pctx.session_id,
        trace_id=pctx.trace_id,
        start_node=pctx.start_node,
        steps=int(snap.get("steps") or 0),
        max_steps=pctx.max_steps,
        default_max_cycles=pctx.default_max_cycles,
        default_max_retries=pctx.default_max_retries,
        completed_tasks=[c.decode() if isinstance(c, bytes) else c for c in snap.get("completed") or []],
        cycle_counts={k: int(v) for k, v in _pairs(snap.get("cycles") or []).items()},
        retry_counts={k: int(v) for k, v in _pairs(snap.get("retries") or []).items()},
        join_arrivals=joins,
        known_dynamic=sorted(snap.get("known") or []),
        pending_tasks=pending_from_snapshot(pctx.store, snap, resuming),
        resuming_task_id=resuming,
        backend=BackendInfo(channel="redis", queue="redis", storage=storage),
        stop_reason=None,
    )


def write_snapshot_checkpoint(
    pctx: PoolContext,
    snap: dict[str, Any],
    path: str | None,
    metadata: dict[str, Any],
    resuming_task_id: str | None,
) -> tuple[str, CheckpointMetadata]:
    from graflow.core.checkpoint_meta import new_checkpoint_id
    from graflow.core.checkpoint_writer import store_artefacts
    from graflow.core.redis_stub import RedisRunStub
    from graflow.redisconn import ConnectionDescriptor
    from graflow.storage import open_directory, open_location

    steps = int(snap.get("steps") or 0)
    target = path or settings.current().checkpoint_dir
    if path:
        store, base = open_location(path)
    else:
        store = open_directory(target)
        base = store.auto_base(pctx.session_id, steps)
    checkpoint_id = new_checkpoint_id(pctx.session_id, steps)
    client = pctx.store.client
    fingerprint = (client.hget(pctx.store.keys.meta, "graph_fingerprint") or b"").decode()
    stub = RedisRunStub(
        session_id=pctx.session_id,
        trace_id=pctx.trace_id,
        start_node=pctx.start_node,
        max_steps=pctx.max_steps,
        default_max_cycles=pctx.default_max_cycles,
        default_max_retries=pctx.default_max_retries,
        graph_hash=pctx.graph_hash or "",
        graph_fingerprint=fingerprint,
        descriptor=ConnectionDescriptor.from_client(client),
        key_prefix=pctx.store.prefix,
        workflow_name=pctx.workflow_name,
    )
    state = state_from_snapshot(pctx, snap, checkpoint_id, resuming_task_id, store.kind)
    written: list[int] = []
    location, meta = store_artefacts(
        store, base, stub, state, metadata, pctx.graph_hash, fingerprint or None, pctx.secret_key, written
    )
    # deferred: the commit that took the snapshot set DEFERRED_FIELDS. The session records
    # where *another* process finds it (`graflow status` runs elsewhere): absolute for files.
    pctx.store.note_checkpoint(store.absolute(location), DEFERRED_FIELDS if resuming_task_id is None else ())
    if _written_hooks:
        _tell_written(pctx.workflow_name or "", sum(written))
    return location, meta


def write_from_snapshot(
    pctx: PoolContext, request: CheckpointRequest, snap: dict[str, Any], task_id: str, finished: bool
) -> dict[str, Any] | None:
    """A deferred request, with the state the commit captured.

    Returns None once written. A write that fails ends the run with the
    ``CheckpointError`` (the task stays completed, its successors stay pending
    and are not handed to rq); the outcome of that step is returned. ``finished`` says
    that the commit itself just ended the run, which the failure then overrides.
    """
    from graflow.codec import Purpose, dumps

    try:
        write_snapshot_checkpoint(pctx, snap, request.path, request.metadata, None)
        return None
    except Exception as exc:
        logger.error("session %s: the checkpoint requested by %s could not be written; the run fails: %s",
                     pctx.session_id, task_id, exc)  # fmt: skip
        try:
            blob = dumps(exc, Purpose.VALUE, secret_key=pctx.secret_key)
        except Exception:
            blob = b""
        fields = {"error_type": type(exc).__name__, "failed_task": task_id, "traceback": "".join(traceback.format_exception(exc))}
        outcome = pctx.store.end_run("failed", "task_failed", str(exc), fields, error_blob=blob, force=finished)
        pctx.store.client.hdel(pctx.store.keys.meta, *DEFERRED_FIELDS)
        return outcome


def write_pool_checkpoint(
    pctx: PoolContext, path: str | None, metadata: dict[str, Any], resuming_task_id: str
) -> tuple[str, CheckpointMetadata]:
    """An immediate request (``deferred=False``): the session as it is now."""
    return write_snapshot_checkpoint(pctx, pctx.store.snapshot(), path, metadata, resuming_task_id)


__all__ = [
    "DEFERRED_FIELDS", "on_written", "write_from_snapshot", "write_pool_checkpoint",
    "write_snapshot_checkpoint",
]
