"""Upstream's Redis-backed task queue, on rq (an upstream path, see docs/architecture.md)."""

from __future__ import annotations

import time
from typing import Any

from graflow import keys
from graflow.core.queue import TaskQueue, TaskSpec


class DistributedTaskQueue(TaskQueue):
    """Activations as rq jobs on queue ``key_prefix``; graphs uploaded on first use."""

    def __init__(
        self,
        redis_client: Any = None,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        key_prefix: str = keys.DEFAULT_PREFIX,
        graph_store: Any = None,
    ) -> None:
        from graflow.core.graph_store import GraphStore
        from graflow.identifiers import check_key_prefix
        from graflow.redisconn import client_from

        check_key_prefix(key_prefix)  # also the rq queue's name
        self.redis_client = client_from(redis_client=redis_client, host=host, port=port, db=db)
        self.key_prefix = key_prefix
        self.graph_store = graph_store or GraphStore(self.redis_client, key_prefix)

    @property
    def rq_queue(self) -> Any:
        from graflow.distributed.dispatch import rq_queue

        return rq_queue(self.redis_client, self.key_prefix)

    def enqueue(self, task_spec: TaskSpec) -> bool:
        """Upload the spec's graph if needed and add one rq job for it."""
        from graflow.distributed import dispatch

        ctx = task_spec.execution_context
        if ctx is not None:
            from graflow.identifiers import check_session_id

            check_session_id(ctx.session_id)  # part of the rq job id: refused before any write
        if ctx is not None and not ctx.graph_hash:
            ctx.graph_hash = self.graph_store.save(ctx.graph)
        wire = task_spec.to_wire(queue=self.key_prefix, key_prefix=self.key_prefix, enqueued_at=time.time())
        dispatch.enqueue(self.redis_client, [wire])
        return True

    def dequeue(self) -> TaskSpec | None:
        """Take the next job off the queue as an in-process ``TaskSpec`` (the caller now owns it).

        The rq job is consumed: its hash is deleted (a queued job's hash has no TTL).
        Returns None when the queue is empty.
        """
        from graflow.distributed.rqapi import Job, JSONSerializer, NoSuchJobError
        from graflow.distributed.spec import decode

        while True:
            # rq's Queue.pop_job_id fails on an empty queue (as_text(None)); LPOP directly.
            raw = self.redis_client.lpop(self.rq_queue.key)
            if raw is None:
                return None
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                job = Job.fetch(job_id, connection=self.redis_client, serializer=JSONSerializer)
            except NoSuchJobError:
                continue  # an id left behind by a deleted job
            self.redis_client.delete(Job.key_for(job_id), Job.dependents_key_for(job_id))
            break
        wire = decode(job.args[0])
        graph = self.graph_store.load(wire.graph_hash)
        task = graph.task(wire.task_id) or graph.find(wire.task_id)
        if task is None:
            return None
        return TaskSpec(
            task, None, retry_count=wire.retry_count, group_id=wire.group_id, trace_id=wire.trace_id,
            parent_task_id=wire.parent_task_id, dynamic=wire.dynamic, attempt=wire.attempt,
            redeliveries=wire.redeliveries, _spec_id=wire.spec_id,
        )  # fmt: skip

    def is_empty(self) -> bool:
        return self.size() == 0

    def size(self) -> int:
        return int(self.rq_queue.count)

    def to_list(self) -> list[str]:
        return list(self.rq_queue.job_ids)

    def cleanup(self) -> None:
        """Remove every job waiting on this queue."""
        self.rq_queue.empty()


RedisTaskQueue = DistributedTaskQueue

__all__ = ["DistributedTaskQueue", "RedisTaskQueue"]
