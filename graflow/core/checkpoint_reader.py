"""Reading checkpoints: validate every artefact before anything is unpickled.

The step numbers in the comments are those of the resume algorithm in docs/checkpoints.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graflow import settings
from graflow.codec import SecretKey
from graflow.core.checkpoint_meta import CheckpointMetadata, load_pickle, read_part, sha256_hex
from graflow.core.checkpoint_schema import SCHEMA_MAJOR, MetaDoc, StateDoc
from graflow.core.checkpoint_signature import verify_meta
from graflow.core.redis_stub import RedisRunStub, load_dynamic_tasks
from graflow.exceptions import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointVersionError,
    GraflowWarning,
    GraphChangedError,
    GraphChangedWarning,
    warn,
)

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph
    from graflow.storage import CheckpointStore

logger = logging.getLogger("graflow.checkpoint")


def _json(data: bytes, source: str) -> dict[str, Any]:
    import msgspec

    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise CheckpointCorruptError(
            f"{source} is not valid JSON ({exc}); the checkpoint is corrupt — use another one",
            exc,
        ) from exc
    if not isinstance(doc, dict):
        raise CheckpointCorruptError(f"{source} does not hold a JSON object; the checkpoint is corrupt")
    return doc


def _check_version(version: Any, source: str) -> None:
    if version is None:
        raise CheckpointVersionError(
            f"{source} has no schema_version: it was written by upstream Graflow or another "
            f"tool, not by graflow {SCHEMA_MAJOR}.x; re-run the workflow to write a new checkpoint"
        )
    text = str(version)
    try:
        major = int(text.split(".")[0])
    except ValueError:
        major = -1
    if major == SCHEMA_MAJOR:
        return
    if text.startswith("1."):
        raise CheckpointVersionError(
            f"{source} has schema_version {text!r}: it was written by upstream Graflow, whose "
            f"checkpoints this release cannot resume (it reads {SCHEMA_MAJOR}.x); re-run the workflow"
        )
    if major > SCHEMA_MAJOR:
        raise CheckpointVersionError(
            f"{source} has schema_version {text!r}, newer than this graflow reads "
            f"({SCHEMA_MAJOR}.x); upgrade graflow to resume it"
        )
    raise CheckpointVersionError(f"{source} has an unknown schema_version {text!r}")


def _convert(doc: dict[str, Any], kind: type[Any], source: str) -> Any:
    import msgspec

    try:
        return msgspec.convert(doc, kind)
    except msgspec.ValidationError as exc:
        raise CheckpointCorruptError(
            f"{source} is not a valid graflow checkpoint file ({exc}); use another checkpoint", exc
        ) from exc


def read_meta(store: CheckpointStore, base: str) -> MetaDoc:
    return _read_meta(store, base)[0]


def _read_meta(store: CheckpointStore, base: str) -> tuple[MetaDoc, dict[str, Any]]:
    """meta.json as a checked ``MetaDoc`` and as the raw document its signature covers."""
    source = store.display(base, "meta")
    doc = _json(read_part(store, base, "meta"), source)
    version = doc.get("schema_version")
    if version is None and store.exists(base, "state"):
        state_source = store.display(base, "state")
        try:
            state = _json(read_part(store, base, "state"), state_source)
            version = state.get("schema_version") or state.get("version")
        except CheckpointCorruptError:
            version = None
        if version is not None and not str(version).startswith(f"{SCHEMA_MAJOR}."):
            _check_version(version, state_source)
    _check_version(doc.get("schema_version"), source)
    meta: MetaDoc = _convert(doc, MetaDoc, source)
    return meta, doc


def _verify(store: CheckpointStore, base: str, meta: MetaDoc, part: str, data: bytes) -> None:
    info = meta.files.get(part)
    source = store.display(base, part)
    if info is None:
        raise CheckpointCorruptError(f"{store.display(base, 'meta')} lists no hash for {source}")
    if len(data) != info.bytes or sha256_hex(data) != info.sha256:
        raise CheckpointCorruptError(
            f"{source} does not match its meta.json ({len(data)} bytes, expected {info.bytes}; "
            "sha256 differs): it is truncated, modified, or from another checkpoint — "
            "use another checkpoint"
        )


@dataclass
class LoadedCheckpoint:
    """A checkpoint that passed resume steps 1–4: its documents and its unpickled ``.pkl``."""

    store: CheckpointStore
    base: str
    source: str  # the displayed location of the .pkl
    meta: MetaDoc
    state: StateDoc
    payload: Any  # an ExecutionContext (memory channel) or a RedisRunStub


def read_checkpoint(location: str, secret_key: SecretKey = None) -> LoadedCheckpoint:
    """Resolve, parse and verify a checkpoint, then unpickle its ``.pkl`` (resume steps 1–4)."""
    from graflow.storage import open_location

    store, base = open_location(location)
    # Step 2: parse meta.json, then state.json, then check the hashes. With a key, meta.json's
    # signature is checked first: the hashes it records are trusted only once it holds.
    meta, meta_doc = _read_meta(store, base)
    verify_meta(meta_doc, secret_key, store.display(base, "pkl"), store.display(base, "meta"))
    state_source = store.display(base, "state")
    state_bytes = read_part(store, base, "state")
    pkl = read_part(store, base, "pkl")
    state_doc = _json(state_bytes, state_source)
    other = state_doc.get("checkpoint_id")
    if other is not None and other != meta.checkpoint_id:
        raise CheckpointCorruptError(
            f"{state_source} belongs to checkpoint {other!r} but "
            f"{store.display(base, 'meta')} to {meta.checkpoint_id!r}: files of two checkpoints "
            "are mixed — copy the three artefacts of one checkpoint together"
        )
    _verify(store, base, meta, "state", state_bytes)
    _verify(store, base, meta, "pkl", pkl)
    _check_version(state_doc.get("schema_version"), state_source)  # step 3
    state: StateDoc = _convert(state_doc, StateDoc, state_source)
    source = store.display(base, "pkl")
    payload = load_pickle(pkl, source, secret_key, from_redis=store.kind == "redis")  # step 4
    return LoadedCheckpoint(store, base, source, meta, state, payload)


def rebuild_redis_run(
    stub: RedisRunStub,
    redis_url: str | None,
    graph: TaskGraph | None,
    secret_key: SecretKey,
    known_dynamic: list[str],
    location: str,
) -> ExecutionContext:
    """A fresh context on the stub's Redis session (the session itself holds the state)."""
    from graflow.core.context import ExecutionContext
    from graflow.redisconn import wrap_connection_errors

    client, url = stub.connect(redis_url)
    with wrap_connection_errors(url):
        graph, graph_hash = stub.graph_for(client, graph, secret_key, location, url)
        ctx = ExecutionContext(
            graph.copy(),
            stub.start_node,
            max_steps=stub.max_steps,
            default_max_cycles=stub.default_max_cycles,
            default_max_retries=stub.default_max_retries,
            channel_backend="redis",
            config={**stub.config, "url": url, "key_prefix": stub.key_prefix},
            session_id=stub.session_id,
            trace_id=stub.trace_id,
        )
        ctx.workflow_name = stub.workflow_name
        ctx.graph_hash = graph_hash
        load_dynamic_tasks(ctx, client, stub.key_prefix, known_dynamic, secret_key)
    return ctx


def resume(
    location: str,
    redis_url: str | None,
    graph: TaskGraph | None,
    secret_key: SecretKey,
    strict_graph: bool,
) -> tuple[ExecutionContext, CheckpointMetadata]:
    from graflow.core.checkpoint_state import restore_state
    from graflow.core.context import ExecutionContext

    loaded = read_checkpoint(location, secret_key)
    obj, source, meta = loaded.payload, loaded.source, loaded.meta
    if isinstance(obj, ExecutionContext):  # step 5
        ctx = obj
        if graph is not None:
            _swap_graph(ctx, graph)
    elif isinstance(obj, RedisRunStub):
        ctx = rebuild_redis_run(obj, redis_url, graph, secret_key, loaded.state.known_dynamic, source)
    else:
        raise CheckpointCorruptError(
            f"{source} holds a {type(obj).__name__}, not a graflow run; use another checkpoint"
        )
    compare_fingerprints(ctx.graph, ctx.known_dynamic, meta.graph_fingerprint, source, strict_graph)
    restore_state(ctx, loaded.state, loaded.store.display(loaded.base, "state"))  # steps 6–7
    metadata = CheckpointMetadata.from_dict(
        {k: getattr(meta, k) for k in CheckpointMetadata.__dataclass_fields__}, source
    )
    ctx.clear_checkpoint_request()  # step 8
    ctx.checkpoint_metadata = metadata.to_dict()
    ctx.last_checkpoint_path = source
    return ctx, metadata


def _swap_graph(ctx: ExecutionContext, graph: TaskGraph) -> None:
    """Run the given definition; carry over the tasks the run added dynamically."""
    new = graph.copy()
    for task_id in ctx._dynamic:
        task = ctx.graph.task(task_id)
        if task is not None and task_id not in new:
            new.set_node(task_id, task)
    ctx.graph = new


def compare_fingerprints(
    graph: TaskGraph,
    dynamic: Iterable[str],
    recorded: str | None,
    source: str,
    strict: bool,
) -> None:
    """Resume step 6: compare the fingerprint of ``graph`` without the ``dynamic`` tasks
    to the ``recorded`` one: ``GraphChangedWarning``, or ``GraphChangedError`` if strict."""
    from graflow.core.checkpoint_writer import without_tasks
    from graflow.core.fingerprint import graph_fingerprint

    if not recorded:
        return
    now = graph_fingerprint(without_tasks(graph, dynamic))
    if now == recorded:
        return
    message = (
        f"the workflow graph differs from the one that wrote {source} (fingerprint "
        f"{recorded[:12]}… → {now[:12]}…); tasks, edges or code changed since"
    )
    if strict:
        raise GraphChangedError(message + " — resume with the original workflow or drop strict_graph")
    warn(GraphChangedWarning, message + "; resuming anyway", logger)


def list_checkpoints(location: str | None) -> list[tuple[str, CheckpointMetadata]]:
    from graflow.storage import open_directory

    store = open_directory(location)
    if store.kind == "file":
        root = location or settings.current().checkpoint_dir
        root = root[len("file://") :] if root.startswith("file://") else root
        if not os.path.isdir(root):
            raise CheckpointNotFoundError(
                f"checkpoint directory {root} does not exist; pass the directory the checkpoints "
                "were written to (or set GRAFLOW_CHECKPOINT_DIR)"
            )
    found: list[tuple[str, CheckpointMetadata]] = []
    for base in store.list_torn():
        warn_skip(store.display(base, "meta"), store.read_error(base, "meta"))
    for base in store.list_bases():
        try:
            meta = read_meta(store, base)
        except CheckpointError as exc:
            warn_skip(store.display(base, "meta"), exc)
            continue
        missing = [p for p in ("pkl", "state") if not store.exists(base, p)]
        if missing:
            warn_skip(store.display(base, "meta"), store.read_error(base, missing[0]))
            continue
        md = CheckpointMetadata.from_dict({k: getattr(meta, k) for k in CheckpointMetadata.__dataclass_fields__})
        found.append((store.display(base, "pkl"), md))
    found.sort(key=lambda item: item[1].created_at)
    return found


def warn_skip(source: str, exc: Exception) -> None:
    warn(GraflowWarning, f"skipping incomplete or unreadable checkpoint {source}: {exc}", logger, stacklevel=5)


__all__ = [
    "LoadedCheckpoint",
    "compare_fingerprints",
    "list_checkpoints",
    "read_checkpoint",
    "read_meta",
    "resume",
]
