"""Behaviour tests: one workflow, run by every driver (see docs/architecture.md).

The ``driver`` fixture is parametrized over both drivers and the kinds of Redis client a
user may hand graflow (``DRIVERS``): ``"local"`` (the in-process ``WorkflowEngine``),
``"pool"`` and ``"pool-text"`` (the same workflow submitted to two rq worker subprocesses,
with a URL or a ``decode_responses=True`` client), and ``"producer-bytes"`` /
``"producer-text"`` (the in-process engine on a Redis channel made from the user's client,
every parallel group's branches on the workers, as upstream documents it). ``drivers_in_lockstep`` gives both at once, the pool with one worker
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
        from graflow.core.engine import WorkflowEngine

        ctx = self.context(wf, start_node, max_steps)
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

    def context(self, wf: Any, start_node: str | None, max_steps: int) -> Any:
        from graflow.core.context import ExecutionContext

        return ExecutionContext.create(wf.graph, start_node, max_steps=max_steps)


def user_client(redis_url: str, kind: str) -> Any:
    """A client as a user makes one: ``kind`` "text" is ``decode_responses=True`` (upstream's
    docs and examples), "bytes" the redis-py default."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=(kind == "text"))
    _clients.append(client)
    return client


_clients: list[Any] = []  # closed after each test by the ``driver`` fixture


class ProducerDriver(LocalDriver):
    """The in-process engine on a Redis channel made from a user's client, with every
    parallel group run on the worker pool the way upstream documents it
    (``with_execution(backend=REDIS, backend_config={"redis_client": r, "key_prefix": p})``).
    ``kind`` is the client's kind (see ``user_client``)."""

    def __init__(self, pool: Any, kind: str) -> None:
        self.pool = pool
        self.kind = kind
        self.name = f"producer-{kind}"

    def context(self, wf: Any, start_node: str | None, max_steps: int) -> Any:
        from graflow.core.context import ExecutionContext
        from graflow.core.coordinator import CoordinationBackend
        from graflow.core.executable import ParallelGroup

        client = user_client(self.pool.redis_url, self.kind)
        config = {"redis_client": client, "key_prefix": self.pool.prefix}
        for node in wf.graph.nodes:
            task = wf.graph.get_node(node)
            if isinstance(task, ParallelGroup):
                task.with_execution(backend=CoordinationBackend.REDIS, backend_config={**config, "queue": self.pool.queue})
        return ExecutionContext.create(
            wf.graph, start_node, max_steps=max_steps, channel_backend="redis", config=config
        )


class PoolDriver:
    """Two ``graflow worker`` subprocesses; the workflow is submitted and waited for.
    ``kind`` None submits with the pool's URL; "text"/"bytes" with a user's client of
    that kind (see ``user_client``)."""

    def __init__(self, pool: Any, kind: str | None = None) -> None:
        self.pool = pool
        self.kind = kind
        self.name = "pool" if kind is None else f"pool-{kind}"

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

        target = self.pool.redis_url if self.kind is None else user_client(self.pool.redis_url, self.kind)
        handle = submit(
            wf, target, queue=self.pool.queue, key_prefix=self.pool.prefix,
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


# "local": the in-process engine, memory channel. "pool": submitted to the workers with a
# URL (graflow's own binary client). "pool-text": submitted with a decode_responses=True
# client. "producer-text"/"producer-bytes": the in-process engine on a Redis channel made
# from a user's client of that kind, every group's branches on the workers.
DRIVERS = ("local", "pool", "pool-text", "producer-bytes", "producer-text")


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


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Runs a workflow with one of the drivers; see the module docstring for the rules."""
    name: str = request.param
    if name == "local":
        yield LocalDriver()
        return
    pool = request.getfixturevalue("worker_pool")
    if name.startswith("producer-"):
        yield ProducerDriver(pool, name.removeprefix("producer-"))
    else:
        yield PoolDriver(pool, name.removeprefix("pool-") if "-" in name else None)
    while _clients:
        _clients.pop().close()


@pytest.fixture(autouse=True)
def _no_current_workflow() -> Iterator[None]:
    """Operators outside a ``with workflow()`` block create and set an anonymous workflow;
    make sure no test sees another test's current workflow."""
    from graflow.core.workflow import clear_workflow_context

    clear_workflow_context()
    yield
    clear_workflow_context()
