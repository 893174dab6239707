"""Parallel groups in-process (see docs/execution.md): branches on threads or in the calling thread.

A branch is a member plus everything its completions schedule. Each branch drains
its own queue with the same engine loop; all share the run's context. When every
branch has finished, the group's policy decides, and the group then completes
through the scheduling core like any task. A group started by ``GroupExecutor`` is
no node of the run: it runs the same branches (``run_detached``), and only its
completion step is left out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from graflow.core import drivers
from graflow.core.coordinator import CoordinationBackend
from graflow.core.handler import TaskResult
from graflow.core.local_queue import LocalTaskQueue
from graflow.core.queue import TaskSpec
from graflow.core.scheduler import CANCEL, MAX_STEPS, TERMINATE, RunEnd
from graflow.core.task_context import CheckpointRequest
from graflow.exceptions import GraflowWorkflowCanceledError, MaxStepsExceeded, warn
from graflow.trace.guard import emit

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.engine import WorkflowEngine
    from graflow.core.executable import Executable
    from graflow.core.group import ParallelGroup

logger = logging.getLogger("graflow.engine")


class GroupRun:
    """One activation of a group; also its report to the core when it completes."""

    goto_called = False
    iterated = False
    scheduled: list[TaskSpec] | None = None

    def __init__(self, group: ParallelGroup, parent: GroupRun | None) -> None:
        self.group_id = group.task_id
        self.top_group_id: str = parent.top_group_id if parent is not None else group.task_id
        self._lock = threading.Lock()
        self._requests: list[CheckpointRequest] = []
        self.terminate_called = False
        self.terminate_message: str | None = None
        self.cancel_called = False
        self.cancel_message: str | None = None
        self.cancel_task_id: str | None = None
        self.hit_max_steps = False

    @property
    def control(self) -> bool:
        return self.terminate_called or self.cancel_called or bool(self._requests)

    def add_checkpoint_request(self, request: CheckpointRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def checkpoint_request(self) -> CheckpointRequest | None:
        """Requests of all branches merged in completion order; the last path wins."""
        if not self._requests:
            return None
        metadata: dict[str, Any] = {}
        path: str | None = None
        requested_by: list[str] = []
        for req in self._requests:
            metadata.update(req.metadata)
            if req.path is not None:
                path = req.path
            requested_by.extend(req.requested_by)
        metadata["task_id"] = self.group_id
        metadata["requested_by"] = requested_by
        return CheckpointRequest(metadata, path, requested_by)

    def record_end(self, verdict: int, task_id: str, message: str | None) -> None:
        with self._lock:
            if verdict == CANCEL and not self.cancel_called:
                self.cancel_called = True
                self.cancel_message = message
                self.cancel_task_id = task_id
            elif verdict == TERMINATE and not self.terminate_called:
                self.terminate_called = True
                self.terminate_message = message


def run_group(
    engine: WorkflowEngine,
    ctx: ExecutionContext,
    spec: TaskSpec,
    queue: LocalTaskQueue,
    parent: GroupRun | None,
) -> int:
    """Run a group activation; returns the engine's MAX_STEPS when branches hit the limit."""
    group: ParallelGroup = spec.executable  # type: ignore[assignment]
    run = GroupRun(group, parent)
    members = list(group.tasks)
    tracer = ctx.tracer
    # Upstream runs a group as a task: its span encloses the members'; the group hooks come inside.
    emit(tracer.on_task_start, group, ctx)
    try:
        results = _branches_traced(engine, ctx, group, spec, run, None)
    except Exception as exc:
        emit(tracer.on_task_end, group, ctx, result=None, error=exc)
        raise
    if run.cancel_called or run.hit_max_steps:
        emit(tracer.on_task_end, group, ctx, result=None)
        if run.cancel_called:
            raise RunEnd(CANCEL, run.cancel_task_id or group.task_id, run.cancel_message)
        return MAX_STEPS
    try:
        group.policy.on_group_finished(group.task_id, members, results, ctx)
    except Exception as exc:
        emit(tracer.on_task_end, group, ctx, result=None, error=exc)
        engine._failed(ctx, spec, group.task_id, None, exc, queue)
        return 0
    emit(tracer.on_task_end, group, ctx, result=None)
    ctx.set_result(group.task_id, None)
    engine.commit(ctx, spec, group.task_id, group.task_id, run, queue, parent)
    return 0


def run_detached(
    engine: WorkflowEngine, ctx: ExecutionContext, group: ParallelGroup, pool: Executor | None = None
) -> None:
    """Run a group that is no node of the run (``GroupExecutor``): its branches, then its policy.

    Nothing completes the group itself. What a member asks of the whole run goes to the
    task that made the call, when one is running on this thread: cancel and terminate
    end that task's run, checkpoint requests become its own. Without one, cancel raises
    ``GraflowWorkflowCanceledError`` and a checkpoint is written at once. Branches stopped
    by ``max_steps`` leave the group unjudged, with a ``MaxStepsExceeded`` warning."""
    caller = ctx.current_task_context
    run = GroupRun(group, None)
    members = list(group.tasks)
    results = _branches_traced(engine, ctx, group, TaskSpec(group, ctx, trace_id=ctx.trace_id), run, pool)
    if run.cancel_called:
        message = run.cancel_message or "workflow canceled"
        if caller is None:
            raise GraflowWorkflowCanceledError(message, run.cancel_task_id or group.task_id)
        caller.cancel_workflow(message)
        return
    if run.hit_max_steps:  # the group did not finish: there is nothing to judge yet
        warn(
            MaxStepsExceeded,
            f"group {group.task_id!r} stopped at max_steps={ctx.max_steps}; activations left in its "
            "branches were dropped — raise ctx.max_steps and run the group again",
            logger,
        )
        return
    group.policy.on_group_finished(group.task_id, members, results, ctx)
    request = run.checkpoint_request
    if request is not None:
        if caller is None:
            engine.write_checkpoint(ctx, request)
        else:
            caller.checkpoint(request.metadata, path=request.path)
    if run.terminate_called and caller is not None:
        caller.terminate_workflow(run.terminate_message or "workflow terminated")


def _branches_traced(
    engine: WorkflowEngine,
    ctx: ExecutionContext,
    group: ParallelGroup,
    spec: TaskSpec,
    run: GroupRun,
    pool: Executor | None,
) -> dict[str, TaskResult]:
    member_ids = group.member_ids
    tracer = ctx.tracer
    emit(tracer.on_parallel_group_start, group.task_id, member_ids, ctx)
    results = run_branches(engine, ctx, group, spec, run, pool)
    emit(tracer.on_parallel_group_end, group.task_id, member_ids, ctx, results=results)
    return results


def run_branches(
    engine: WorkflowEngine,
    ctx: ExecutionContext,
    group: ParallelGroup,
    spec: TaskSpec,
    run: GroupRun,
    pool: Executor | None = None,
) -> dict[str, TaskResult]:
    """Every member's branch on the group's backend, one result per member: on the worker
    pool, in the calling thread, or on threads (``pool``, else a pool of ``thread_count``)."""
    members = list(group.tasks)
    backend = group.backend
    if backend is CoordinationBackend.REDIS:
        return drivers.pool().run_branches_on_pool(ctx, group, spec, run)
    if backend is CoordinationBackend.DIRECT or len(members) < 2:
        return {m.task_id: _run_branch(engine, ctx, m, run) for m in members}
    if pool is not None:
        futures = {m.task_id: pool.submit(_run_branch, engine, ctx, m, run) for m in members}
        return {tid: f.result() for tid, f in futures.items()}
    workers = int(group.backend_config.get("thread_count") or os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(members)))) as own:
        futures = {m.task_id: own.submit(_run_branch, engine, ctx, m, run) for m in members}
        return {tid: f.result() for tid, f in futures.items()}


def _run_branch(engine: WorkflowEngine, ctx: ExecutionContext, member: Executable, run: GroupRun) -> TaskResult:
    started = time.time()
    queue = LocalTaskQueue(ctx)
    queue.enqueue(
        TaskSpec(member, ctx, trace_id=ctx.trace_id, parent_task_id=run.group_id, group_id=run.top_group_id)
    )
    try:
        with ctx.branch_queue(queue):
            if engine.drain(ctx, queue, run) == MAX_STEPS:
                run.hit_max_steps = True
    except RunEnd as end:
        run.record_end(end.verdict, end.task_id, end.message)
    except Exception as exc:
        return TaskResult(
            member.task_id, False, exc, f"{type(exc).__name__}: {exc}", time.time() - started, time.time()
        )
    return TaskResult(member.task_id, True, None, None, time.time() - started, time.time())


__all__ = ["GroupRun", "run_branches", "run_detached", "run_group"]
