"""Parallel-group branches on the worker pool for an in-process run.

The producer starts the group in the run's session (the same atomic step workers
use), waits for every branch without a fixed barrier timeout, then applies the
policy itself and merges what the branches did into its context. Member jobs carry
``driver="producer"``: the last branch reports back instead of finishing the group.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from graflow import keys
from graflow.core.coordinator import TaskCoordinator
from graflow.distributed.run_shape import encode_shape
from graflow.exceptions import ConfigError, GraflowRuntimeError

if TYPE_CHECKING:
    from graflow.core.branches import GroupRun
    from graflow.core.context import ExecutionContext
    from graflow.core.group import ParallelGroup
    from graflow.core.handler import TaskResult
    from graflow.core.queue import TaskSpec

logger = logging.getLogger("graflow.coordination")
REPORT_EVERY = 30.0


def _client(ctx: ExecutionContext, config: dict[str, Any], given: Any) -> tuple[Any, str]:
    """The client to coordinate with: the one given to ``with_execution`` (any
    ``decode_responses``: a binary twin is derived), its connection settings (with
    ``username``, ``password``, ``ssl``), else the run's channel's own."""
    from graflow.redisconfig import client_for

    prefix = str(config.get("key_prefix") or getattr(ctx.channel, "namespace", None) or keys.DEFAULT_PREFIX)
    if given is not None or config.get("url") or config.get("host"):
        client = client_for({**config, "redis_client": given})
    else:
        client = ctx.channel.redis_client  # type: ignore[attr-defined]
    return client, prefix


def run_branches_on_pool(ctx: ExecutionContext, group: ParallelGroup, spec: TaskSpec, run: GroupRun) -> dict[str, TaskResult]:
    """Send each member's branch to the pool, wait for all, return one result per member."""
    from graflow.core.graph_store import GraphStore
    from graflow.distributed import dispatch
    from graflow.distributed.session import SessionStore
    from graflow.distributed.spec import TaskSpec as Wire
    from graflow.distributed.spec import encode

    if ctx.channel_backend != "redis":
        raise ConfigError(
            f"group {group.task_id!r} runs its branches on the worker pool, but this run's channel is "
            f"{ctx.channel_backend!r}: workers could not see its data — run with channel_backend='redis'"
        )
    config = dict(group.backend_config)
    client, prefix = _client(ctx, config, group.backend_client)
    queue = str(config.get("queue") or prefix)
    timeout = config.get("timeout")
    from graflow.identifiers import check_key_prefix, check_queue_name, check_session_id

    # The run's id becomes pool key names and rq job ids: refused before anything is written.
    check_session_id(ctx.session_id)
    check_key_prefix(prefix)
    check_queue_name(queue)
    graph_hash = GraphStore(client, prefix).save(ctx.graph)
    store = SessionStore(client, prefix, ctx.session_id)
    if not store.exists():
        pipe = client.pipeline(transaction=True)
        store.create({"max_steps": 1 << 62, "graph_hash": graph_hash, "queue": queue, "trace_id": ctx.trace_id,
                      "start_node": ctx.start_node or "", "steps": ctx.steps, "key_prefix": prefix,
                      "workflow_name": ctx.workflow_name, "driver": "producer"}, {}, pipeline=pipe)  # fmt: skip
        pipe.set(store.keys.shape, encode_shape(ctx.graph))
        pipe.execute()
    group_run = f"{uuid.uuid4().hex}.1"
    placeholder = f"producer-{group_run}"
    members = []
    for member in group.tasks:
        w = Wire(session_id=ctx.session_id, task_id=member.task_id, graph_hash=graph_hash, trace_id=ctx.trace_id,
                 spec_id=uuid.uuid4().hex, enqueued_at=time.time(), parent_task_id=group.task_id,
                 group_id=group.task_id, group_run=group_run, branch_id=member.task_id, driver="producer",
                 queue=queue, key_prefix=prefix)  # fmt: skip
        members.append([member.task_id, w.spec_id, encode(w).decode()])
    before = set(store.completed())
    steps_before = int(store.meta().get("steps") or 0)
    # A placeholder in :running keeps the session from looking drained while branches run.
    client.hset(store.keys.running, placeholder, msgspec.json.encode({"worker": "producer"}))
    outcome = store.group_start({"spec_id": placeholder, "attempt": 1, "group_id": group.task_id, "run": group_run,
                                 "members": members, "parent": None, "spec": "", "driver": "producer"})  # fmt: skip
    client.hset(store.keys.running, placeholder, msgspec.json.encode({"worker": "producer"}))
    dispatch.enqueue(client, outcome.get("enqueue") or [])
    try:
        record = _wait(store, group_run, group, timeout)
    except BaseException:
        _abandon(store, group_run)
        raise
    finally:
        client.hdel(store.keys.running, placeholder)
    _merge(ctx, store, before, steps_before, group)
    if record.get("end"):
        verdict, task_id, message = msgspec.json.decode(record["end"])
        from graflow.core.scheduler import CANCEL, TERMINATE

        run.record_end(CANCEL if verdict == "cancel" else TERMINATE, task_id, message)
    for req in msgspec.json.decode(record["requests"]) if record.get("requests") else []:
        from graflow.core.task_context import CheckpointRequest

        run.add_checkpoint_request(CheckpointRequest(req.get("metadata") or {}, req.get("path"), req.get("requested_by") or []))
    _expire(store, group_run)
    from graflow.distributed.executor import member_results

    return member_results(record, group)


def _wait(store: Any, group_run: str, group: ParallelGroup, timeout: float | None) -> dict[str, str]:
    """Until every branch has finished; logs the outstanding ones every 30 s."""
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    next_report = time.monotonic() + REPORT_EVERY
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys.group_done(group_run))  # before the first check: no lost wake-up
    try:
        while True:
            # Two small fields per check; the whole record (every branch's result) once.
            finished, branches = store.client.hmget(store.keys.group(group_run), "finished", "branches")
            if finished is not None and int(finished) >= int(branches or 1):
                record: dict[str, str] = store.group(group_run)
                return record
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                record = store.group(group_run)
                waiting = [m.task_id for m in group.tasks if f"res:{m.task_id}" not in record]
                raise GraflowRuntimeError(
                    f"group {group.task_id!r}: branches {waiting} did not finish within {timeout}s on the pool",
                    cause=TimeoutError(f"group {group.task_id} timed out"),
                    task_id=group.task_id,
                )
            if now >= next_report:
                record = store.group(group_run)
                waiting = [m.task_id for m in group.tasks if f"res:{m.task_id}" not in record]
                logger.info("group %s waits for branches %s; live workers: %s", group.task_id, waiting, _workers(store.client))
                next_report = now + REPORT_EVERY
            pubsub.get_message(timeout=1.0 if deadline is None else max(0.0, min(1.0, deadline - now)))
    finally:
        pubsub.close()


def _expire(store: Any, group_run: str) -> None:
    """The session's bookkeeping outlives the group by ``GRAFLOW_SESSION_TTL`` at most."""
    from graflow.distributed.session import session_ttl

    pipe = store.client.pipeline(transaction=False)
    for name in [*store.keys.fixed(), store.keys.group(group_run)]:
        pipe.expire(name, session_ttl())
    pipe.execute()


def _abandon(store: Any, group_run: str) -> None:
    """The producer gave up on a group (timeout, interrupt): drop this group run's jobs
    that no worker took yet, so they neither run later nor stay in Redis forever, and
    let the session's keys expire. Branches already running finish harmlessly."""
    from graflow.distributed import dispatch
    from graflow.distributed.spec import decode

    try:
        mine = {}
        for spec_id, raw in store.client.hgetall(store.keys.pending).items():
            wire = decode(raw)
            if wire.group_run == group_run:
                mine[spec_id] = wire
        if mine:
            dispatch.drop(store.client, list(mine.values()))
            store.client.hdel(store.keys.pending, *mine)
        _expire(store, group_run)
    except Exception:
        logger.warning("could not drop the queued branches of group run %s", group_run, exc_info=True)


def _workers(client: Any) -> list[str]:
    from graflow.distributed.rqapi import Worker

    return [w.name for w in Worker.all(connection=client)]


def _merge(ctx: ExecutionContext, store: Any, before: set[str], steps_before: int, group: ParallelGroup) -> None:
    """Fold the branches' completions, steps and cycle counts into the producer's context."""
    done = [t for t in store.completed() if t not in before]
    steps_after = int(store.meta().get("steps") or 0)
    cycles = {k.decode(): int(v) for k, v in store.client.hgetall(store.keys.cycles).items()}
    with ctx._lock:
        for task_id in done:
            if task_id not in ctx.state.completed_set:
                ctx.state.completed_set.add(task_id)
                ctx.state.completed.append(task_id)
        ctx.state.steps += max(0, steps_after - steps_before)
        for base, count in cycles.items():
            if count > ctx.cycle_controller.cycle_counts.get(base, 0):
                ctx.cycle_controller.cycle_counts[base] = count


class RedisCoordinator(TaskCoordinator):
    """Upstream's coordinator: ``execute_group`` runs a group's members on the pool."""

    def __init__(self, task_queue: Any) -> None:
        self.task_queue = task_queue

    def execute_group(
        self, group_id: str, tasks: list[Any], execution_context: ExecutionContext | None = None,
        policy: Any = "strict", *, exec_context: ExecutionContext | None = None,
    ) -> None:  # fmt: skip
        """Run ``tasks`` as group ``group_id`` on the pool and apply ``policy``; the context
        may also be passed as ``exec_context=`` (graflow's earlier name)."""
        if exec_context is not None:
            if execution_context is not None and exec_context is not execution_context:
                raise TypeError("execute_group: exec_context and execution_context name one argument; pass one")
            execution_context = exec_context
        if execution_context is None:
            raise TypeError("execute_group: missing the run's context; pass execution_context (or exec_context)")
        from graflow.core.coordinator import CoordinationBackend
        from graflow.core.group_executor import run_group_call

        config = {
            "redis_client": getattr(self.task_queue, "redis_client", None),
            "key_prefix": getattr(self.task_queue, "key_prefix", keys.DEFAULT_PREFIX),
        }
        run_group_call(group_id, tasks, execution_context, CoordinationBackend.REDIS, config, policy)


__all__ = ["RedisCoordinator", "run_branches_on_pool"]
