"""rq job functions for the worker tests; worker subprocesses import them via PYTHONPATH.

Every function records what happened in Redis (the job's own connection), so a test
can observe a job run in another process. Arguments are JSON (rq's JSONSerializer,
as graflow's jobs use).
"""

from __future__ import annotations

import json
import os
import threading
import time

from rq import get_current_job


def _conn():
    job = get_current_job()
    assert job is not None
    return job.connection


def record(key: str, value: str = "ran") -> str:
    """Append ``{"value", "pid", "ppid", "thread", "job_id"}`` to list ``key``."""
    job = get_current_job()
    entry = {
        "value": value,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "thread": threading.current_thread().name,
        "job_id": job.id if job else None,
    }
    _conn().rpush(key, json.dumps(entry))
    return value


def hold(key: str, release_key: str, limit: float = 30.0) -> str:
    """Record the start in ``key``, run until ``release_key`` exists, record the end."""
    conn = _conn()
    job = get_current_job()
    started = {"event": "started", "pid": os.getpid(), "job_id": job.id, "worker": job.worker_name}
    conn.rpush(key, json.dumps(started))
    deadline = time.monotonic() + limit
    while not conn.exists(release_key) and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.rpush(key, json.dumps({"event": "finished", "pid": os.getpid(), "job_id": job.id}))
    return "held"


def boom(key: str) -> None:
    """Record, then fail."""
    record(key, "boom")
    raise RuntimeError("boom from jobfuncs")
