"""Writing a checkpoint: snapshot under the run's lock, then store the artefacts atomically."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from graflow.codec import SecretKey
from graflow.core.checkpoint import (
    CheckpointMetadata,
    dump_pickle,
    new_checkpoint_id,
    sha256_hex,
)
from graflow.core.checkpoint_schema import SCHEMA_VERSION, encode
from graflow.core.checkpoint_state import build_state_doc
from graflow.exceptions import CheckpointError

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph


def static_graph(ctx: ExecutionContext) -> TaskGraph:
    """The graph as defined, without the tasks this run added."""
    if not ctx._dynamic:
        return ctx.graph
    graph = ctx.graph.copy()
    for task_id in ctx._dynamic:
        if task_id in graph:
            graph.remove_node(task_id)
    return graph


def graph_identity(ctx: ExecutionContext) -> tuple[str, str, bytes]:
    """(graph_hash, fingerprint, pickled static graph), cached while the graph is unchanged."""
    from graflow.coordination.graph_store import pickle_graph
    from graflow.core.fingerprint import graph_fingerprint

    cached = ctx.__dict__.get("_graph_identity")
    if cached is not None and cached[0] == ctx.graph.version and cached[1] is ctx.graph:
        return cached[2], cached[3], cached[4]  # type: ignore[no-any-return]
    graph = static_graph(ctx)
    payload, graph_hash = pickle_graph(graph)
    fingerprint = graph_fingerprint(graph)
    ctx.__dict__["_graph_identity"] = (ctx.graph.version, ctx.graph, graph_hash, fingerprint, payload)
    ctx.graph_hash = graph_hash
    return graph_hash, fingerprint, payload


def _redis_stub(ctx: ExecutionContext, graph_hash: str, fingerprint: str, payload: bytes, secret_key: SecretKey) -> Any:
    from graflow.coordination.graph_store import GraphStore
    from graflow.core.redis_stub import RedisRunStub, upload_dynamic_tasks
    from graflow.redisconn import ConnectionDescriptor

    channel: Any = ctx.channel
    client = channel.redis_client
    prefix = channel.namespace
    store = GraphStore(client, prefix, secret_key=secret_key)
    uploaded: set[str] = ctx.__dict__.setdefault("_uploaded_graphs", set())
    if graph_hash not in uploaded:
        store.save_pickled(payload, graph_hash)
        uploaded.add(graph_hash)
    upload_dynamic_tasks(ctx, client, prefix, secret_key)
    return RedisRunStub(
        session_id=ctx.session_id,
        trace_id=ctx.trace_id,
        start_node=ctx.start_node,
        max_steps=ctx.max_steps,
        default_max_cycles=ctx.default_max_cycles,
        default_max_retries=ctx.default_max_retries,
        graph_hash=graph_hash,
        graph_fingerprint=fingerprint,
        descriptor=ConnectionDescriptor.from_client(client),
        key_prefix=prefix,
        workflow_name=ctx.workflow_name,
        config={k: v for k, v in ctx.config.items() if k not in ("url", "redis_url", "secret_key")},
    )


def write_checkpoint(
    ctx: ExecutionContext,
    path: str | None,
    metadata: dict[str, Any] | None,
    resuming_task_id: str | None,
    secret_key: SecretKey,
) -> tuple[str, CheckpointMetadata]:
    import graflow
    from graflow.storage import open_directory, open_location

    if path:
        store, base = open_location(path)
    else:
        store = open_directory(None)
        base = ""
    with ctx._lock:
        steps = ctx.state.steps
        if not path:
            base = store.auto_base(ctx.session_id, steps)
        checkpoint_id = new_checkpoint_id(ctx.session_id, steps)
        graph_hash, fingerprint, payload = graph_identity(ctx)
        if ctx.channel_backend == "redis":
            target: Any = _redis_stub(ctx, graph_hash, fingerprint, payload, secret_key)
        else:
            target = ctx
        pkl, signed = dump_pickle(target, secret_key)
        state_doc = build_state_doc(ctx, checkpoint_id, resuming_task_id, store.kind)
    state_bytes = encode(state_doc)
    meta = CheckpointMetadata.create(
        checkpoint_id,
        ctx.session_id,
        steps,
        ctx.start_node,
        {"channel": state_doc.backend.channel, "queue": state_doc.backend.queue, "storage": store.kind},
        user_metadata=metadata,
        graph_hash=graph_hash,
        graph_fingerprint=fingerprint,
    )
    doc = meta.to_dict()
    doc.update(
        schema_version=SCHEMA_VERSION,
        files={
            "pkl": {"bytes": len(pkl), "sha256": sha256_hex(pkl)},
            "state": {"bytes": len(state_bytes), "sha256": sha256_hex(state_bytes)},
        },
        signed=signed,
        graflow_version=graflow.__version__,
        python_version=sys.version.split()[0],
    )
    try:
        meta_bytes = encode(doc)
    except TypeError as exc:
        raise CheckpointError(
            f"checkpoint metadata for {store.display(base, 'meta')} is not JSON-serialisable: {exc}; "
            "pass only str/int/float/bool/None/list/dict values in metadata=",
            exc,
        ) from exc
    location = store.write(base, {"pkl": pkl, "state": state_bytes, "meta": meta_bytes})
    ctx.checkpoint_metadata = meta.to_dict()
    ctx.last_checkpoint_path = location
    return location, meta


__all__ = ["graph_identity", "static_graph", "write_checkpoint"]
