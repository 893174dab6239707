"""``WorkflowEngine``: the in-process driver of the scheduling core.

The engine owns only the loop: take an activation, run one attempt, report it to
the core (``graflow.core.scheduler``), and apply the verdict to a local queue. The
rules themselves live in the core, which the worker pool drives too (see
docs/execution.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from graflow.core.branches import GroupRun, run_group
from graflow.core.executable import ParallelGroup
from graflow.core.handler import TaskHandler
from graflow.core.handlers.direct import DirectTaskHandler
from graflow.core.queue import TaskSpec
from graflow.core.scheduler import CANCEL, DRAINED, MAX_STEPS, TERMINATE, RunEnd
from graflow.core.scope import in_task_body
from graflow.core.timeout import AttemptGuard
from graflow.exceptions import (
    ConfigError,
    GraflowWorkflowCanceledError,
    GraphCompilationError,
    MaxStepsExceeded,
    warn,
)
from graflow.trace.guard import emit, hook_failed
from graflow.trace.noop import SilentTracer

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph
    from graflow.core.local_queue import LocalTaskQueue
    from graflow.core.task_context import CheckpointRequest

logger = logging.getLogger("graflow.engine")

class WorkflowEngine:
    """Runs an ``ExecutionContext`` to its end in this process."""

    _default_handlers: ClassVar[dict[str, TaskHandler]] = {}
    #: ``ExecutionContext.create``, installed by ``graflow.core.context`` (the engine sees the
    #: context only as a type: it may not import it).
    context_factory: ClassVar[Callable[..., ExecutionContext] | None] = None

    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {"direct": DirectTaskHandler()}
        self._handlers.update(self._default_handlers)

    def register_handler(self, handler_type: str, handler: TaskHandler) -> None:
        self._handlers[handler_type] = handler

    @classmethod
    def register_default_handler(cls, name: str, handler: TaskHandler) -> None:
        """Register ``handler`` on every engine created afterwards in this process."""
        cls._default_handlers[name] = handler

    def get_handler(self, name: str) -> TaskHandler:
        handler = self._handlers.get(name)
        if handler is None:
            raise ConfigError(
                f"unknown task handler {name!r}; registered: {sorted(self._handlers)} — "
                "register it with WorkflowEngine.register_handler()"
            )
        return handler

    # -- the run -------------------------------------------------------------------
    def execute_with_cycles(self, graph: TaskGraph, start_node: str, max_steps: int = 10) -> Any:
        """Run ``graph`` from ``start_node`` in a new context on this engine (upstream's
        method; upstream returns None, this returns the run's result)."""
        factory = WorkflowEngine.context_factory
        if factory is None:  # pragma: no cover - graflow/__init__ imports graflow.core.context
            raise ConfigError("graflow.core.context is not imported; import graflow first")
        return self.execute(factory(graph, start_node, max_steps=max_steps))

    def execute(self, context: ExecutionContext, start_task_id: str | None = None) -> Any:
        """Run until the queue drains, the run terminates, or ``max_steps`` is hit."""
        ctx = context
        if start_task_id is not None:
            task = ctx.get_task(start_task_id)
            if task is None:
                raise GraphCompilationError(f"start task {start_task_id!r} is not in the graph")
            ctx.task_queue.push_front(TaskSpec(task, ctx, trace_id=ctx.trace_id))
        if ctx.task_queue.is_empty():
            logger.warning("session %s: the queue is empty at start; nothing to run", ctx.session_id)
        ctx.stop_reason = None
        ctx.max_steps_reached = False
        ctx.ctrl_message = None
        tracer = ctx.tracer
        name = ctx.workflow_name
        emit(tracer.on_workflow_start, name, ctx)
        try:
            outcome = self.drain(ctx, ctx.task_queue, None)
        except RunEnd as end:
            ctx.ctrl_message = end.message
            if end.verdict == CANCEL:
                ctx.stop_reason = "cancel_workflow"
                emit(tracer.on_workflow_end, name, ctx, result=None)
                raise GraflowWorkflowCanceledError(end.message or "workflow canceled", end.task_id) from None
            ctx.stop_reason = "terminate_workflow"
            result = ctx.get_result(ctx.state.last_completed) if ctx.state.last_completed else None
            emit(tracer.on_workflow_end, name, ctx, result=result)
            return result
        except BaseException:
            # Upstream calls no hook when a run raises; closing the trace is kinder to tracers.
            ctx.stop_reason = "task_failed"
            emit(tracer.on_workflow_end, name, ctx, result=None)
            raise
        if outcome == MAX_STEPS:
            self._report_max_steps(ctx)
        else:
            ctx.stop_reason = "drained"
            waiting = ctx.state.waiting()
            if waiting:
                logger.warning(
                    "session %s ended with tasks still waiting on a join: %s",
                    ctx.session_id,
                    ", ".join(f"{t} (has {ps})" for t, ps in waiting.items()),
                )
        last = ctx.state.last_completed
        result = ctx.get_result(last) if last is not None else None
        emit(tracer.on_workflow_end, name, ctx, result=result)
        return result

    @staticmethod
    def _report_max_steps(ctx: ExecutionContext) -> None:
        ctx.stop_reason = "max_steps"
        ctx.max_steps_reached = True
        warn(
            MaxStepsExceeded,
            f"session {ctx.session_id} stopped at max_steps={ctx.max_steps} with "
            f"{ctx.task_queue.size()} activation(s) queued (next: {ctx.task_queue.peek_next_node()!r}); "
            "raise ctx.max_steps and call WorkflowEngine().execute(ctx) to continue",
            logger,
        )

    def drain(self, ctx: ExecutionContext, queue: LocalTaskQueue, group: GroupRun | None) -> int:
        """Run activations from ``queue`` until it is empty or the step limit is hit."""
        state = ctx.state
        items = queue._items
        while items:
            if state.steps >= ctx.max_steps:
                return MAX_STEPS
            spec = items.popleft()
            if type(spec.executable) is ParallelGroup:
                verdict = run_group(self, ctx, spec, queue, group)
                if verdict == MAX_STEPS:
                    items.appendleft(spec)
                    return MAX_STEPS
            else:
                self.attempt(ctx, spec, queue, group)
        return DRAINED

    def attempt(
        self, ctx: ExecutionContext, spec: TaskSpec, queue: LocalTaskQueue, group: GroupRun | None
    ) -> None:
        """One attempt of one activation, reported to the core and applied to ``queue``."""
        task = spec.executable
        if spec.not_before:
            delay = spec.not_before - time.time()
            if delay > 0:
                time.sleep(delay)
        handler = self._handlers.get(task.handler_type) or self.get_handler(task.handler_type)
        tc = ctx.begin_attempt(task, spec)  # calls on_task_start; end_attempt calls on_task_end
        token = in_task_body.set(True)
        guard = self.attempt_guard(task, spec)
        try:
            result = handler.execute_task(task, ctx) if guard is None else guard.run(handler.execute_task, task, ctx)
        except Exception as exc:
            in_task_body.reset(token)
            if guard is not None and guard.fired is not None:
                ctx.set_result(task.task_id, exc)  # the handler stored the stop's carrier
            ctx.end_attempt(task, error=exc)
            self._failed(ctx, spec, tc.base_id, tc.scheduled, exc, queue)
            return
        except BaseException:
            in_task_body.reset(token)
            ctx.end_attempt(task)
            raise
        in_task_body.reset(token)
        ctx.end_attempt(task, result)
        task_id = task.task_id
        base_id = tc.base_id
        if task_id != base_id:
            ctx.set_result(base_id, result)  # iterations publish under the base id
        self.commit(ctx, spec, task_id, base_id, tc, queue, group)

    def attempt_guard(self, task: Any, spec: TaskSpec) -> AttemptGuard | None:
        """What may stop this attempt from outside: in-process, only the task's ``timeout``."""
        seconds = getattr(task, "timeout", None)
        if seconds is None:
            return None
        return AttemptGuard(task.task_id, seconds, spec.attempt)

    def commit(
        self,
        ctx: ExecutionContext,
        spec: TaskSpec,
        task_id: str,
        base_id: str,
        report: Any,
        queue: LocalTaskQueue,
        group: GroupRun | None,
    ) -> None:
        """Apply the core's verdict on a successful attempt to ``queue``."""
        with ctx._lock:
            verdict, ready = ctx.core.on_success(ctx.state, task_id, base_id, report)
        if verdict == CANCEL:
            self._withdraw(ctx, report.scheduled, queue)
            ctx.clear_checkpoint_request()
            raise RunEnd(CANCEL, report.cancel_task_id or task_id, report.cancel_message)
        for succ_id in ready:
            self.enqueue(ctx, succ_id, task_id, spec.group_id, queue)
        if report.control:
            request = report.checkpoint_request
            if request is not None:
                if group is not None:
                    group.add_checkpoint_request(request)
                else:
                    self.write_checkpoint(ctx, request)
            if verdict == TERMINATE:
                raise RunEnd(TERMINATE, task_id, report.terminate_message)

    def enqueue(
        self, ctx: ExecutionContext, task_id: str, parent: str | None, group_id: str | None, queue: LocalTaskQueue
    ) -> None:
        task = ctx.get_task(task_id)
        if task is None:
            from graflow.exceptions import GraflowRuntimeError

            raise GraflowRuntimeError(
                f"edge {parent!r} -> {task_id!r}: {task_id!r} is not a task of the graph; "
                "add it with @task inside the workflow"
            )
        queue._items.append(TaskSpec.activation(task, ctx, parent, group_id))
        tracer = ctx.tracer
        if type(tracer) is not SilentTracer:
            try:
                tracer.on_task_queued(task, ctx)
            except Exception as exc:
                hook_failed(tracer, "on_task_queued", exc)

    @staticmethod
    def _withdraw(ctx: ExecutionContext, scheduled: list[TaskSpec] | None, queue: LocalTaskQueue) -> None:
        for spec in scheduled or ():
            if not queue.remove(spec):
                ctx.task_queue.remove(spec)

    def _failed(
        self,
        ctx: ExecutionContext,
        spec: TaskSpec,
        base_id: str,
        scheduled: list[TaskSpec] | None,
        exc: BaseException,
        queue: LocalTaskQueue,
    ) -> None:
        """A failed attempt: withdraw what it scheduled, then retry at the tail or raise."""
        self._withdraw(ctx, scheduled, queue)
        ctx.clear_checkpoint_request()
        with ctx._lock:
            delay, error = ctx.core.on_failure(spec.task_id, base_id, exc, ctx.retry_controller)
        if delay is None:
            raise error
        retry = spec.retry(exc, delay, ctx.retry_controller.get_retry_count(base_id))
        logger.info("task %s failed (%s); retry %d in %.3fs", spec.task_id, exc, retry.retry_count, delay)
        queue._items.append(retry)
        emit(ctx.tracer.on_task_queued, spec.executable, ctx)

    def write_checkpoint(self, ctx: ExecutionContext, request: CheckpointRequest) -> None:
        """Completion step 5: write a deferred checkpoint now that successors are queued."""
        from graflow.core.checkpoint_writer import write_checkpoint  # msgspec: only when used

        ctx.clear_checkpoint_request()
        write_checkpoint(ctx, request.path, request.metadata, None, None)


__all__ = ["WorkflowEngine"]
