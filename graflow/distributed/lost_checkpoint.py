"""The deferred checkpoint of a lost attempt: written by whoever redelivers its activation."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from graflow.core.task_context import CheckpointRequest
from graflow.distributed.pool_checkpoint import DEFERRED_FIELDS, write_from_snapshot
from graflow.distributed.pool_context import PoolContext
from graflow.distributed.session import SessionStore
from graflow.distributed.spec import TaskSpec as Wire
from graflow.distributed.stores import graph_store, session_channel

logger = logging.getLogger("graflow.worker")


def write_lost_checkpoint(client: Any, wire: Wire, request_doc: str | None, finished: bool) -> bool:
    """Write the deferred checkpoint a lost attempt committed but never wrote.

    ``request_doc`` is the session's ``checkpoint_request`` (see ``COMMIT``); it is
    written only if it belongs to ``wire``'s activation. The snapshot is taken now: a
    state at least as far as the commit's, and the redelivery writes it before handing
    the successors to rq, so they are still listed as pending. Returns whether it wrote
    (or tried to: a failed write fails the run, as for the original writer).
    """
    if not request_doc:
        return False
    doc = msgspec.json.decode(request_doc)
    if doc.get("spec_id") != wire.spec_id:
        return False
    store = SessionStore(client, wire.key_prefix, wire.session_id)
    graph = graph_store(client, wire.key_prefix, None).get(wire.graph_hash)
    if graph is None:
        client.hdel(store.keys.meta, *DEFERRED_FIELDS)
        logger.error("session %s: graph %s is gone; the checkpoint requested by %s is lost",
                     wire.session_id, wire.graph_hash[:12], doc.get("task_id"))  # fmt: skip
        return False
    pctx = PoolContext(graph, store.meta(), store, session_channel(client, wire, None), None)
    request = CheckpointRequest(doc.get("metadata") or {}, doc.get("path"), list(doc.get("requested_by") or []))
    logger.warning("session %s: writing the checkpoint requested by %s, whose writer was lost",
                   wire.session_id, doc.get("task_id"))  # fmt: skip
    write_from_snapshot(pctx, request, store.snapshot(), str(doc.get("task_id")), finished)
    return True


__all__ = ["write_lost_checkpoint"]
