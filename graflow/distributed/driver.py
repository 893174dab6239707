"""The pool driver as the core sees it (``graflow.core.drivers.PoolDriver``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.distributed.redis_coordinator import run_branches_on_pool
from graflow.distributed.submit import submit as submit_run

if TYPE_CHECKING:
    from graflow.core.workflow import WorkflowContext
    from graflow.distributed.run import WorkflowRun


def submit(graph: WorkflowContext, redis_url: str, **kwargs: Any) -> WorkflowRun:
    """``WorkflowContext.submit``: hand the run to the pool."""
    return submit_run(graph, redis_url, **kwargs)


__all__ = ["run_branches_on_pool", "submit"]
