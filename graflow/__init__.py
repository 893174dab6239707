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


def __getattr__(name: str) -> str:
    # ``__version__`` reads package metadata, which costs more than the rest of the
    # import: do it on first use.
    if name == "__version__":
        version = _version()
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'graflow' has no attribute {name!r}")

__all__ = ["RetryPolicy", "TaskExecutionContext", "chain", "parallel", "task", "workflow"]
