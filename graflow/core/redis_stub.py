"""What a Redis-backed checkpoint pickles: ids, settings and where the session lives.

The channel data stays in Redis and the graph is stored once under its hash, so
the ``.pkl`` stays small (well under 4 KiB) whatever the run holds, and any process
that can reach the Redis can resume it. No password is ever pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graflow import keys
from graflow.codec import Purpose, SecretKey, dumps, loads
from graflow.defaults import DEFAULT_SESSION_TTL
from graflow.exceptions import CheckpointError
from graflow.limits import check_value_size

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.graph import TaskGraph
    from graflow.redisconn import ConnectionDescriptor


@dataclass
class RedisRunStub:
    session_id: str
    trace_id: str
    start_node: str | None
    max_steps: int
    default_max_cycles: int
    default_max_retries: int
    graph_hash: str
    graph_fingerprint: str
    descriptor: ConnectionDescriptor
    key_prefix: str
    workflow_name: str = "workflow"
    config: dict[str, Any] = field(default_factory=dict)

    def connect(self, redis_url: str | None) -> tuple[Any, str]:
        """A binary client to the session's Redis and its URL (password: ``password_for``)."""
        from graflow.redisconn import client_from, password_for

        url = self.descriptor.to_url(password_for(self.descriptor, redis_url))
        return client_from(url=url), url

    def graph_for(
        self, client: Any, graph: TaskGraph | None, secret_key: SecretKey, location: str, url: str
    ) -> tuple[TaskGraph, str]:
        """The graph to resume with and its hash: the stored one, or ``graph`` (uploaded,
        so that the next resumer finds it too)."""
        from graflow.core.graph_store import GraphStore
        from graflow.redisconn import mask_url

        store = GraphStore(client, self.key_prefix, secret_key=secret_key)
        if graph is not None:
            return graph, store.save(graph)
        stored = store.get(self.graph_hash)
        if stored is None:
            raise CheckpointError(
                f"graph {self.graph_hash} is no longer in Redis at {mask_url(url)} "
                f"(checkpoint {location}); pass graph=… / --workflow"
            )
        return stored, self.graph_hash

def upload_dynamic_tasks(
    ctx: ExecutionContext, client: Any, prefix: str, secret_key: SecretKey, sent: set[str]
) -> None:
    """Store tasks added during the run under the session, so any process can run them;
    ``sent`` holds the ids already stored by this process (updated)."""
    todo = [t for t in ctx.known_dynamic if t not in sent]
    if not todo:
        return
    session = keys.SessionKeys(prefix, ctx.session_id)
    pipe = client.pipeline(transaction=False)
    for task_id in todo:
        task = ctx.graph.task(task_id)
        if task is not None:
            blob = dumps(task, Purpose.TASK, secret_key=secret_key)
            check_value_size(session.dynamic_task(task_id), len(blob))
            pipe.set(session.dynamic_task(task_id), blob, ex=DEFAULT_SESSION_TTL)
    pipe.execute()
    sent.update(todo)


def load_dynamic_tasks(
    ctx: ExecutionContext, client: Any, prefix: str, task_ids: list[str], secret_key: SecretKey
) -> None:
    if not task_ids:
        return
    session = keys.SessionKeys(prefix, ctx.session_id)
    names = [session.dynamic_task(t) for t in task_ids]
    for task_id, key, blob in zip(task_ids, names, client.mget(names), strict=True):
        if blob is None:
            continue  # reported as an unknown id if it is still needed
        task = loads(blob, Purpose.TASK, secret_key=secret_key, source=f"Redis key {key}", from_redis=True)
        ctx.graph.set_node(task_id, task)
        ctx._dynamic.setdefault(task_id, None)


__all__ = ["RedisRunStub", "load_dynamic_tasks", "upload_dynamic_tasks"]
