"""The upstream-compatible distributed path: in-process runs on Redis, groups on the pool."""

from __future__ import annotations

import os
from typing import Any

import dist_flows as flows
import dist_groupflows as groupflows
import pytest
from conftest import DistPool, session_keys, wait_until

from graflow import keys
from graflow.channels.redis_channel import RedisChannel
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.exceptions import ConfigError, GraflowRuntimeError
from graflow.queue.base import TaskSpec
from graflow.queue.distributed import DistributedTaskQueue, RedisTaskQueue

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _redis_ctx(graph: Any, client: Any, prefix: str, start: str | None = None) -> ExecutionContext:
    return ExecutionContext.create(
        graph, start, channel_backend="redis", config={"redis_client": client, "key_prefix": prefix}
    )


def test_in_process_run_on_a_redis_channel(client: Any, key_prefix: str, redis_client: Any) -> None:
    ctx = _redis_ctx(flows.summing().graph, client, key_prefix)
    assert isinstance(ctx.channel, RedisChannel) and ctx.channel.namespace == key_prefix
    ctx.channel.set("n", 4)
    assert WorkflowEngine().execute(ctx) == 6
    assert ctx.completed_tasks == ["numbers", "total"] and ctx.steps == 2
    raw = keys.channel_prefix(key_prefix, ctx.session_id) + "total.__result__"
    assert redis_client.exists(raw)  # the result lives in Redis, not in this process
    again = RedisChannel(ctx.session_id, redis_client=client, key_prefix=key_prefix)
    assert again.get("numbers.__result__") == [0, 1, 2, 3]


def test_group_members_run_on_the_pool(pool: DistPool, client: Any) -> None:
    ctx = _redis_ctx(groupflows.pid_group(pool.prefix).graph, client, pool.prefix)
    assert WorkflowEngine().execute(ctx) == ["head", "m1", "m2", "m3", "tail"]
    pids = dict(ctx.channel.get("pids"))
    here = os.getpid()
    assert pids["head"] == here and pids["tail"] == here
    members = {pids[m] for m in ("m1", "m2", "m3")}
    assert members <= pool.worker_pids() and here not in members

    # The producer merged the members' completions and steps: the same as a local run.
    local = ExecutionContext.create(groupflows.pid_group(pool.prefix, backend="threading").graph)
    assert WorkflowEngine().execute(local) == ["head", "m1", "m2", "m3", "tail"]
    assert sorted(ctx.completed_tasks) == sorted(local.completed_tasks)
    assert ctx.completed_tasks[0] == "head" and ctx.completed_tasks[-2:] == ["ParallelGroup_1", "tail"]
    assert ctx.steps == local.steps == 6
    # Every member's result is its own (the last branch's commit used to fail half-way).
    assert [ctx.get_result(m) for m in ("m1", "m2", "m3")] == ["m1", "m2", "m3"]
    from rq import Queue

    assert Queue(pool.queue, connection=client).failed_job_registry.count == 0
    assert not any("Traceback" in pool.log_text(i) for i in range(pool.size))
    # Group bookkeeping lives in the run's session, with the session TTL.
    names = session_keys(client, pool.prefix, ctx.session_id)
    state_keys = [n for n in names if b":session:" in n]
    assert state_keys and all(client.ttl(n) > 0 for n in state_keys)


@pytest.mark.parametrize("decode", [True, False], ids=["decode_responses", "binary"])
def test_a_group_given_a_redis_client_as_upstream_documents_it(pool: DistPool, redis_url: str, decode: bool) -> None:
    # with_execution(backend=REDIS, backend_config={"redis_client": r, "key_prefix": p}),
    # with the run's channel on the same client: either kind of client works, and the
    # client never travels (the graph the workers load, and any pickle of it, has none).
    import cloudpickle
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=decode)
    try:
        wf = groupflows.pid_group(pool.prefix, redis_client=r)
        group = wf.graph.get_node("ParallelGroup_1")
        assert group.backend_client is r and "redis_client" not in group.backend_config
        assert cloudpickle.loads(cloudpickle.dumps(group)).backend_client is None
        ctx = _redis_ctx(wf.graph, r, pool.prefix)
        assert WorkflowEngine().execute(ctx) == ["head", "m1", "m2", "m3", "tail"]
        members = {dict(ctx.channel.get("pids"))[m] for m in ("m1", "m2", "m3")}
        assert members <= pool.worker_pids()
        assert [ctx.get_result(m) for m in ("m1", "m2", "m3")] == ["m1", "m2", "m3"]
    finally:
        r.close()


@pytest.mark.parametrize("best_effort", [False, True], ids=["strict", "best_effort"])
def test_failed_member_on_the_pool_is_judged_like_in_process(pool: DistPool, client: Any, best_effort: bool) -> None:
    from graflow.exceptions import ParallelGroupError

    def run(ctx: ExecutionContext) -> Any:
        try:
            return WorkflowEngine().execute(ctx)
        except ParallelGroupError as exc:
            return exc

    pooled = _redis_ctx(groupflows.failing_group(pool.prefix, best_effort=best_effort).graph, client, pool.prefix, "ParallelGroup_1")
    local = ExecutionContext.create(groupflows.failing_group(pool.prefix, "threading", best_effort).graph, "ParallelGroup_1")
    got, want = run(pooled), run(local)
    if best_effort:
        assert got == want == "tail"
    else:
        assert isinstance(got, ParallelGroupError) and isinstance(want, ParallelGroupError)
        assert got.failed_tasks == want.failed_tasks and "bad member" in str(got)
    assert pooled.completed_tasks == local.completed_tasks and pooled.steps == local.steps
    assert pooled.get_result("after") == "after"


@pytest.mark.parametrize("keywords", [False, True], ids=["positional", "upstream_keywords"])
def test_redis_coordinator_execute_group(pool: DistPool, client: Any, keywords: bool) -> None:
    from graflow.coordination.redis_coordinator import RedisCoordinator
    from graflow.core.handlers.group_policy import StrictGroupPolicy

    wf = groupflows.pid_group(pool.prefix)
    ctx = _redis_ctx(wf.graph, client, pool.prefix, "head")
    members = [wf.graph.task(m) for m in ("m1", "m2")]
    coordinator = RedisCoordinator(DistributedTaskQueue(redis_client=client, key_prefix=pool.prefix))
    if keywords:  # upstream's parameter names
        coordinator.execute_group(group_id="grp", tasks=members, execution_context=ctx, policy=StrictGroupPolicy())
    else:
        coordinator.execute_group("grp", members, ctx, StrictGroupPolicy())
    pids = dict(ctx.channel.get("pids"))
    assert set(pids) == {"m1", "m2"} and {pids["m1"], pids["m2"]} <= pool.worker_pids()
    assert sorted(ctx.completed_tasks) == ["m1", "m2"] and ctx.steps == 2
    assert ctx.get_result("m1") == "m1"


def test_group_executor_runs_members_on_the_pool(pool: DistPool, client: Any) -> None:
    # Upstream's ParallelGroup.run calls GroupExecutor with the group's with_execution settings.
    from graflow.coordination.executor import GroupExecutor

    wf = groupflows.pid_group(pool.prefix)
    ctx = _redis_ctx(wf.graph, client, pool.prefix, "head")
    members = [wf.graph.task(m) for m in ("m1", "m2")]
    config = {"redis_client": client, "key_prefix": pool.prefix}
    GroupExecutor.execute_parallel_group("grp", members, ctx, backend="redis", backend_config=config)
    pids = dict(ctx.channel.get("pids"))
    assert set(pids) == {"m1", "m2"} and {pids["m1"], pids["m2"]} <= pool.worker_pids()
    assert sorted(ctx.completed_tasks) == ["m1", "m2"] and ctx.get_result("m2") == "m2"
    assert "redis_client" in config  # the caller's dict is left as it was given


def test_group_timeout_raises_runtime_error_wrapping_timeout(pool: DistPool, client: Any) -> None:
    nobody = f"{pool.prefix}-nobody"  # no worker serves this queue
    ctx = _redis_ctx(groupflows.pid_group(pool.prefix, queue=nobody, timeout=0.5).graph, client, pool.prefix)
    with pytest.raises(GraflowRuntimeError) as info:
        WorkflowEngine().execute(ctx)
    err = info.value
    assert isinstance(err.cause, TimeoutError) and "0.5" in str(err)
    assert "m1" in str(err) and "ParallelGroup_1" in str(err)
    assert "tail" not in dict(ctx.channel.get("pids"))
    # The members nobody took are dropped, and the session's keys expire.
    from rq import Queue

    assert Queue(nobody, connection=client).count == 0
    assert not [k for k in client.scan_iter(match=f"rq:job:gf-{ctx.session_id}-*")]
    names = [n for n in session_keys(client, pool.prefix, ctx.session_id) if b":session:" in n]
    assert names and all(client.ttl(n) > 0 for n in names)


def test_redis_group_on_a_memory_channel_is_a_config_error(key_prefix: str) -> None:
    wf = groupflows.pid_group(key_prefix)
    with pytest.raises(ConfigError, match="channel_backend='redis'"):
        wf.execute()
    ctx = ExecutionContext.create(groupflows.pid_group(key_prefix).graph)
    with pytest.raises(ConfigError):
        WorkflowEngine().execute(ctx)


def test_distributed_task_queue(client: Any, key_prefix: str, redis_client: Any) -> None:
    from rq import Queue

    assert RedisTaskQueue is DistributedTaskQueue
    wf = flows.summing()
    ctx = _redis_ctx(wf.graph, client, key_prefix, "numbers")
    queue = DistributedTaskQueue(redis_client=client, key_prefix=key_prefix)
    assert queue.size() == 0 and queue.is_empty() and queue.to_list() == [] and queue.dequeue() is None
    first = TaskSpec(wf.graph.task("numbers"), ctx, trace_id=ctx.trace_id)
    assert queue.enqueue(first) is True
    assert ctx.graph_hash and redis_client.exists(keys.graph(key_prefix, ctx.graph_hash))
    assert queue.graph_store.load(ctx.graph_hash).task("total") is not None
    job_id = f"gf-{ctx.session_id}-{first.spec_id}-a1"
    assert queue.size() == 1 and queue.to_list() == [job_id] and not queue.is_empty()
    assert Queue(key_prefix, connection=client).job_ids == [job_id]  # an rq job on queue == prefix

    got = queue.dequeue()
    assert got is not None and got.task_id == "numbers" and got.spec_id == first.spec_id
    assert got.trace_id == ctx.trace_id and got.attempt == 1
    assert queue.size() == 0 and queue.dequeue() is None
    assert not redis_client.exists(f"rq:job:{job_id}")  # consumed: the hash is not left behind

    for task_id in ("numbers", "total"):
        queue.enqueue(TaskSpec(wf.graph.task(task_id), ctx))
    assert queue.size() == 2
    queue.cleanup()
    assert queue.size() == 0 and queue.to_list() == []
    assert not list(redis_client.scan_iter(match=f"rq:job:gf-{ctx.session_id}-*"))


def test_distributed_task_queue_from_host_and_port(redis_url: str, key_prefix: str, redis_client: Any) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    db = int(parts.path.strip("/") or 0)
    queue = DistributedTaskQueue(host=parts.hostname or "localhost", port=parts.port or 6379, db=db,
                                 key_prefix=key_prefix)  # fmt: skip
    assert queue.key_prefix == key_prefix and queue.size() == 0
    assert queue.redis_client.ping()
    wait_until(lambda: True)
