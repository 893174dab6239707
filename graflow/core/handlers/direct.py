"""The default handler: run the task in the calling thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.core.handler import TaskHandler

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable


class DirectTaskHandler(TaskHandler):
    """Calls ``task.run()`` and stores the result (or the exception) in the channel."""

    def execute_task(self, task: Executable, context: ExecutionContext) -> Any:
        try:
            result = task.run()
        except BaseException as exc:
            context.set_result(task.task_id, exc)
            raise
        context.set_result(task.task_id, result)
        return result

    def get_name(self) -> str:
        return "direct"


__all__ = ["DirectTaskHandler"]
