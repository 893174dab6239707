"""Message shapes for typed channels, as upstream defines them."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "CycleNotificationMessage",
    "DataTransferMessage",
    "TaskErrorMessage",
    "TaskProgressMessage",
    "TaskResultMessage",
    "WorkflowStateMessage",
]


class TaskResultMessage(TypedDict):
    task_id: str
    result: Any
    timestamp: float
    status: str


class TaskProgressMessage(TypedDict):
    task_id: str
    progress: float
    message: str
    timestamp: float


class TaskErrorMessage(TypedDict):
    task_id: str
    error_type: str
    error_message: str
    timestamp: float


class WorkflowStateMessage(TypedDict):
    workflow_id: str
    state: str
    current_task: str | None
    completed_tasks: list[str]
    timestamp: float


class DataTransferMessage(TypedDict):
    from_task: str
    to_task: str
    data: Any
    data_type: str
    timestamp: float


class CycleNotificationMessage(TypedDict):
    task_id: str
    cycle_count: int
    max_cycles: int
    data: Any
