"""The rq job function every graflow activation runs (see docs/life-of-a-task.md).

``execute_task_spec`` is importable by a plain ``rq worker`` too. It verifies the
payload's signature before decoding anything, rejects wire versions it does not
know, and fails the named session with the reason, so a bad payload never runs
and never goes unnoticed.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from graflow.codec import verify
from graflow.exceptions import PayloadError, PayloadSignatureError

logger = logging.getLogger("graflow.worker")


def _current_connection() -> Any:
    from graflow.distributed.rqapi import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("execute_task_spec must run inside an rq job")
    return job.connection, job


def _reject(connection: Any, spec_json: str, reason: BaseException) -> None:
    """Fail the session a rejected payload names, when it names one (stop_reason payload_rejected)."""
    import msgspec

    from graflow.distributed.session import SessionStore

    try:
        doc = msgspec.json.decode(spec_json)
        session_id, prefix = str(doc["session_id"]), str(doc.get("key_prefix") or "graflow")
    except Exception:
        return
    message = f"{type(reason).__name__}: {reason}"
    fields = {"error_type": type(reason).__name__}
    if isinstance(doc.get("task_id"), str):
        fields["failed_task"] = doc["task_id"]
    try:
        store = SessionStore(connection, prefix, session_id)
        if store.exists():
            store.end_run("failed", "payload_rejected", message, fields)
    except Exception:
        logger.exception("could not mark session %s as rejected", session_id)


def execute_task_spec(spec_json: str, hmac_hex: str | None = None) -> None:
    """Run one activation: verify, decode, execute, commit. Returns nothing (results live in the channel)."""
    from graflow.crash import crash_point
    from graflow.distributed.spec import WIRE_VERSION, decode
    from graflow.worker import tracing

    tracing.install()  # decided once per process (a plain `rq worker` builds no GraflowWorker)
    connection, job = _current_connection()
    # crash point "job.start": rq has dequeued the job and holds its lease; the task has
    # not started (no session step yet). The reaper must redeliver it.
    crash_point("job.start")
    data = spec_json.encode() if isinstance(spec_json, str) else bytes(spec_json)
    try:
        verify(data, hmac_hex, source=f"task payload of rq job {job.id}")
    except PayloadSignatureError as exc:
        _reject(connection, data.decode(errors="replace"), exc)
        raise
    try:
        wire = decode(data)
    except Exception as exc:
        error = PayloadError(f"task payload of rq job {job.id} is not a graflow TaskSpec: {exc}")
        _reject(connection, data.decode(errors="replace"), error)
        raise error from exc
    if wire.v != WIRE_VERSION:
        error = PayloadError(
            f"task payload of rq job {job.id} has wire version {wire.v}; this worker reads version "
            f"{WIRE_VERSION} — run the same graflow version on producers and workers"
        )
        _reject(connection, data.decode(errors="replace"), error)
        raise error
    from graflow.distributed.attempt_info import AttemptInfo
    from graflow.distributed.executor import execute
    from graflow.worker.observe import observed

    worker = getattr(job, "worker_name", None) or f"{socket.gethostname()}-{os.getpid()}"
    with observed(AttemptInfo(wire, str(worker), queue=str(getattr(job, "origin", "") or ""))) as info:
        execute(connection, wire, str(worker), None, info)
    # crash point "job.before_finish": the activation is committed and handed over; rq
    # has not marked the job finished. A redelivery must change nothing.
    crash_point("job.before_finish")


__all__ = ["execute_task_spec"]
