"""The tracing hook interface. Only the no-op tracer ships in 1.0."""

from __future__ import annotations

from typing import Any


class Tracer:
    """Hooks the engine calls around a run; subclass and override what you need."""

    def on_workflow_start(self, workflow_name: str, context: Any) -> None:
        """A run starts."""

    def on_workflow_end(self, workflow_name: str, context: Any, error: BaseException | None = None) -> None:
        """A run ends, also when it raises."""

    def on_task_queued(self, task_id: str, context: Any) -> None:
        """An activation was queued."""

    def on_task_start(self, task_id: str, context: Any) -> None:
        """An attempt starts."""

    def on_task_end(
        self, task_id: str, context: Any, result: Any = None, error: BaseException | None = None
    ) -> None:
        """An attempt ended."""

    def on_dynamic_task_added(
        self, task_id: str, parent_task_id: str | None, context: Any, is_iteration: bool = False
    ) -> None:
        """``next_task``/``next_iteration`` added a task."""

    def on_parallel_group_start(self, group_id: str, member_ids: list[str], context: Any) -> None:
        """A parallel group starts its branches."""

    def on_parallel_group_end(
        self, group_id: str, member_ids: list[str], context: Any, results: Any = None
    ) -> None:
        """All branches of a group finished."""


class NoopTracer(Tracer):
    """Records nothing; the default."""

    __slots__ = ()


__all__ = ["NoopTracer", "Tracer"]
