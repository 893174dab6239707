"""Snapshot a run's state into ``state.json`` and restore it on resume (see docs/checkpoints.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.core.checkpoint_schema import SCHEMA_VERSION, BackendInfo, PendingEntry, StateDoc
from graflow.core.queue import TaskSpec
from graflow.exceptions import CheckpointError

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext


def pending_entries(ctx: ExecutionContext) -> list[PendingEntry]:
    return [PendingEntry(**spec.to_state()) for spec in ctx.task_queue.get_pending_task_specs()]


def build_state_doc(
    ctx: ExecutionContext, checkpoint_id: str, resuming_task_id: str | None, storage: str
) -> StateDoc:
    """The state of ``ctx`` now; call it with the context's lock held."""
    state = ctx.state
    return StateDoc(
        schema_version=SCHEMA_VERSION,
        checkpoint_id=checkpoint_id,
        session_id=ctx.session_id,
        trace_id=ctx.trace_id,
        start_node=ctx.start_node,
        steps=state.steps,
        max_steps=ctx.max_steps,
        default_max_cycles=ctx.default_max_cycles,
        default_max_retries=ctx.default_max_retries,
        completed_tasks=list(state.completed),
        cycle_counts=dict(ctx.cycle_controller.cycle_counts),
        retry_counts=dict(ctx.retry_controller.retry_counts),
        join_arrivals={t: sorted(ps) for t, ps in state.arrivals.items() if ps},
        known_dynamic=ctx.known_dynamic,
        pending_tasks=pending_entries(ctx),
        resuming_task_id=resuming_task_id,
        backend=BackendInfo(
            channel=ctx.channel_backend,
            queue="redis" if ctx.config.get("queue_backend") == "redis" else "local",
            storage=storage,
        ),
        stop_reason=ctx.stop_reason,
    )


def build_state(ctx: ExecutionContext) -> dict[str, Any]:
    """``ExecutionContext.get_checkpoint_state()``: the state.json document as a dict."""
    from graflow.core.checkpoint_schema import to_builtins

    with ctx._lock:
        doc = build_state_doc(ctx, "", None, "file")
    result: dict[str, Any] = to_builtins(doc)
    return result


def restore_state(ctx: ExecutionContext, doc: StateDoc, location: str) -> None:
    """Apply ``doc`` to ``ctx`` and rebuild its queue (resume steps 6–7 in docs/checkpoints.md).

    Every id to queue must be a graph node or a known dynamic task; unknown ids are
    an error, never a silent skip.
    """
    wanted = ([doc.resuming_task_id] if doc.resuming_task_id else []) + [
        p.task_id for p in doc.pending_tasks
    ]
    unknown = sorted({t for t in wanted if ctx.get_task(t) is None})
    if unknown:
        raise CheckpointError(
            f"{location} names tasks to run that are neither in the graph nor known dynamic "
            f"tasks: {unknown}; resume with the workflow that wrote it (graph=... / --workflow)"
        )
    state = ctx.state
    state.steps = doc.steps
    state.completed = list(doc.completed_tasks)
    state.completed_set = set(doc.completed_tasks)
    state.last_completed = doc.completed_tasks[-1] if doc.completed_tasks else None
    state.arrivals = {t: set(ps) for t, ps in doc.join_arrivals.items()}
    ctx.cycle_controller.cycle_counts = dict(doc.cycle_counts)
    ctx.retry_controller.retry_counts = dict(doc.retry_counts)
    ctx.max_steps = doc.max_steps
    ctx.stop_reason = None
    ctx.max_steps_reached = False
    for task_id in doc.known_dynamic:
        ctx._dynamic.setdefault(task_id, None)
    queue = ctx.task_queue
    queue.clear()
    if doc.resuming_task_id:
        task = ctx.get_task(doc.resuming_task_id)
        assert task is not None
        queue.enqueue(TaskSpec(task, ctx, trace_id=ctx.trace_id, resuming=True))
    for entry in doc.pending_tasks:
        task = ctx.get_task(entry.task_id)
        assert task is not None
        queue.enqueue(
            TaskSpec(
                task,
                ctx,
                created_at=entry.created_at,
                retry_count=entry.retry_count,
                max_retries=entry.max_retries,
                last_error=entry.last_error,
                trace_id=entry.trace_id,
                parent_task_id=entry.parent_task_id,
                dynamic=entry.dynamic,
                attempt=entry.attempt,
                _spec_id=entry.spec_id,
            )
        )


__all__ = ["build_state", "build_state_doc", "pending_entries", "restore_state"]
