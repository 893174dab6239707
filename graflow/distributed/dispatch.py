"""Hand activations to rq: one job per activation, batched in pipelines (``FLUSH_EVERY``).

Each job calls ``graflow.worker.jobs.execute_task_spec(spec_json, hmac_hex)`` with
rq's JSON serializer, so ``rq info`` and rq-dashboard list the tasks and a plain
``rq worker`` can run them. Jobs keep no result in rq (graflow stores results in the
channel; a graflow worker keeps a completed job ``GRAFLOW_FINISHED_JOB_TTL`` seconds,
``graflow.worker.bookkeeping``) and failed jobs expire with the session (``GRAFLOW_SESSION_TTL``, like every
other key of a finished run) instead of rq's one-year default.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from graflow.codec import SecretKey, sign
from graflow.distributed.spec import TaskSpec, decode, encode
from graflow.redisconn import client_cache

JOB_FUNCTION = "graflow.worker.jobs.execute_task_spec"
#: rq calls it when its own cleanup abandons a job (``rq info``, a dashboard, a plain
#: rq worker) before graflow's reaper got to it: the task is redelivered anyway.
ABANDONED_CALLBACK = "graflow.worker.failover.on_failure_callback"

_queues_lock = threading.Lock()


def _callback() -> Any:
    from graflow.distributed.rqapi import Callback

    return Callback(ABANDONED_CALLBACK)


def job_id(spec: TaskSpec) -> str:
    return f"gf-{spec.session_id}-{spec.spec_id}-a{spec.attempt}"


#: ``job_id``'s form. A session id may hold ``-`` (``graflow.identifiers``); a spec id is a
#: uuid4 hex, so the session is everything up to the last two dashes.
_JOB_ID = re.compile(r"gf-([A-Za-z0-9_-]{1,64})-([A-Za-z0-9_]+)-a([0-9]+)")


def parse_job_id(rq_job_id: str) -> tuple[str, str, int] | None:
    """``(session_id, spec_id, attempt)`` of a graflow job's id; None for any other job."""
    m = _JOB_ID.fullmatch(rq_job_id)
    return None if m is None else (m.group(1), m.group(2), int(m.group(3)))


#: Jobs per round trip when ``enqueue`` owns the pipeline. A group's members are handed
#: over in slices so the first ones run while the producer still builds the rest.
FLUSH_EVERY = 16


def description(spec: TaskSpec) -> str:
    return f"graflow {spec.task_id} (session {spec.session_id[:8]}, attempt {spec.attempt})"


def rq_queue(connection: Any, name: str) -> Any:
    """A cached rq ``Queue`` (it caches the server version; creating one costs a round trip)."""
    cache = client_cache(connection, "rq_queues")
    queue = cache.get(name)
    if queue is None:
        from graflow.distributed.rqapi import JSONSerializer, Queue

        with _queues_lock:
            queue = cache.get(name)
            if queue is None:
                queue = cache[name] = Queue(name, connection=connection, serializer=JSONSerializer)
    return queue


def enqueue(
    connection: Any,
    specs: Iterable[TaskSpec | str | bytes],
    *,
    secret_key: SecretKey = None,
    pipeline: Any = None,
    skip_existing: bool = False,
    replace: Iterable[str] = (),
) -> list[str]:
    """Create one rq job per spec (delayed ones via rq's scheduler); returns the job ids.

    ``replace``: the queues a job of the same id may have run on and be kept by as
    finished (a resume re-enqueues its checkpoint's pending activations under their own
    ids). The id leaves those queues' finished registries, and the hash loses the TTL it
    was kept with, or the queued job would expire.
    """
    from graflow.distributed.rqapi import Job
    from graflow.distributed.rqapi.layout import finished_key
    from graflow.distributed.session import session_ttl

    items = [s if isinstance(s, TaskSpec) else decode(s) for s in specs]
    if skip_existing:
        items = [s for s in items if not Job.exists(job_id(s), connection=connection)]
    if not items:
        return []
    pipe = pipeline if pipeline is not None else connection.pipeline(transaction=False)
    now = time.time()
    failure_ttl = session_ttl()
    finished = [finished_key(name) for name in dict.fromkeys(replace)]
    ids = []
    for spec in items:
        payload = encode(spec).decode()
        queue = rq_queue(connection, spec.queue)
        job = queue.create_job(
            JOB_FUNCTION,
            args=[payload, sign(payload.encode(), secret_key)],
            timeout=-1,
            result_ttl=0,
            failure_ttl=failure_ttl,
            description=description(spec),
            job_id=job_id(spec),
            on_failure=_callback(),
        )
        for registry in finished:
            pipe.zrem(registry, job.id)
        if spec.not_before > now:
            when = _dt.datetime.fromtimestamp(spec.not_before, tz=_dt.timezone.utc)
            queue.schedule_job(job, when, pipeline=pipe)
        else:
            # rq's public enqueue_job costs one more round trip per job (it runs its own
            # transaction even with no dependencies); a private use (rqapi/private.py).
            queue._enqueue_job(job, pipeline=pipe)
        if finished:
            pipe.persist(job.key)
        ids.append(job.id)
        if pipeline is None and len(ids) % FLUSH_EVERY == 0:
            pipe.execute()  # workers start on the first jobs while the rest are built
    if pipeline is None and len(ids) % FLUSH_EVERY:
        pipe.execute()
    return ids


def drop(connection: Any, specs: Iterable[TaskSpec | str | bytes]) -> list[str]:
    """Take waiting jobs of these activations off their queues; returns the ids dropped.

    A job still in its queue (or, for a delayed retry, in the scheduled registry) is
    removed and its hash deleted: nobody else holds it, and a queued job's hash has no
    TTL, so rq would keep it forever. A job a worker already took is left alone; it
    runs, its ``START`` step finds the run over, and it skips.
    """
    from graflow.distributed.rqapi import Job

    dropped = []
    for item in specs:
        spec = item if isinstance(item, TaskSpec) else decode(item)
        queue = rq_queue(connection, spec.queue)
        jid = job_id(spec)
        pipe = connection.pipeline(transaction=True)
        queue.remove(jid, pipeline=pipe)
        queue.scheduled_job_registry.remove(jid, pipeline=pipe)
        if any(pipe.execute()):
            connection.delete(Job.key_for(jid), Job.dependents_key_for(jid))
            dropped.append(jid)
    return dropped


__all__ = ["JOB_FUNCTION", "description", "drop", "enqueue", "job_id", "parse_job_id", "rq_queue"]
