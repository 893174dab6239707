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

    def push_task_context(self, task_ctx: TaskExecutionContext) -> None:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(task_ctx)

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
        self._ctrl_message = None

    def reset_goto_flag(self) -> None:
        """Queue the running task's static successors after all (undoes goto and iteration)."""
        tc = self.current_task_context
        if tc is not None:
            tc.goto_called = tc.iterated = False

    def reset_terminate_flag(self) -> None:
        """Withdraw the running task's ``terminate_workflow`` request."""
        tc = self.current_task_context
        if tc is not None:
            tc.terminate_called = False
            tc.terminate_message = None
        self._ctrl_message = None

    def reset_cancel_flag(self) -> None:
        """Withdraw the running task's ``cancel_workflow`` request."""
        tc = self.current_task_context
        if tc is not None:
            tc.cancel_called = False
            tc.cancel_message = None
        self._ctrl_message = None

    #: The run's last control message, kept after the run ended by terminate or cancel.
    _ctrl_message: str | None = None

    @property
    def ctrl_message(self) -> str | None:
        """The message of ``terminate_workflow``/``cancel_workflow`` (upstream's attribute):
        the running task's while it runs, then the run's once the run ended by one."""
        tc = self.current_task_context
        if tc is not None:
            if tc.cancel_called:
                return tc.cancel_message
            if tc.terminate_called:
                return tc.terminate_message
        return self._ctrl_message

    @ctrl_message.setter
    def ctrl_message(self, value: str | None) -> None:
        tc = self.current_task_context
        if tc is not None:
            if tc.cancel_called:
                tc.cancel_message = value
            if tc.terminate_called:
                tc.terminate_message = value
        self._ctrl_message = value

    def request_checkpoint(self, metadata: dict[str, Any] | None = None, *, path: str | None = None) -> None:
        self._current().checkpoint(metadata, path=path)


__all__ = ["CurrentTask"]
