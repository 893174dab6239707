"""In-process queue items: a ``TaskSpec`` is one activation holding live objects."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.executable import Executable


class TaskStatus(str, Enum):
    READY = "ready"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


@dataclass(eq=False)
class TaskSpec:
    """One queued activation of a task."""

    executable: Executable
    execution_context: ExecutionContext | None = None
    status: TaskStatus = TaskStatus.READY
    created_at: float = field(default_factory=time.time)
    retry_count: int = 0
    max_retries: int = 0
    last_error: str | None = None
    group_id: str | None = None
    trace_id: str | None = None
    parent_span_id: str | None = None
    # graflow additions: activation identity and delivery bookkeeping
    parent_task_id: str | None = None
    dynamic: bool = False
    attempt: int = 1
    redeliveries: int = 0
    not_before: float = 0.0
    resuming: bool = False
    _spec_id: str | None = None

    @classmethod
    def activation(
        cls, executable: Executable, ctx: ExecutionContext, parent_task_id: str | None, group_id: str | None
    ) -> TaskSpec:
        """A new activation, as the in-process engine makes one per ready task: only the
        fields that differ from their defaults are set (the rest are class attributes)."""
        spec = object.__new__(cls)
        spec.executable = executable
        spec.execution_context = ctx
        spec.created_at = time.time()
        spec.trace_id = ctx.trace_id
        spec.parent_task_id = parent_task_id
        spec.group_id = group_id
        return spec

    @property
    def task_id(self) -> str:
        return self.executable.task_id

    @property
    def spec_id(self) -> str:
        """The activation's idempotency key (made on first use; most local runs never need it)."""
        if self._spec_id is None:
            self._spec_id = uuid.uuid4().hex
        return self._spec_id

    @spec_id.setter
    def spec_id(self, value: str) -> None:
        self._spec_id = value

    def can_retry(self) -> bool:
        """Upstream's queue-level budget: ``retry_count < max_retries`` (the engine's own
        retries are counted by ``RetryController``, see docs/execution.md)."""
        return self.retry_count < self.max_retries

    def increment_retry(self, error_message: str | None = None) -> None:
        """Count one queue-level retry and make the spec ready again (upstream's)."""
        self.retry_count += 1
        self.last_error = error_message
        self.status = TaskStatus.READY

    def get_task(self) -> Executable:
        """The executable (upstream resolves it from the graph; here the spec holds it)."""
        return self.executable

    def retry(self, error: BaseException, delay: float, retry_count: int) -> TaskSpec:
        """The next attempt of this activation, due after ``delay`` seconds."""
        return TaskSpec(
            self.executable,
            self.execution_context,
            created_at=time.time(),
            retry_count=retry_count,
            max_retries=self.max_retries,
            last_error=f"{type(error).__name__}: {error}",
            group_id=self.group_id,
            trace_id=self.trace_id,
            parent_task_id=self.parent_task_id,
            dynamic=self.dynamic,
            attempt=self.attempt + 1,
            redeliveries=self.redeliveries,
            not_before=time.time() + delay if delay > 0 else 0.0,
            resuming=self.resuming,
            _spec_id=self.spec_id,
        )

    def to_state(self) -> dict[str, Any]:
        """The checkpoint ``pending_tasks`` entry (see docs/checkpoints.md)."""
        return {
            "task_id": self.task_id,
            "spec_id": self.spec_id,
            "status": "ready",
            "created_at": self.created_at,
            "attempt": self.attempt,
            "retry_count": self.retry_count,
            "max_retries": self.max_retries,
            "last_error": self.last_error,
            "dynamic": self.dynamic,
            "parent_task_id": self.parent_task_id,
            "trace_id": self.trace_id,
        }

    def to_wire(self, **fields: Any) -> Any:
        """The wire form of this activation (``graflow.wire``)."""
        from graflow.wire import TaskSpec as WireSpec

        ctx = self.execution_context
        base: dict[str, Any] = {
            "session_id": ctx.session_id if ctx is not None else "",
            "task_id": self.task_id,
            "graph_hash": (ctx.graph_hash or "") if ctx is not None else "",
            "trace_id": self.trace_id or (ctx.trace_id if ctx is not None else ""),
            "spec_id": self.spec_id,
            "attempt": self.attempt,
            "retry_count": self.retry_count,
            "redeliveries": self.redeliveries,
            "enqueued_at": self.created_at,
            "not_before": self.not_before,
            "parent_task_id": self.parent_task_id,
            "group_id": self.group_id,
            "dynamic": self.dynamic,
            "resuming": self.resuming,
        }
        base.update(fields)
        return WireSpec(**base)


class TaskQueue(ABC):
    """The queue interface of upstream Graflow.

    As upstream, a subclass must define ``enqueue``, ``dequeue`` and ``is_empty``;
    ``size`` and ``to_list`` have defaults, so queues written for upstream (which has
    no ``to_list`` and a ``size`` of 0) instantiate unchanged.
    """

    #: Upstream's opt-in queue-level retry (``configure``, ``retry_failed_task``); off.
    enable_retry: bool = False
    enable_metrics: bool = False

    @abstractmethod
    def enqueue(self, task_spec: TaskSpec) -> bool: ...

    @abstractmethod
    def dequeue(self) -> TaskSpec | None: ...

    @abstractmethod
    def is_empty(self) -> bool: ...

    def size(self) -> int:
        """Queued activations; a queue that cannot count says 0, as upstream's base."""
        return 0

    def to_list(self) -> list[str]:
        """Task ids in queue order; a queue that cannot list them says none."""
        return []

    def cleanup(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release resources; nothing for in-memory queues."""

    def configure(self, enable_retry: bool = False, enable_metrics: bool = False) -> None:
        """Upstream's switches; ``enable_metrics`` is recorded but no metrics are kept."""
        self.enable_retry = enable_retry
        self.enable_metrics = enable_metrics

    def get_next_task(self) -> str | None:
        spec = self.dequeue()
        return spec.task_id if spec is not None else None


__all__ = ["TaskQueue", "TaskSpec", "TaskStatus"]
