"""Where the core hands work to the pool driver without importing it.

The core sits below the drivers (docs/architecture.md): it may not import
``graflow.distributed``. Two core calls need the pool all the same — a parallel
group whose backend is ``redis`` and ``WorkflowContext.submit`` — so they go
through this hook, which the package root (``graflow/__init__.py``, the place
that wires the layers together) points at ``graflow.distributed.driver``. The
pool is loaded on first use, so ``import graflow`` stays free of redis and rq.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from graflow.exceptions import ConfigError

if TYPE_CHECKING:
    from graflow.core.branches import GroupRun
    from graflow.core.context import ExecutionContext
    from graflow.core.group import ParallelGroup
    from graflow.core.handler import TaskResult
    from graflow.core.queue import TaskSpec
    from graflow.core.workflow import WorkflowContext


class PoolDriver(Protocol):
    """What the core asks of the pool."""

    def run_branches_on_pool(
        self, ctx: ExecutionContext, group: ParallelGroup, spec: TaskSpec, run: GroupRun
    ) -> dict[str, TaskResult]:
        """Run a group's members as pool jobs and wait for them."""
        ...

    def submit(self, graph: WorkflowContext, redis_url: str, **kwargs: Any) -> Any:
        """Hand a whole run to the pool; returns its ``WorkflowRun``."""
        ...


_loader: Callable[[], PoolDriver] | None = None


def install_pool(loader: Callable[[], PoolDriver]) -> None:
    """Point the core at the pool driver (called once, by the package root)."""
    global _loader
    _loader = loader


def pool() -> PoolDriver:
    """The pool driver; loads it on first use."""
    if _loader is None:
        raise ConfigError("the worker-pool driver is not installed: import graflow before graflow.core")
    return _loader()


__all__ = ["PoolDriver", "install_pool", "pool"]
