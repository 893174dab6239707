"""graflow: Python workflows that run in-process or on a pool of stateless Redis workers.

``import graflow`` stays light: it imports none of redis, rq, msgspec or networkx;
the modules that need them import them when used.
"""

from __future__ import annotations

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.retry import RetryPolicy
from graflow.core.task import chain, parallel
from graflow.core.workflow import workflow


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "0+unknown"
    try:
        return version("graflow")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = ["RetryPolicy", "TaskExecutionContext", "chain", "parallel", "task", "workflow"]
