"""``Executable``: the base of every graph node, and the ``>>``, ``<<``, ``|`` operators."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from graflow.exceptions import GraflowRuntimeError

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.group import ParallelGroup
    from graflow.core.sequential import SequentialTask
    from graflow.core.workflow import WorkflowContext


class Executable(ABC):
    """A node of the graph: has an id, runs, and composes with operators."""

    _execution_context: ExecutionContext | None = None
    handler_type: str = "direct"

    @property
    @abstractmethod
    def task_id(self) -> str:
        """The node id."""

    @abstractmethod
    def run(self) -> Any:
        """Run once."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run()

    # -- execution context ---------------------------------------------------------
    def set_execution_context(self, context: ExecutionContext | None) -> None:
        self._execution_context = context

    def get_execution_context(self) -> ExecutionContext:
        ctx = self._execution_context
        if ctx is None:
            raise GraflowRuntimeError(
                f"task {self.task_id!r} has no execution context bound; run it inside a "
                "workflow (wf.execute()) or call set_execution_context() first"
            )
        return ctx

    # -- registration --------------------------------------------------------------
    def _register(self, wf: WorkflowContext) -> None:
        """Add this node to ``wf``'s graph if it is not there yet: a task defined outside
        the workflow joins it on its first use in an operator."""
        wf.graph.add_node(self, skip_if_exists=True)

    # -- operators -----------------------------------------------------------------
    def __rshift__(self, other: Executable) -> SequentialTask:
        from graflow.core.sequential import link

        return link(self, other)

    def __lshift__(self, other: Executable) -> SequentialTask:
        from graflow.core.sequential import link

        return link(other, self)

    def __or__(self, other: Executable) -> ParallelGroup:
        from graflow.core.group import combine

        return combine(self, other)

    def __ror__(self, other: Executable) -> ParallelGroup:
        from graflow.core.group import combine

        return combine(other, self)

    def __getstate__(self) -> dict[str, Any]:
        # A bound context (and any Redis client it holds) never travels with a task.
        state = self.__dict__.copy()
        state.pop("_execution_context", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def check_executable(value: object, op: str) -> Executable:
    """Operands of ``>>``/``|`` must be tasks; say which value was not."""
    if not isinstance(value, Executable):
        raise TypeError(
            f"unsupported operand for {op}: {type(value).__name__} {value!r:.60}; "
            "both sides must be tasks (decorate functions with @task)"
        )
    return value


__all__ = ["Executable", "check_executable"]
