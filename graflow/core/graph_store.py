"""Content-addressed graphs in Redis: uploaded once per definition, cached by readers.

The address is the sha256 of the graph's cloudpickle bytes; the stored value is that
pickle in a zlib-compressed (and, with a key, signed) envelope. ``SET NX`` makes the
upload idempotent and every load slides the TTL up; the graph of a live pooled run has
no TTL at all until the run ends (``graflow.distributed.liveness``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from graflow import keys, settings
from graflow.codec import Purpose, SecretKey, loads, pickle_payload, seal
from graflow.defaults import DEFAULT_GRAPH_TTL
from graflow.exceptions import GraflowRuntimeError, SerializationError
from graflow.limits import check_value_size

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph


def graph_ttl() -> int:
    return settings.current().graph_ttl


#: graph hash -> whether its pickle holds code by value (recent graphs only). The flag is
#: a function of the bytes, which the hash names, so it goes into the envelope's origin
#: record when the bytes are sealed later (``save_pickled``) without pickling again.
_by_value: OrderedDict[str, bool] = OrderedDict()
_by_value_lock = threading.Lock()
_BY_VALUE_KEEP = 256


def pickle_graph(graph: TaskGraph) -> tuple[bytes, str]:
    """cloudpickle bytes of ``graph`` and their sha256; names the task that cannot be pickled."""
    try:
        payload, by_value = pickle_payload(graph)
    except Exception as exc:
        culprit = _unpicklable_task(graph)
        what = f"task {culprit!r}" if culprit else "the graph"
        raise SerializationError(
            f"cannot pickle {what}: {exc}; tasks sent to workers or checkpoints must be "
            "picklable (no open files, locks, sockets or clients in closures or bound parameters)",
            exc,
        ) from exc
    graph_hash = hashlib.sha256(payload).hexdigest()
    with _by_value_lock:
        _by_value[graph_hash] = by_value
        _by_value.move_to_end(graph_hash)
        while len(_by_value) > _BY_VALUE_KEEP:
            _by_value.popitem(last=False)
    return payload, graph_hash


def code_by_value(graph_hash: str) -> bool | None:
    """Whether the graph pickled here as ``graph_hash`` holds code by value (None: unknown)."""
    with _by_value_lock:
        return _by_value.get(graph_hash)


def _unpicklable_task(graph: TaskGraph) -> str | None:
    import cloudpickle

    for node_id in graph.nodes:
        try:
            cloudpickle.dumps(graph.get_node(node_id))
        except Exception:
            return node_id
    return None


class GraphStore:
    """Save and load graphs by content hash, with a per-process LRU cache."""

    #: Upstream's names. The TTL here is a week (upstream: a day), and ``ttl=None`` reads
    #: ``GRAFLOW_GRAPH_TTL``, whose default this is; a live run's graph has none at all.
    DEFAULT_TTL: int = DEFAULT_GRAPH_TTL
    DEFAULT_CACHE_SIZE: int = 100

    def __init__(
        self,
        redis_client: Any,
        key_prefix: str = keys.DEFAULT_PREFIX,
        ttl: int | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        secret_key: SecretKey = None,
    ) -> None:
        self.redis = redis_client
        self.key_prefix = key_prefix
        self.ttl = graph_ttl() if ttl is None else ttl
        self.cache_size = cache_size
        self.secret_key = secret_key
        self._cache: OrderedDict[str, TaskGraph] = OrderedDict()
        self._lock = threading.Lock()

    def save(self, graph: TaskGraph) -> str:
        """Upload ``graph`` if absent (refreshing its TTL) and return its hash."""
        payload, graph_hash = pickle_graph(graph)
        self.save_pickled(payload, graph_hash)
        self._remember(graph_hash, graph)
        return graph_hash

    def save_pickled(self, payload: bytes, graph_hash: str, *, pipeline: Any = None, pin: bool = False) -> None:
        """Upload if absent. ``pin``: without TTL, for a live run (``graflow.distributed.liveness``);
        else the TTL slides up, and a graph a live run pinned stays pinned. With ``pipeline``
        the commands are queued there (the caller executes it)."""
        key = keys.graph(self.key_prefix, graph_hash)
        blob = seal(payload, Purpose.GRAPH, secret_key=self.secret_key, compress=True,
                    by_value=code_by_value(graph_hash))  # fmt: skip
        check_value_size(key, len(blob))  # e.g. a task bound to a huge argument: say so, do not send it
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=False)
        if pin:
            pipe.set(key, blob, nx=True)
            pipe.persist(key)
        else:
            pipe.set(key, blob, nx=True, ex=self.ttl)
            pipe.expire(key, self.ttl, gt=True)
        if pipeline is None:
            pipe.execute()

    def get(self, graph_hash: str) -> TaskGraph | None:
        """The graph for ``graph_hash``, or None when Redis no longer has it."""
        with self._lock:
            cached = self._cache.get(graph_hash)
            if cached is not None:
                self._cache.move_to_end(graph_hash)
                return cached
        key = keys.graph(self.key_prefix, graph_hash)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.expire(key, self.ttl, gt=True)  # never puts a TTL on a live run's graph
        blob, _ = pipe.execute()
        if blob is None:
            return None
        graph: TaskGraph = loads(
            blob, Purpose.GRAPH, secret_key=self.secret_key, source=f"Redis key {key}", from_redis=True
        )
        self._remember(graph_hash, graph)
        return graph

    def load(self, graph_hash: str) -> TaskGraph:
        graph = self.get(graph_hash)
        if graph is None:
            raise GraflowRuntimeError(
                f"graph {graph_hash} expired or evicted from Redis "
                f"({keys.graph(self.key_prefix, graph_hash)}); submit the workflow again or "
                "resume with graph=... / --workflow"
            )
        return graph

    def _remember(self, graph_hash: str, graph: TaskGraph) -> None:
        with self._lock:
            self._cache[graph_hash] = graph
            self._cache.move_to_end(graph_hash)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


__all__ = ["DEFAULT_GRAPH_TTL", "GraphStore", "code_by_value", "graph_ttl", "pickle_graph"]
