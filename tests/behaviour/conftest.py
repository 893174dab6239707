"""Behaviour tests: one workflow, run by every driver (see docs/architecture.md).

The ``driver`` fixture is parametrized over both drivers: ``"local"`` (the in-process
``WorkflowEngine``) and ``"pool"`` (the same workflow submitted to two rq worker
subprocesses). ``drivers_in_lockstep`` gives both at once, the pool with one worker
(tests/behaviour/test_differential.py). A test that takes ``driver`` must therefore:

* record what ran through the run's channel (``ctx.get_channel().append(...)``), never
  through Python globals, lists or closures (on workers tasks run in other processes);
* read results only from the returned :class:`Outcome`;
* define custom policies and handlers at module level (they travel with the graph).

Everything that can only be observed in-process (thread identity, ``ctx.queue``,
warning objects, log records, object identity) lives in tests that do not take ``driver``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest


@dataclass
class Outcome:
    """What a driver reports about one run."""

    result: Any
    completed_tasks: list[str]
    steps: int
    stop_reason: str | None
    max_steps_reached: bool
    channel: Any  # anything with .get(key, default=None)
    error: BaseException | None = None
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    name: str

    def run(
        self,
        wf: Any,
        start_node: str | None = None,
        *,
        initial_channel: dict[str, Any] | None = None,
        max_steps: int = 10000,
    ) -> Outcome: ...


class LocalDriver:
    """The in-process engine.

    It does what ``WorkflowContext.execute`` does (a fresh ``ExecutionContext``, each
    ``initial_channel`` item written with ``channel.set``, a fresh ``WorkflowEngine``), but
    builds the context itself so that ``completed_tasks``, ``steps`` and the channel are
    available when the run raises. ``start_node=None`` relies on ``ExecutionContext.create``
    queueing the single start candidate; ``wf.execute()`` itself is exercised by
    dedicated tests.
    """

    name = "local"

    def run(
        self,
        wf: Any,
        start_node: str | None = None,
        *,
        initial_channel: dict[str, Any] | None = None,
        max_steps: int = 10000,
    ) -> Outcome:
        from graflow.core.context import ExecutionContext
        from graflow.core.engine import WorkflowEngine

        ctx = ExecutionContext.create(wf.graph, start_node, max_steps=max_steps)
        for key, value in (initial_channel or {}).items():
            ctx.channel.set(key, value)
        result: Any = None
        error: BaseException | None = None
        try:
            result = WorkflowEngine().execute(ctx)
        except Exception as exc:
            error = exc
        return Outcome(
            result=result,
            completed_tasks=list(ctx.completed_tasks),
            steps=ctx.steps,
            stop_reason=ctx.stop_reason,
            max_steps_reached=bool(ctx.max_steps_reached),
            channel=ctx.channel,
            error=error,
            session_id=ctx.session_id,
        )


class PoolDriver:
    """Two ``graflow worker`` subprocesses; the workflow is submitted and waited for."""

    name = "pool"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def run(
        self,
        wf: Any,
        start_node: str | None = None,
        *,
        initial_channel: dict[str, Any] | None = None,
        max_steps: int = 10000,
    ) -> Outcome:
        from graflow.distributed import submit
        from graflow.exceptions import WorkflowFailedError

        handle = submit(
            wf, self.pool.redis_url, queue=self.pool.queue, key_prefix=self.pool.prefix,
            initial_channel=initial_channel, start_node=start_node, max_steps=max_steps,
        )  # fmt: skip
        result: Any = None
        error: BaseException | None = None
        try:
            result = handle.wait(timeout=20)
        except WorkflowFailedError as exc:
            error = exc.cause or exc
        except Exception as exc:
            error = exc
        status = handle.status()
        return Outcome(
            result=result,
            completed_tasks=handle.store.completed(),
            steps=status.steps,
            stop_reason=status.stop_reason,
            max_steps_reached=status.max_steps_reached,
            channel=handle.channel,
            error=error,
            session_id=handle.session_id,
            extra={"status": status},
        )


DRIVERS: dict[str, type] = {"local": LocalDriver, "pool": PoolDriver}


@pytest.fixture(scope="session")
def worker_pool(redis_url: str) -> Iterator[Any]:
    """Two worker subprocesses for the whole session; they import the behaviour test modules."""
    import os

    from workerpool import Pool

    with Pool(redis_url, 2, extra_paths=[os.path.dirname(__file__)]) as pool:
        yield pool


@pytest.fixture(scope="session")
def drivers_in_lockstep(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Driver, Driver]]:
    """The in-process engine and a pool of ONE worker, which runs ready tasks one at a time
    in queue order as the engine does (tests/behaviour/test_differential.py). The worker
    writes checkpoints to ``pool.checkpoint_dir``."""
    import os

    from workerpool import Pool

    checkpoints = tmp_path_factory.mktemp("pool-checkpoints")
    with Pool(redis_url, 1, extra_paths=[os.path.dirname(__file__)], GRAFLOW_CHECKPOINT_DIR=str(checkpoints)) as pool:
        pool.checkpoint_dir = checkpoints  # type: ignore[attr-defined]
        yield LocalDriver(), PoolDriver(pool)


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest) -> Driver:
    """Runs a workflow with one of the drivers; see the module docstring for the rules."""
    if request.param == "pool":
        return PoolDriver(request.getfixturevalue("worker_pool"))
    return LocalDriver()


@pytest.fixture(autouse=True)
def _no_current_workflow() -> Iterator[None]:
    """Operators outside a ``with workflow()`` block create and set an anonymous workflow;
    make sure no test sees another test's current workflow."""
    from graflow.core.workflow import clear_workflow_context

    clear_workflow_context()
    yield
    clear_workflow_context()
