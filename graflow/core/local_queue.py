"""The in-process FIFO of activations."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from graflow.core.queue import TaskQueue, TaskSpec, TaskStatus

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext


class LocalTaskQueue(TaskQueue):
    """A FIFO of ``TaskSpec``; the engine's main queue and each branch's queue."""

    def __init__(self, execution_context: ExecutionContext | None = None, start_node: str | None = None) -> None:
        self.execution_context = execution_context
        self._items: deque[TaskSpec] = deque()
        if start_node is not None and execution_context is not None:
            task = execution_context.graph.task(start_node)
            if task is not None:
                self._items.append(TaskSpec(task, execution_context, trace_id=execution_context.trace_id))

    def enqueue(self, task_spec: TaskSpec) -> bool:
        self._items.append(task_spec)
        return True

    def push_front(self, task_spec: TaskSpec) -> None:
        self._items.appendleft(task_spec)

    def dequeue(self) -> TaskSpec | None:
        return self._items.popleft() if self._items else None

    def remove(self, task_spec: TaskSpec) -> bool:
        """Withdraw one activation (a failed or canceled task's scheduled work)."""
        try:
            self._items.remove(task_spec)
        except ValueError:
            return False
        return True

    def is_empty(self) -> bool:
        return not self._items

    def size(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return True

    def to_list(self) -> list[str]:
        return [spec.task_id for spec in self._items]

    def peek_next_node(self) -> str | None:
        return self._items[0].task_id if self._items else None

    def get_pending_task_specs(self) -> list[TaskSpec]:
        return list(self._items)

    def retry_failed_task(self, task_spec: TaskSpec) -> bool:
        """Upstream's: queue ``task_spec`` again if retry is enabled (``configure``) and its
        own budget allows (``TaskSpec.can_retry``); the engine does not use this."""
        if self.enable_retry and task_spec.can_retry():
            task_spec.status = TaskStatus.READY
            self.enqueue(task_spec)
            return True
        return False

    def clear(self) -> None:
        self._items.clear()

    def cleanup(self) -> None:
        self._items.clear()


__all__ = ["LocalTaskQueue"]
