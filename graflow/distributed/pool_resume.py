"""Resume a Redis-backed checkpoint on the pool: same session, pending work re-queued."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from graflow.codec import SecretKey
from graflow.distributed import dispatch, liveness, otel
from graflow.distributed.session import SessionStore
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import encode
from graflow.exceptions import CheckpointError

if TYPE_CHECKING:
    from graflow.core.checkpoint_schema import StateDoc
    from graflow.core.graph import TaskGraph


class ResumedRun(NamedTuple):
    """Where the resumed session lives (``WorkflowRun.resume`` wraps it in a handle)."""

    session_id: str
    client: Any
    redis_url: str
    key_prefix: str


def resume_on_pool(
    checkpoint: str,
    redis_url: str | None = None,
    *,
    queue: str | None = None,
    secret_key: SecretKey = None,
    graph: TaskGraph | None = None,
    strict_graph: bool = False,
    force: bool = False,
) -> ResumedRun:
    """Validate the checkpoint, rewrite the session from its state.json, enqueue its work."""
    from graflow.core.checkpoint_reader import compare_fingerprints, read_checkpoint
    from graflow.core.redis_stub import RedisRunStub
    from graflow.identifiers import check_key_prefix, check_queue_name, check_session_id
    from graflow.redisconn import wrap_connection_errors

    loaded = read_checkpoint(checkpoint, secret_key)
    stub = loaded.payload
    if not isinstance(stub, RedisRunStub):
        raise CheckpointError(
            f"{loaded.source} is a memory-channel checkpoint; it can only be resumed in-process — "
            "use `graflow resume --local` or CheckpointManager.resume_from_checkpoint"
        )
    check_session_id(stub.session_id)
    check_key_prefix(stub.key_prefix)
    if queue is not None:
        check_queue_name(queue)
    client, url = stub.connect(redis_url)
    with wrap_connection_errors(url):
        store = SessionStore(client, stub.key_prefix, stub.session_id)
        meta = store.meta()
    # Traced: a resume span in the run's own trace (a current span is linked, not joined:
    # one run, one trace); the resumed attempts' spans are its children.
    run_trace = otel.trace_of(meta.get("traceparent", ""), stub.trace_id)
    span = otel.producer_span("resume", stub.workflow_name, stub.session_id, queue or "", trace_id=run_trace)
    with span as traced, wrap_connection_errors(url):
        if meta.get("state") in ("queued", "running") and not force:
            raise CheckpointError(
                f"session {stub.session_id} is still {meta['state']}; wait for it, cancel it, "
                "or resume with --force"
            )
        graph, graph_hash = stub.graph_for(client, graph, secret_key, loaded.source, url)
        compare_fingerprints(graph, [], loaded.meta.graph_fingerprint, loaded.source, strict_graph)
        state = loaded.state
        known = set(state.known_dynamic)
        wanted = ([state.resuming_task_id] if state.resuming_task_id else []) + [p.task_id for p in state.pending_tasks]
        unknown = sorted({t for t in wanted if t not in graph and t not in known})
        if unknown:
            raise CheckpointError(
                f"checkpoint {loaded.source} names tasks that are neither in the graph nor known "
                f"dynamic tasks: {unknown}; resume with the workflow that wrote it (graph=... / --workflow)"
            )
        from graflow.core.fingerprint import graph_fingerprint

        specs = _specs(state, stub, graph_hash, queue or meta.get("queue") or stub.key_prefix)
        meta_fields = {"graph_hash": graph_hash, "graph_fingerprint": graph_fingerprint(graph),
                       "queue": specs[0].queue if specs else queue or stub.key_prefix}  # fmt: skip
        if traced.traceparent:
            meta_fields["traceparent"] = traced.traceparent
        _rewrite(store, state, meta, meta_fields, specs, stub, loaded.source)
        if specs:
            # The same job ids as before the checkpoint's pending activations ran, maybe on
            # the session's earlier queue: jobs of theirs kept as finished are replaced.
            earlier = [meta["queue"]] if meta.get("queue") else []
            dispatch.enqueue(client, specs, secret_key=secret_key, replace=[*earlier, *(s.queue for s in specs)])
        else:
            # Nothing was pending (e.g. the last task checkpointed): the run is over, as
            # an in-process resume of the same checkpoint returns at once.
            store.end_run("completed", "drained")
    return ResumedRun(stub.session_id, client, url, stub.key_prefix)


def _specs(state: StateDoc, stub: Any, graph_hash: str, queue: str) -> list[Wire]:
    now = time.time()
    common = {"session_id": stub.session_id, "graph_hash": graph_hash, "trace_id": stub.trace_id,
              "queue": queue, "key_prefix": stub.key_prefix}  # fmt: skip
    specs = []
    if state.resuming_task_id:
        specs.append(Wire(task_id=state.resuming_task_id, spec_id=uuid.uuid4().hex, enqueued_at=now,
                          resuming=True, dynamic=state.resuming_task_id in state.known_dynamic, **common))  # fmt: skip
    for p in state.pending_tasks:
        specs.append(Wire(task_id=p.task_id, spec_id=p.spec_id, enqueued_at=now, attempt=p.attempt,
                          retry_count=p.retry_count, parent_task_id=p.parent_task_id, dynamic=p.dynamic,
                          **common))  # fmt: skip
    return specs


def _rewrite(
    store: SessionStore, state: StateDoc, meta: dict[str, str], meta_fields: dict[str, str],
    specs: list[Wire], stub: Any, source: str,
) -> None:  # fmt: skip
    """Replace the session's scheduling state with the checkpoint's, in one transaction."""
    k = store.keys
    # Group runs of the session before the resume: a group the checkpoint lists as pending
    # runs again from the start, and must not find its old run (same spec id) and take it
    # for a redelivery of that run.
    old_runs = [k.group(g.decode() if isinstance(g, bytes) else str(g)) for g in store.client.smembers(k.groups)]
    pipe = store.client.pipeline(transaction=True)
    for name in (k.pending, k.running, k.done, k.completed, k.cycles, k.retries, k.joins, k.cycled, k.handover,
                 k.groups, *old_runs):  # fmt: skip
        pipe.delete(name)
    if state.completed_tasks:
        pipe.zadd(k.completed, {t: i + 1 for i, t in enumerate(state.completed_tasks)})
    if state.cycle_counts:
        pipe.hset(k.cycles, mapping=state.cycle_counts)
    if state.retry_counts:
        pipe.hset(k.retries, mapping=state.retry_counts)
    if state.join_arrivals:
        pipe.hset(k.joins, mapping={t: msgspec.json.encode(ps) for t, ps in state.join_arrivals.items()})
    if state.known_dynamic:
        pipe.sadd(k.known, *state.known_dynamic)
    if specs:
        pipe.hset(k.pending, mapping={s.spec_id: encode(s) for s in specs})
    now = time.time()
    pipe.hdel(k.meta, "error", "error_type", "failed_task", "traceback", "error_blob", "finished_at", "checkpointing",
              "checkpoint_request")
    fields = {
        "state": "queued", "stop_reason": "", "steps": state.steps, "seq": len(state.completed_tasks),
        "max_steps": state.max_steps, "start_node": state.start_node or "", **meta_fields,
        "trace_id": stub.trace_id, "workflow_name": stub.workflow_name, "updated_at": now,
        "default_max_cycles": state.default_max_cycles, "default_max_retries": state.default_max_retries,
        "key_prefix": stub.key_prefix, "resumed_from": source,
        # The run's result is the last completed task's until a resumed task completes.
        "last_task": state.completed_tasks[-1] if state.completed_tasks else "",
    }  # fmt: skip
    if not meta:
        fields["created_at"] = now
    pipe.hset(k.meta, mapping=fields)
    # Live again: listed, so its graph has no TTL until it ends (graflow.distributed.liveness).
    liveness.register(pipe, stub.key_prefix, stub.session_id, str(meta_fields["graph_hash"]),
                      float(meta.get("created_at") or now))  # fmt: skip
    for name in k.fixed():
        pipe.persist(name)
    for task_id in state.known_dynamic:
        pipe.persist(k.dynamic_task(task_id))
    pipe.execute()
    store.persist_channel()


__all__ = ["ResumedRun", "resume_on_pool"]
