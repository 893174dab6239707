"""Per-process handles on a run's Redis state: cached graph stores and session channels."""

from __future__ import annotations

import threading
from typing import Any

from graflow.codec import SecretKey
from graflow.core.graph_store import GraphStore
from graflow.distributed.spec import TaskSpec as Wire
from graflow.redisconn import client_cache

_stores_lock = threading.Lock()


def graph_store(client: Any, prefix: str, secret_key: SecretKey) -> GraphStore:
    """One cached graph store per client and prefix: workers load each graph once."""
    stores = client_cache(client, "graph_stores")
    key = (prefix, repr(secret_key))
    store: GraphStore | None = stores.get(key)
    if store is None:
        with _stores_lock:
            store = stores.setdefault(key, GraphStore(client, prefix, secret_key=secret_key))
    return store


def session_channel(client: Any, wire: Wire, secret_key: SecretKey) -> Any:
    """The run's channel, unfenced (the writer of checkpoints and the coordinator read it)."""
    from graflow.channels.redis_channel import RedisChannel

    return RedisChannel(wire.session_id, redis_client=client, key_prefix=wire.key_prefix, secret_key=secret_key)


__all__ = ["graph_store", "session_channel"]
