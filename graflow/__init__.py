"""graflow: Python workflows that run in-process or on a pool of stateless Redis workers.

``import graflow`` stays light: it imports none of redis, rq, msgspec or networkx;
the modules that need them import them when used.
"""

from __future__ import annotations

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.drivers import PoolDriver, install_pool
from graflow.core.retry import RetryPolicy
from graflow.core.task import chain, parallel
from graflow.core.workflow import workflow
from graflow.version import package_version


def _pool() -> PoolDriver:
    # The one place a core call reaches the pool driver: loaded on first use.
    from graflow.distributed import driver

    return driver


install_pool(_pool)


def __getattr__(name: str) -> str:
    # ``__version__`` reads package metadata, which costs more than the rest of the
    # import: do it on first use.
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module 'graflow' has no attribute {name!r}")


__all__ = ["RetryPolicy", "TaskExecutionContext", "chain", "parallel", "task", "workflow"]
