"""Which workflow is being built, and whether a task body is running.

The building blocks (``graflow.core.executable``, ``graflow.core.task``) register
themselves into the current workflow; ``graflow.core.workflow`` defines the workflow
class, which runs graphs and so sits above them. This module holds the state both
need — two context variables — so that neither imports the other. The workflow class
installs itself as the factory of the anonymous workflow operators create when no
``with workflow(...)`` is active.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING

from graflow.exceptions import GraflowRuntimeError

if TYPE_CHECKING:
    from graflow.core.workflow import WorkflowContext

current: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "graflow_workflow", default=None
)
in_task_body: contextvars.ContextVar[bool] = contextvars.ContextVar("graflow_in_task_body", default=False)

_factory: Callable[[str], WorkflowContext] | None = None


def install_workflow_factory(factory: Callable[[str], WorkflowContext]) -> None:
    """Called once by ``graflow.core.workflow`` with its ``WorkflowContext`` class."""
    global _factory
    _factory = factory


def get_current_workflow_context(create_if_not_exist: bool = False) -> WorkflowContext | None:
    ctx = current.get()
    if ctx is None and create_if_not_exist:
        if _factory is None:  # pragma: no cover - graflow/__init__ imports graflow.core.workflow
            raise GraflowRuntimeError("graflow.core.workflow is not imported; import graflow first")
        ctx = _factory("anonymous")
        current.set(ctx)
    return ctx


def current_workflow_context() -> WorkflowContext:
    """The current workflow, creating and setting an anonymous one if none is active."""
    ctx = get_current_workflow_context(create_if_not_exist=True)
    assert ctx is not None
    return ctx


def require_workflow_context() -> WorkflowContext:
    ctx = current.get()
    if ctx is None:
        raise GraflowRuntimeError(
            "no active workflow; build tasks inside `with workflow('name') as wf:`"
        )
    return ctx


def set_current_workflow_context(context: WorkflowContext | None) -> None:
    current.set(context)


def clear_workflow_context() -> None:
    current.set(None)


def registration_target() -> WorkflowContext | None:
    """The workflow a new task registers into: none while a task body runs (docs/execution.md)."""
    if in_task_body.get():
        return None
    return current.get()


def operator_workflow() -> WorkflowContext:
    """The workflow operators write to; an anonymous one is made current if needed."""
    return current_workflow_context()


__all__ = [
    "clear_workflow_context",
    "current",
    "current_workflow_context",
    "get_current_workflow_context",
    "in_task_body",
    "install_workflow_factory",
    "operator_workflow",
    "registration_target",
    "require_workflow_context",
    "set_current_workflow_context",
]
