"""Task handlers decide how one attempt runs; ``TaskResult`` is a member's outcome."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable


@dataclass
class TaskResult:
    """The outcome of one parallel-group member, as given to group policies."""

    task_id: str
    success: bool
    error: BaseException | None = None
    error_message: str | None = None
    duration: float = 0.0
    timestamp: float = 0.0


class TaskHandler(ABC):
    """Runs one attempt. Must store the result with ``context.set_result``; on an
    exception, store the exception and re-raise."""

    @abstractmethod
    def execute_task(self, task: Executable, context: ExecutionContext) -> Any:
        """Run ``task`` once and return its result."""

    def get_name(self) -> str:
        return type(self).__name__


__all__ = ["TaskHandler", "TaskResult"]
