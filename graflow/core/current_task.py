"""The task running in this thread of a run, and the run-control calls that act on it.

``ExecutionContext`` mixes this in: ``ctx.next_task(...)``, ``ctx.terminate_workflow()``
and friends, called on the run's context from inside a task body, act on the task
context of the attempt running in the calling thread (parallel members run in threads,
each with its own stack of task contexts).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.executable import Executable
    from graflow.core.task_context import TaskExecutionContext


class CurrentTask:
    """Per-thread stack of running task contexts and the calls that act on its top."""

    _local: threading.local

    def push_task_context(self, tc: TaskExecutionContext) -> None:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(tc)

    def pop_task_context(self) -> TaskExecutionContext | None:
        stack = getattr(self._local, "stack", None)
        return stack.pop() if stack else None

    @property
    def current_task_context(self) -> TaskExecutionContext | None:
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else None

    @property
    def current_task_id(self) -> str | None:
        tc = self.current_task_context
        return tc.task_id if tc is not None else None

    def _current(self) -> TaskExecutionContext:
        tc = self.current_task_context
        if tc is None:
            from graflow.exceptions import GraflowRuntimeError

            raise GraflowRuntimeError("no task is running in this context; call this from a task")
        return tc

    def next_task(self, executable: Executable, goto: bool = False) -> str:
        return self._current().next_task(executable, goto=goto)

    def next_iteration(self, data: Any = None, task_id: str | None = None) -> str:
        return self._current().next_iteration(data, base_id=task_id)

    def terminate_workflow(self, message: str = "workflow terminated") -> None:
        self._current().terminate_workflow(message)

    def cancel_workflow(self, message: str = "workflow canceled") -> None:
        self._current().cancel_workflow(message)

    @property
    def goto_called(self) -> bool:
        tc = self.current_task_context
        return bool(tc and (tc.goto_called or tc.iterated))

    @property
    def terminate_called(self) -> bool:
        tc = self.current_task_context
        return bool(tc and tc.terminate_called)

    @property
    def cancel_called(self) -> bool:
        tc = self.current_task_context
        return bool(tc and tc.cancel_called)

    def reset_control_flags(self) -> None:
        tc = self.current_task_context
        if tc is not None:
            tc.reset_control_flags()

    def request_checkpoint(self, metadata: dict[str, Any] | None = None, *, path: str | None = None) -> None:
        self._current().checkpoint(metadata, path=path)


__all__ = ["CurrentTask"]
