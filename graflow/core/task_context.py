"""``TaskExecutionContext``: what a task sees of its run during one attempt.

It is also the attempt's report to the scheduling core: the control flags and the
checkpoint request it carries decide what happens when the attempt returns.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from graflow.exceptions import CycleLimitExceededError
from graflow.trace.guard import emit

if TYPE_CHECKING:
    from graflow.channels.base import Channel
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable
    from graflow.core.graph import TaskGraph
    from graflow.core.queue import TaskSpec


class CheckpointRequest:
    """A deferred checkpoint request: the last request's metadata and path win."""

    __slots__ = ("metadata", "path", "requested_by")

    def __init__(self, metadata: dict[str, Any], path: str | None, requested_by: list[str]) -> None:
        self.metadata = metadata
        self.path = path
        self.requested_by = requested_by


class TaskExecutionContext:
    """One attempt's view of the run."""

    # Plain attributes with class-level defaults: an attempt sets only what differs
    # (the in-process engine makes one of these per attempt; see benchmarks/local_engine.py).
    _local_data: dict[str, Any] | None = None
    control = False
    goto_called = False
    iterated = False
    terminate_called = False
    cancel_called = False
    terminate_message: str | None = None
    cancel_message: str | None = None
    cancel_task_id: str | None = None
    checkpoint_request: CheckpointRequest | None = None
    scheduled: list[TaskSpec] | None = None

    def __init__(
        self,
        task_id: str,
        execution_context: ExecutionContext,
        spec: TaskSpec | None = None,
        base_id: str | None = None,
        cycle_count: int | None = None,
    ) -> None:
        self.task_id = task_id
        self.execution_context = execution_context
        self.spec = spec
        self.base_id = base_id or task_id
        self.cycle_count = (
            execution_context.cycle_controller.get_cycle_count(self.base_id)
            if cycle_count is None
            else cycle_count
        )
        self.attempt = spec.attempt if spec is not None else 1
        self.start_time = time.time()

    # -- identity ------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.execution_context.session_id

    @property
    def trace_id(self) -> str:
        return self.execution_context.trace_id

    @property
    def graph(self) -> TaskGraph:
        return self.execution_context.graph

    @property
    def max_cycles(self) -> int:
        return self.execution_context.cycle_controller.get_max_cycles_for_node(self.base_id)

    def can_iterate(self) -> bool:
        return self.cycle_count < self.max_cycles

    @property
    def retry_count(self) -> int:
        return self.execution_context.retry_controller.get_retry_count(self.base_id)

    @property
    def max_retries(self) -> int:
        return self.execution_context.retry_controller.get_max_retries_for_node(self.base_id)

    # -- data ------------------------------------------------------------------------
    def get_channel(self) -> Channel:
        return self.execution_context.channel

    def get_typed_channel(self, message_type: type) -> Any:
        from graflow.channels.typed import TypedChannel

        return TypedChannel(self.execution_context.channel, message_type)

    def get_result(self, node: str, default: Any = None) -> Any:
        return self.execution_context.get_result(node, default)

    @property
    def local_data(self) -> dict[str, Any]:
        if self._local_data is None:
            self._local_data = {}
        return self._local_data

    def set_local_data(self, key: str, value: Any) -> None:
        self.local_data[key] = value

    def get_local_data(self, key: str, default: Any = None) -> Any:
        return self.local_data.get(key, default)

    def elapsed_time(self) -> float:
        return time.time() - self.start_time

    # -- control flow ----------------------------------------------------------------
    def next_task(self, executable: Executable, goto: bool = False) -> str:
        """Queue ``executable`` after this task (see docs/execution.md); returns its id."""
        from graflow.core.executable import check_executable

        check_executable(executable, "next_task")
        ec = self.execution_context
        task_id = executable.task_id
        known = ec.is_known(task_id)
        if known:
            if ec.is_dynamic(task_id) and ec.get_task(task_id) is not executable:
                ec.add_dynamic(executable, parent_task_id=self.task_id)
            target = ec.get_task(task_id) or executable
        else:
            ec.add_dynamic(executable, parent_task_id=self.task_id)
            target = executable
        self._schedule(target, dynamic=ec.is_dynamic(task_id))
        if known or goto:
            self.goto_called = True
        self.control = True
        emit(
            ec.tracer.on_dynamic_task_added,
            task_id=task_id,
            parent_task_id=self.task_id,
            is_iteration=False,
            metadata={"task_type": type(executable).__name__, "is_new_task": not known, "goto": goto},
        )
        return task_id

    def next_iteration(self, data: Any = None, *, base_id: str | None = None) -> str:
        """Queue the next iteration of this task's base (see docs/execution.md); returns its id."""
        from graflow.core.cycle import base_task_id

        ec = self.execution_context
        base = self.base_id if base_id is None else base_task_id(base_id)
        base_task = ec.graph.task(base)
        if base_task is None:
            raise ValueError(
                f"next_iteration: base task {base!r} is not in the graph; iterate a task of this run"
            )
        cc = ec.cycle_controller
        count = cc.get_cycle_count(base)
        limit = cc.get_max_cycles_for_node(base)
        if count >= limit:
            raise CycleLimitExceededError(base, count, limit)
        new_id = f"{base}_cycle_{count}_{uuid.uuid4().hex[:8]}"
        positional = () if data is None else (data,)
        derive = getattr(base_task, "derive", None)
        if derive is None:
            raise ValueError(f"next_iteration: task {base!r} ({type(base_task).__name__}) cannot iterate")
        iteration = derive(new_id, positional)
        ec.add_dynamic(iteration, parent_task_id=self.task_id, is_iteration=True)
        self._schedule(iteration, dynamic=True)
        self.iterated = True
        self.control = True
        emit(
            ec.tracer.on_dynamic_task_added,
            task_id=new_id,
            parent_task_id=self.task_id,
            is_iteration=True,
            metadata={"task_type": type(iteration).__name__, "is_new_task": True, "goto": False},
        )
        return str(new_id)

    def _schedule(self, executable: Executable, dynamic: bool) -> None:
        ec = self.execution_context
        spec = ec.schedule_dynamic(executable, self, dynamic)
        if self.scheduled is None:
            self.scheduled = []
        self.scheduled.append(spec)

    def terminate_workflow(self, message: str = "workflow terminated") -> None:
        self.terminate_called = True
        self.terminate_message = message
        self.control = True

    def cancel_workflow(self, message: str = "workflow canceled") -> None:
        self.cancel_called = True
        self.cancel_message = message
        self.control = True

    def reset_control_flags(self) -> None:
        self.control = False
        self.goto_called = self.iterated = False
        self.terminate_called = self.cancel_called = False
        self.terminate_message = self.cancel_message = None

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint(
        self, metadata: dict[str, Any] | None = None, *, path: str | None = None, deferred: bool = True
    ) -> Any:
        """Request a checkpoint: deferred to the end of the task, or written now.

        When each is written and what it captures: docs/checkpoints.md."""
        auto = {
            "task_id": self.task_id,
            "cycle_count": self.cycle_count,
            "elapsed_time": self.elapsed_time(),
            "mode": "deferred" if deferred else "immediate",
        }
        merged = {**auto, **(metadata or {})}
        if not deferred:
            return self.execution_context.write_immediate_checkpoint(self, merged, path)
        self.checkpoint_request = CheckpointRequest(merged, path, [self.task_id])
        self.execution_context.note_checkpoint_request(merged, path)
        self.control = True
        return None

    def __repr__(self) -> str:
        return f"TaskExecutionContext(task_id={self.task_id!r}, cycle_count={self.cycle_count})"


__all__ = ["CheckpointRequest", "TaskExecutionContext"]
