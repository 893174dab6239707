"""What the dashboard's buttons do: cancel, resume from a chosen checkpoint, retry.

Each checks first that it applies and otherwise raises ``ActionRefused`` with a sentence
the page shows as it is. A checkpoint is resumed only if the run itself recorded it
(``:checkpoints`` or ``last_checkpoint``): the browser names one of the run's own
checkpoints, never a path of its choosing for this process to unpickle.
"""

from __future__ import annotations

from typing import Any

from graflow.dashboard.backend import Backend
from graflow.distributed import run_detail
from graflow.exceptions import GraflowError

_LIVE = ("queued", "running")


class ActionRefused(Exception):
    """The action does not apply to the run as it is; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def cancel(backend: Backend, session_id: str) -> dict[str, Any]:
    from graflow.distributed.run import WorkflowRun

    state = backend.state(session_id).summary.state
    if state not in _LIVE:
        raise ActionRefused(f"run {session_id} has already ended ({state}); there is nothing to cancel")
    run = WorkflowRun(session_id, client=backend.client, redis_url=backend.redis_url, key_prefix=backend.prefix,
                      secret_key=backend.secret_key)  # fmt: skip
    if not run.cancel("canceled from the dashboard"):
        ended = backend.state(session_id).summary.state
        raise ActionRefused(f"run {session_id} ended ({ended}) before it could be canceled")
    return {"session_id": session_id, "state": "canceled"}


def resume(backend: Backend, session_id: str, checkpoint: str) -> dict[str, Any]:
    """Put the run's pending work as of ``checkpoint`` back on the pool (same session)."""
    summary = backend.state(session_id).summary
    if summary.state in _LIVE:
        raise ActionRefused(f"run {session_id} is still {summary.state}; cancel it before resuming it from a checkpoint")
    recorded = {c["location"] for c in run_detail.checkpoints(backend.client, backend.prefix, session_id)}
    if summary.last_checkpoint:
        recorded.add(summary.last_checkpoint)
    if not recorded:
        raise ActionRefused(f"run {session_id} has no checkpoint to resume from (no task called ctx.checkpoint())")
    if checkpoint not in recorded:
        raise ActionRefused(f"{checkpoint!r} is not a checkpoint of run {session_id}", status=400)
    return _resume(backend, session_id, checkpoint)


def retry(backend: Backend, session_id: str) -> dict[str, Any]:
    """Resume a failed run from its last checkpoint."""
    summary = backend.state(session_id).summary
    if summary.state != "failed":
        raise ActionRefused(f"run {session_id} is {summary.state}, not failed; only a failed run is retried")
    if not summary.last_checkpoint:
        raise ActionRefused(f"run {session_id} failed before writing any checkpoint; submit it again instead")
    return _resume(backend, session_id, summary.last_checkpoint)


def _resume(backend: Backend, session_id: str, checkpoint: str) -> dict[str, Any]:
    from graflow.dashboard.files import checkpoint_meta
    from graflow.distributed.run import WorkflowRun

    meta = checkpoint_meta(checkpoint)
    if not meta["readable"]:
        raise ActionRefused(f"cannot read checkpoint {checkpoint}: {meta['error']}", status=422)
    if meta["session_id"] != session_id:  # the files at that path were replaced by another run's
        raise ActionRefused(f"{checkpoint} now holds run {meta['session_id']}, not {session_id}", status=422)
    try:
        run = WorkflowRun.resume(checkpoint, backend.redis_url, secret_key=backend.secret_key)
    except GraflowError as exc:
        raise ActionRefused(f"cannot resume from {checkpoint}: {exc}", status=422) from exc
    return {"session_id": session_id, "checkpoint": checkpoint, "state": run.status().state}


__all__ = ["ActionRefused", "cancel", "resume", "retry"]
