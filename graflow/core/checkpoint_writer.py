"""Writing a checkpoint: snapshot under the run's lock, then store the artefacts atomically."""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from graflow.codec import SecretKey
from graflow.core.checkpoint_meta import (
    CheckpointMetadata,
    dump_pickle,
    new_checkpoint_id,
    sha256_hex,
)
from graflow.core.checkpoint_schema import SCHEMA_VERSION, encode
from graflow.core.checkpoint_signature import sign_meta
from graflow.core.checkpoint_state import build_state_doc
from graflow.exceptions import CheckpointError

if TYPE_CHECKING:
    from graflow.core.checkpoint_schema import StateDoc
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph
    from graflow.storage import CheckpointStore


def static_graph(ctx: ExecutionContext) -> TaskGraph:
    """The graph as defined, without the tasks this run added."""
    return without_tasks(ctx.graph, ctx._dynamic)


def without_tasks(graph: TaskGraph, task_ids: Iterable[str]) -> TaskGraph:
    """``graph`` itself, or a copy without those of ``task_ids`` that are nodes of it."""
    drop = [t for t in task_ids if t in graph]
    if not drop:
        return graph
    graph = graph.copy()
    for task_id in drop:
        graph.remove_node(task_id)
    return graph


class _WriterCache:
    """Per-run caches of the writer, kept beside the context rather than in it, so
    they are never pickled into a checkpoint (the graph payload would double the
    ``.pkl``) and a restored context starts without stale "already uploaded" marks."""

    __slots__ = ("dynamic_sent", "graphs_sent", "identity")

    def __init__(self) -> None:
        self.identity: tuple[int, TaskGraph, str, str, bytes] | None = None
        self.graphs_sent: set[str] = set()
        self.dynamic_sent: set[str] = set()


_caches: weakref.WeakKeyDictionary[ExecutionContext, _WriterCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()
_write_lock = threading.Lock()


def writer_cache(ctx: ExecutionContext) -> _WriterCache:
    with _caches_lock:
        cache = _caches.get(ctx)
        if cache is None:
            cache = _caches[ctx] = _WriterCache()
        return cache


def graph_identity(ctx: ExecutionContext) -> tuple[str, str, bytes]:
    """(graph_hash, fingerprint, pickled static graph), cached while the graph is unchanged."""
    from graflow.core.fingerprint import graph_fingerprint
    from graflow.core.graph_store import pickle_graph

    cache = writer_cache(ctx)
    cached = cache.identity
    if cached is not None and cached[0] == ctx.graph.version and cached[1] is ctx.graph:
        return cached[2], cached[3], cached[4]
    graph = static_graph(ctx)
    payload, graph_hash = pickle_graph(graph)
    fingerprint = graph_fingerprint(graph)
    cache.identity = (ctx.graph.version, ctx.graph, graph_hash, fingerprint, payload)
    ctx.graph_hash = graph_hash
    return graph_hash, fingerprint, payload


def _redis_stub(ctx: ExecutionContext, graph_hash: str, fingerprint: str, payload: bytes, secret_key: SecretKey) -> Any:
    from graflow.core.graph_store import GraphStore
    from graflow.core.redis_stub import RedisRunStub, upload_dynamic_tasks
    from graflow.redisconn import ConnectionDescriptor

    channel: Any = ctx.channel
    client = channel.redis_client
    prefix = channel.namespace
    store = GraphStore(client, prefix, secret_key=secret_key)
    cache = writer_cache(ctx)
    if graph_hash not in cache.graphs_sent:
        store.save_pickled(payload, graph_hash)
        cache.graphs_sent.add(graph_hash)
    upload_dynamic_tasks(ctx, client, prefix, secret_key, cache.dynamic_sent)
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
    """Snapshot ``ctx`` under its lock, then store the three artefacts (see docs/checkpoints.md)."""
    from graflow.storage import open_directory, open_location

    if secret_key is None:
        secret_key = ctx.config.get("secret_key")  # the run's key (its config) signs too
    if path:
        store, base = open_location(path)
    else:
        store = open_directory(None)
        base = ""
    with ctx._lock:  # the pickle and state.json must show one consistent moment
        checkpoint_id = new_checkpoint_id(ctx.session_id, ctx.state.steps)
        graph_hash, fingerprint, payload = graph_identity(ctx)
        if ctx.channel_backend == "redis":
            target: Any = _redis_stub(ctx, graph_hash, fingerprint, payload, secret_key)
        else:
            target = ctx
        pkl, signed = dump_pickle(target, secret_key)
        state_doc = build_state_doc(ctx, checkpoint_id, resuming_task_id, store.kind)
    location, meta = _commit(store, base, pkl, signed, state_doc, metadata, graph_hash, fingerprint, secret_key)
    ctx.checkpoint_metadata = meta.to_dict()
    ctx.last_checkpoint_path = location
    return location, meta


def _hash_beside(buffers: list[bytes], size: int) -> Callable[[], str]:
    """sha256 of a payload's buffers, in order: for a large one, on a thread (hashlib
    releases the GIL) while the store writes and syncs it; returns the result's getter."""
    if size < 1 << 20:  # small: not worth a thread
        digest = sha256_hex(*buffers)
        return lambda: digest
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(sha256_hex(*buffers)), daemon=True)
    thread.start()

    def wait() -> str:
        thread.join()
        return result[0]

    return wait


def store_artefacts(
    store: CheckpointStore,
    base: str,
    target: Any,
    state: StateDoc,
    metadata: dict[str, Any] | None,
    graph_hash: str | None,
    fingerprint: str | None,
    secret_key: SecretKey,
    written: list[int] | None = None,
) -> tuple[str, CheckpointMetadata]:
    """Pickle ``target`` (a context or a ``RedisRunStub``) and store it with ``state`` as
    the checkpoint ``base`` of ``store`` (``""``: the automatic name for ``state``);
    ``written`` is told the bytes of the three artefacts (for metrics)."""
    pkl, signed = dump_pickle(target, secret_key)
    return _commit(store, base, pkl, signed, state, metadata, graph_hash, fingerprint, secret_key, written)


def _commit(
    store: CheckpointStore,
    base: str,
    pkl: list[bytes],
    signed: bool,
    state: StateDoc,
    metadata: dict[str, Any] | None,
    graph_hash: str | None,
    fingerprint: str | None,
    secret_key: SecretKey = None,
    written: list[int] | None = None,
) -> tuple[str, CheckpointMetadata]:
    from graflow.version import package_version

    state_bytes = encode(state)
    meta = CheckpointMetadata.create(
        state.checkpoint_id,
        state.session_id,
        state.steps,
        state.start_node,
        {"channel": state.backend.channel, "queue": state.backend.queue, "storage": store.kind},
        user_metadata=metadata,
        graph_hash=graph_hash,
        graph_fingerprint=fingerprint,
    )
    doc = meta.to_dict()
    doc.update(
        schema_version=SCHEMA_VERSION,
        signed=signed,
        graflow_version=package_version(),
        python_version=sys.version.split()[0],
    )
    try:
        encode(doc)  # fail on bad user metadata before anything is written
    except TypeError as exc:
        where = store.display(base, "meta") if base else f"session {state.session_id}"
        raise CheckpointError(
            f"the metadata of checkpoint {where} is not JSON-serialisable: {exc}; "
            "pass only str/int/float/bool/None/list/dict values in metadata=",
            exc,
        ) from exc
    # The .pkl's sha256 is computed on a thread (hashlib releases the GIL) while the
    # store writes and fsyncs it; meta.json, written last, waits for it.
    pkl_size = sum(map(len, pkl))
    pkl_hash = _hash_beside(pkl, pkl_size)

    meta_size = [0]

    def meta_bytes() -> bytes:
        doc["files"] = {
            "pkl": {"bytes": pkl_size, "sha256": pkl_hash()},
            "state": {"bytes": len(state_bytes), "sha256": sha256_hex(state_bytes)},
        }
        if signed:  # the signature covers the hashes, so state.json is signed too
            sign_meta(doc, secret_key)
        data = encode(doc)
        meta_size[0] = len(data)
        return data

    # One write at a time in this process: two branches of a group checkpointing at
    # once must not pick the same automatic name, nor interleave their artefacts.
    with _write_lock:
        if not base:
            base = store.auto_base(state.session_id, state.steps)
        location = store.write(base, {"pkl": pkl, "state": state_bytes, "meta": meta_bytes})
    if written is not None:
        written.append(pkl_size + len(state_bytes) + meta_size[0])
    return location, meta


__all__ = [
    "graph_identity",
    "static_graph",
    "store_artefacts",
    "without_tasks",
    "write_checkpoint",
    "writer_cache",
]
