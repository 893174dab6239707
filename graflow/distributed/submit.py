"""Hand a whole run to the worker pool; the producer may exit right after."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from graflow import keys
from graflow.codec import SecretKey
from graflow.distributed import dispatch, liveness, otel
from graflow.distributed.session import SessionStore
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.spec import encode
from graflow.exceptions import ConfigError

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph
    from graflow.core.workflow import WorkflowContext
    from graflow.distributed.run import WorkflowRun


def submit(
    graph: TaskGraph | WorkflowContext,
    redis_url: str | Any = "redis://localhost:6379/0",
    *,
    queue: str = "graflow",
    initial_channel: dict[str, Any] | None = None,
    start_node: str | None = None,
    max_steps: int = 10000,
    secret_key: SecretKey = None,
    key_prefix: str = keys.DEFAULT_PREFIX,
    default_max_cycles: int = 10,
    default_max_retries: int = 0,
    session_id: str | None = None,
) -> WorkflowRun:
    """Upload the graph, create the session, enqueue the start task, return a handle.

    ``redis_url`` is a URL or a redis-py client (either ``decode_responses``; graflow
    derives the binary client it needs from the client's connection settings).

    ``session_id`` (default: a uuid4 hex) must be 1-64 of ``A-Z a-z 0-9 _ -``; ``queue`` and
    ``key_prefix`` 1-64 of those and ``.`` ``:`` (``graflow.identifiers``): anything else is
    refused with ``InvalidIdentifierError`` before anything is written."""
    from graflow.channels.redis_channel import RedisChannel
    from graflow.core.fingerprint import graph_fingerprint
    from graflow.core.graph_store import GraphStore, pickle_graph
    from graflow.core.workflow import WorkflowContext, resolve_start_node
    from graflow.distributed.run import WorkflowRun, connect
    from graflow.distributed.run_shape import encode_shape
    from graflow.identifiers import check_key_prefix, check_queue_name, check_session_id
    from graflow.redisconn import wrap_connection_errors

    # Ids become key names and rq job ids: refused before anything is written.
    if session_id is not None:
        check_session_id(session_id)
    check_key_prefix(key_prefix)
    check_queue_name(queue)
    name = graph.name if isinstance(graph, WorkflowContext) else "workflow"
    task_graph = graph.graph if isinstance(graph, WorkflowContext) else graph
    start = resolve_start_node(task_graph, start_node, name)
    payload, graph_hash = pickle_graph(task_graph)
    client, redis_url = connect(redis_url)
    chosen = session_id is not None
    session_id = session_id or uuid.uuid4().hex
    # Traced (graflow.distributed.otel): the run is one trace (the caller's, else its own
    # from the session id) and the submit span, whose traceparent the session keeps, is the
    # parent of every attempt's. The run's trace_id stays its session id, as the API says.
    with otel.producer_span("submit", name, session_id, queue) as traced, wrap_connection_errors(redis_url):
        trace_id = session_id
        store = SessionStore(client, key_prefix, session_id)
        if chosen and store.exists():
            # A chosen id must name a new run: submitting over a session would overwrite
            # another run's channel and state (resume a run with WorkflowRun.resume).
            raise ConfigError(
                f"session {session_id!r} already exists under prefix {key_prefix!r}; choose another "
                "session_id (or leave it out for a fresh one), or purge the old run first"
            )
        if initial_channel:
            channel = RedisChannel(session_id, redis_client=client, key_prefix=key_prefix, secret_key=secret_key)
            for k, v in initial_channel.items():
                channel.set(k, v)
        first = Wire(
            session_id=session_id,
            task_id=start,
            graph_hash=graph_hash,
            trace_id=trace_id,
            spec_id=uuid.uuid4().hex,
            enqueued_at=time.time(),
            queue=queue,
            key_prefix=key_prefix,
        )
        # Graph, live-run entry and session in one transaction: the graph has no TTL
        # while the run is live (graflow.distributed.liveness).
        pipe = client.pipeline(transaction=True)
        GraphStore(client, key_prefix, secret_key=secret_key).save_pickled(payload, graph_hash, pipeline=pipe, pin=True)
        liveness.register(pipe, key_prefix, session_id, graph_hash)
        store.create(
            {
                "start_node": start,
                "max_steps": max_steps,
                "graph_hash": graph_hash,
                "graph_fingerprint": graph_fingerprint(task_graph),
                "queue": queue,
                "trace_id": trace_id,
                **({"traceparent": traced.traceparent} if traced.traceparent else {}),
                "workflow_name": name,
                "tasks": len(task_graph),  # static tasks and groups: progress shows done/known
                "default_max_cycles": default_max_cycles,
                "default_max_retries": default_max_retries,
                "steps": 0,
                "key_prefix": key_prefix,
            },
            {first.spec_id: encode(first)},
            pipeline=pipe,
        )
        pipe.set(store.keys.shape, encode_shape(task_graph))
        pipe.execute()
        dispatch.enqueue(client, [first], secret_key=secret_key)
    return WorkflowRun(session_id, client=client, redis_url=redis_url, key_prefix=key_prefix, secret_key=secret_key)


__all__ = ["submit"]
