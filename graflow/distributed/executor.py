"""What a worker does with one activation: check, load, run, commit, hand over.

docs/life-of-a-task.md follows these steps and what each writes to Redis.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from graflow.codec import SecretKey
from graflow.core.cycle import base_task_id
from graflow.core.graph import TaskGraph
from graflow.core.group import ParallelGroup
from graflow.core.handler import TaskResult
from graflow.core.local_queue import LocalTaskQueue
from graflow.core.queue import TaskSpec
from graflow.core.task_context import CheckpointRequest
from graflow.distributed import dispatch
from graflow.distributed.attempt_info import AttemptInfo
from graflow.distributed.pool_context import PoolContext
from graflow.distributed.pool_engine import Branch, PoolEngine
from graflow.distributed.run_writes import flush_writes
from graflow.distributed.session import SessionStore
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import decode, encode
from graflow.distributed.stores import graph_store
from graflow.exceptions import GraflowRuntimeError, PayloadError, PayloadSignatureError

logger = logging.getLogger("graflow.worker")

def _attempt_channel(client: Any, wire: Wire, secret_key: SecretKey) -> Any:
    """The channel a started attempt's code writes: fenced by the attempt, so that once
    another attempt owns the activation (or the run is over) its writes are dropped."""
    from graflow.channels.fenced import FencedRedisChannel

    return FencedRedisChannel(wire.session_id, client, key_prefix=wire.key_prefix, spec_id=wire.spec_id,
                              attempt=wire.attempt, task_id=wire.task_id, secret_key=secret_key)  # fmt: skip


class GroupOutcome:
    """A finished group run, reported to the core like a task's attempt."""

    goto_called = False
    iterated = False
    scheduled = None

    def __init__(self, group_id: str, end: list[Any] | None, requests: list[dict[str, Any]]) -> None:
        verdict = end[0] if end else None
        self.terminate_called = verdict == "terminate"
        self.cancel_called = verdict == "cancel"
        self.terminate_message = end[2] if end and self.terminate_called else None
        self.cancel_message = end[2] if end and self.cancel_called else None
        self.cancel_task_id = end[1] if end and self.cancel_called else None
        self.checkpoint_request: CheckpointRequest | None = None
        if requests:
            metadata: dict[str, Any] = {}
            path = None
            by: list[str] = []
            for req in requests:
                metadata.update(req.get("metadata") or {})
                path = req.get("path") or path
                by.extend(req.get("requested_by") or [])
            metadata.update(task_id=group_id, requested_by=by)
            self.checkpoint_request = CheckpointRequest(metadata, path, by)
        self.control = self.terminate_called or self.cancel_called or self.checkpoint_request is not None


def execute(
    client: Any, wire: Wire, worker: str, secret_key: SecretKey, info: AttemptInfo | None = None
) -> dict[str, Any]:
    """Run one activation of a pooled session; returns the outcome of its session step.
    ``info``, when given, is told when the attempt started and how it ended."""
    info = info if info is not None else AttemptInfo(wire, worker)
    store = SessionStore(client, wire.key_prefix, wire.session_id)
    try:
        graph = graph_store(client, wire.key_prefix, secret_key).get(wire.graph_hash)
    except Exception as exc:
        raise _cannot_load(store, wire, worker, exc, secret_key) from exc
    if graph is None:
        message = (
            f"graph {wire.graph_hash} expired or evicted from Redis; submit the workflow again "
            "or resume the last checkpoint with --workflow"
        )
        store.end_run("failed", "task_failed", message,
                      {"error_type": "GraflowRuntimeError", "failed_task": wire.task_id})  # fmt: skip
        raise GraflowRuntimeError(message, task_id=wire.task_id)
    if wire.phase == "finish":
        return finish_group(store, wire, graph, worker, secret_key, info)
    task = graph.task(wire.task_id)
    is_group = isinstance(task, ParallelGroup)
    base = base_task_id(wire.task_id)
    start = store.start(wire.spec_id, worker, wire.attempt, base, count_cycle=not is_group)
    if start["status"] != "ok":
        return _not_started(store, wire, start, secret_key, info)
    info.started(start["meta"])
    branch = Branch(wire.group_id, wire.group_run, wire.branch_id)
    if is_group:
        outcome = start_group(store, wire, task, branch, secret_key)  # type: ignore[arg-type]
        info.outcome = "completed"
        return outcome
    ctx = PoolContext(graph, start["meta"], store, _attempt_channel(client, wire, secret_key), secret_key)
    if task is None:
        try:
            task = ctx.load_dynamic(wire.task_id, wire.dyn_version)
        except Exception as exc:
            raise _cannot_load(store, wire, worker, exc, secret_key) from exc
        if task is None:
            message = f"task {wire.task_id!r} is neither in graph {wire.graph_hash[:12]} nor a stored dynamic task"
            store.end_run("failed", "task_failed", message,
                          {"error_type": "GraflowRuntimeError", "failed_task": wire.task_id})  # fmt: skip
            raise GraflowRuntimeError(message, task_id=wire.task_id)
    ctx.cycle_for_attempt = int(start["cycles"])
    ctx.retry_controller.retry_counts[base] = int(start["retries"])
    local = TaskSpec(
        task, ctx, retry_count=wire.retry_count, group_id=wire.group_id, trace_id=wire.trace_id,
        parent_task_id=wire.parent_task_id, dynamic=wire.dynamic, attempt=wire.attempt,
        redeliveries=wire.redeliveries, resuming=wire.resuming, _spec_id=wire.spec_id,
    )  # fmt: skip
    engine = PoolEngine(wire, branch, worker)
    try:
        engine.attempt(ctx, local, ctx.task_queue, None)
    except Exception as exc:
        # Raised outside the task body (an unknown handler…): the run
        # fails with it, as in-process, instead of waiting forever on a dead activation.
        engine.fail_final(store, secret_key, wire.task_id, exc, exc, ctx.channel)
        _report(info, engine)
        raise
    finally:
        # The keys noted after the step's own flush (pool_engine): a thread of the task
        # still writing, an attempt redelivered after an outage. Usually none: no round trip.
        flush_writes(client, ctx.channel)
    _report(info, engine)
    return engine.outcome


def _report(info: AttemptInfo, engine: PoolEngine) -> None:
    info.outcome = engine.verdict()
    info.error_type = engine.error_type if info.outcome in ("retried", "failed", "redelivered") else ""


def _cannot_load(store: SessionStore, wire: Wire, worker: str, exc: Exception, secret_key: SecretKey) -> Exception:
    """Record why the task's code did not load here; returns what the job raises.

    A payload that does not unpickle (module missing here, code by value from another
    Python) fails the attempt with ``TaskUnrunnableError``; a bad signature rejects the
    run, as for the wire payload; anything else (Redis unreachable…) is raised as it is.
    """
    if isinstance(exc, PayloadSignatureError):
        store.end_run("failed", "payload_rejected", f"{type(exc).__name__}: {exc}",
                      {"error_type": type(exc).__name__, "failed_task": wire.task_id})  # fmt: skip
        return exc
    if not isinstance(exc, PayloadError):
        return exc
    from graflow.distributed.unrunnable import fail_attempt

    return fail_attempt(store, wire, worker, exc, secret_key)


def _not_started(
    store: SessionStore, wire: Wire, start: dict[str, Any], secret_key: SecretKey, info: AttemptInfo
) -> dict[str, Any]:
    status = start["status"]
    info.outcome = "superseded" if status == "superseded" else "skipped"
    if status == "missing":
        logger.warning("session %s does not exist (expired or purged); dropping %s", wire.session_id, wire.task_id)
    elif status == "final":
        logger.info("session %s is %s; skipping %s", wire.session_id, start.get("state"), wire.task_id)
    elif status == "superseded":
        logger.warning("attempt %d of task %s (session %s) started after a later attempt took it over "
                       "(this worker stalled past its lease); leaving it to that one",
                       wire.attempt, wire.task_id, wire.session_id[:8])  # fmt: skip
    elif status == "dup":
        # This activation completed already; a crash may have cut its hand-over to rq short.
        dispatch.enqueue(store.client, start.get("enqueue") or [], secret_key=secret_key, skip_existing=True)
    return start


def start_group(store: SessionStore, wire: Wire, group: ParallelGroup, branch: Branch, secret_key: SecretKey) -> dict[str, Any]:
    """Put every member's branch on the queue; nobody waits on a barrier."""
    # One run per activation and retry, the same for every redelivery of it: a redelivered
    # group start finds its run (GROUP_START "dup") and re-drives the members it had made
    # ready, instead of starting a second run beside the first (whose members would stay
    # pending forever). A retry of the group is a new run.
    run = f"{wire.spec_id}.{wire.retry_count + 1}"
    engine = PoolEngine(wire, branch, "")
    members = []
    for member in group.tasks:
        # A group a worker starts is finished by a worker ("pool"), also when it is nested in
        # a branch of a producer-driven group: ``driver`` belongs to the member's group run.
        w = engine.child(
            member.task_id, group_id=group.task_id, group_run=run, branch_id=member.task_id,
            parent_task_id=group.task_id, driver="pool",
        )  # fmt: skip
        members.append([member.task_id, w.spec_id, encode(w).decode()])
    parent = [branch.run, branch.branch_id, branch.group_id] if branch.run else None
    outcome = store.group_start({
        "spec_id": wire.spec_id, "attempt": wire.attempt, "group_id": group.task_id, "run": run,
        "members": members, "parent": parent, "spec": encode(wire).decode(), "driver": "pool",
    })  # fmt: skip
    from graflow.crash import crash_point

    # crash point "group.before_handover": the group run and its members' branches are
    # in the session, the members are not in rq. The redelivery re-drives them.
    crash_point("group.before_handover")
    dispatch.enqueue(store.client, outcome.get("enqueue") or [], secret_key=secret_key,
                     skip_existing=outcome.get("status") == "dup")  # fmt: skip
    return outcome


def member_results(record: dict[str, str], group: ParallelGroup) -> dict[str, TaskResult]:
    results = {}
    for member in group.tasks:
        outcome = record.get(f"res:{member.task_id}", "fail:branch never finished")
        ok = outcome == "ok"
        results[member.task_id] = TaskResult(member.task_id, ok, None, None if ok else outcome[5:])
    return results


def finish_group(
    store: SessionStore, wire: Wire, graph: TaskGraph, worker: str, secret_key: SecretKey,
    info: AttemptInfo | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The last branch is done: apply the policy, then complete the group like a task."""
    info = info if info is not None else AttemptInfo(wire, worker)
    record = store.group(wire.group_run or "")
    group_id = record.get("group_id", wire.task_id)
    start = store.start(wire.spec_id, worker, wire.attempt, group_id, count_cycle=False)
    if start["status"] != "ok":
        return _not_started(store, wire, start, secret_key, info)
    info.started(start["meta"])
    group = graph.task(group_id)
    if not isinstance(group, ParallelGroup):
        raise GraflowRuntimeError(f"{group_id!r} is not a parallel group of graph {wire.graph_hash[:12]}")
    parent = msgspec.json.decode(record.get("parent") or "null")
    branch = Branch(parent[2], parent[0], parent[1]) if parent else Branch(None, None, None)
    group_wire = decode(record["spec"])
    ctx = PoolContext(graph, start["meta"], store, _attempt_channel(store.client, wire, secret_key), secret_key)
    ctx.retry_controller.retry_counts[group_id] = int(start["retries"])
    end = msgspec.json.decode(record["end"]) if record.get("end") else None
    requests = msgspec.json.decode(record["requests"]) if record.get("requests") else []
    report = GroupOutcome(group_id, end, requests)
    # What follows the group belongs to the branch the group ran in, and to that run's driver.
    engine = PoolEngine(msgspec.structs.replace(wire, driver=group_wire.driver), branch, worker, retry_of=group_wire)
    local = TaskSpec(group, ctx, group_id=branch.group_id, _spec_id=wire.spec_id)
    if not report.cancel_called:
        try:
            group.policy.on_group_finished(group_id, list(group.tasks), member_results(record, group), ctx)
        except Exception as exc:
            engine._failed(ctx, local, group_id, None, exc, ctx.task_queue)
            _report(info, engine)
            return engine.outcome
        ctx.results[f"{group_id}.__result__"] = None
    engine.commit(ctx, local, group_id, group_id, report, LocalTaskQueue(ctx), None)
    _report(info, engine)
    return engine.outcome


__all__ = ["execute", "finish_group", "graph_store", "start_group"]
