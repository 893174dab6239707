"""graflow's lean bookkeeping against rq's own job path, on the same no-op jobs.

Why graflow keeps re-doing rq's start and success writes in Lua (a listed private use,
``graflow.distributed.rqapi.private``): this measures what it saves. Three workers run
the same ``jobs`` no-op jobs (``result_ttl=0``, ``timeout=-1``, JSON serializer: what
graflow enqueues) in this process, in burst mode, against the same Redis:

* ``rq_simple_worker``: rq's own ``SimpleWorker``;
* ``graflow_rq_path``: ``GraflowWorker`` with its lean steps off (rq's dequeue, start and
  success; graflow's other overrides, e.g. fewer heartbeats, stay);
* ``graflow_lean``: ``GraflowWorker`` as it runs in a pool (take + success scripts).

Round trips are the commands the worker's thread sends between two consecutive job
starts (as ``tests/worker/test_worker_bookkeeping.py::test_round_trips_per_job`` counts
them); times are the median interval between job starts after a 10 % warm-up.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

VARIANTS = ("rq_simple_worker", "graflow_rq_path", "graflow_lean")


def noop() -> None:
    return None


@contextlib.contextmanager
def _counting() -> Iterator[tuple[list[int], list[tuple[int, float]]]]:
    """Count the main thread's Redis commands; mark each job start (trips, time)."""
    from redis.connection import AbstractConnection

    from graflow.distributed.rqapi import Job

    main = threading.main_thread()
    trips = [0]
    starts: list[tuple[int, float]] = []
    send, execute = AbstractConnection.send_packed_command, Job._execute

    def counting_send(self: Any, command: Any, check_health: bool = True) -> Any:
        if threading.current_thread() is main:
            trips[0] += 1
        return send(self, command, check_health)

    def marking_execute(self: Any) -> Any:
        starts.append((trips[0], time.perf_counter()))
        return execute(self)

    AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]
    Job._execute = marking_execute  # type: ignore[method-assign]
    try:
        yield trips, starts
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        Job._execute = execute  # type: ignore[method-assign]


def _rq_path_worker_class() -> Any:
    from graflow.distributed.rqapi import Worker
    from graflow.worker.rq_worker import GraflowWorker

    class RqPathWorker(GraflowWorker):
        """GraflowWorker with rq's own dequeue, start and success (``lean_success`` is
        switched off by the caller)."""

        def _take_waiting(self) -> Any:
            return None

        def prepare_execution(self, job: Any) -> Any:
            execution = Worker.prepare_execution(self, job)
            self.current_job = job
            return execution

    return RqPathWorker


def _worker(variant: str, queue: str, client: Any) -> Any:
    from graflow.distributed.rqapi import JSONSerializer, SimpleWorker
    from graflow.worker.rq_worker import GraflowWorker

    name = f"{queue}-w"
    if variant == "rq_simple_worker":
        return SimpleWorker([queue], name=name, connection=client, serializer=JSONSerializer)
    cls = _rq_path_worker_class() if variant == "graflow_rq_path" else GraflowWorker
    return cls([queue], name=name, connection=client, heartbeat=10.0)


def run_once(url: str, variant: str, queue: str, jobs: int) -> dict[str, float]:
    import redis

    from graflow.distributed.rqapi import JSONSerializer, Queue
    from graflow.worker import bookkeeping

    client = redis.Redis.from_url(url)
    q = Queue(queue, connection=client, serializer=JSONSerializer)
    q.enqueue_many([
        Queue.prepare_data(f"{__name__}.noop", result_ttl=0, timeout=-1) for _ in range(jobs)
    ])  # fmt: skip
    worker = _worker(variant, queue, client)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    lean = bookkeeping.lean_success
    if variant == "graflow_rq_path":
        bookkeeping.lean_success = lambda worker, job: False  # type: ignore[assignment]
    try:
        with _counting() as (_trips, starts):
            began = time.perf_counter()
            worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
            wall = time.perf_counter() - began
    finally:
        bookkeeping.lean_success = lean  # type: ignore[assignment]
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        client.close()
    assert len(starts) == jobs, (variant, len(starts))
    steady = starts[jobs // 10 :]
    gaps = list(itertools.pairwise(steady))
    trips = statistics.median(b[0] - a[0] for a, b in gaps)
    seconds = statistics.median(b[1] - a[1] for a, b in gaps)
    return {"round_trips_per_job": trips, "ms_per_job": seconds * 1e3, "wall_jobs_per_s": jobs / wall}


def compare(url: str, jobs: int, runs: int) -> dict[str, Any]:
    """Median of ``runs`` runs of each variant (interleaved, so load drifts hit all alike)."""
    from graflow.distributed.rqapi import RQ_VERSION

    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for run in range(runs):
        for variant in VARIANTS:
            samples[variant].append(run_once(url, variant, f"paths-{variant}-{run}", jobs))
    out: dict[str, Any] = {"rq": RQ_VERSION, "jobs": jobs, "runs": runs}
    for variant, rows in samples.items():
        ms = statistics.median(r["ms_per_job"] for r in rows)
        out[variant] = {
            "round_trips_per_job": statistics.median(r["round_trips_per_job"] for r in rows),
            "ms_per_job": round(ms, 3),
            "jobs_per_s": round(1e3 / ms, 1),
            "wall_jobs_per_s": round(statistics.median(r["wall_jobs_per_s"] for r in rows), 1),
        }
    lean, rq_own = out["graflow_lean"], out["rq_simple_worker"]
    out["lean_vs_rq_simple_worker"] = {
        "round_trips": round(rq_own["round_trips_per_job"] / lean["round_trips_per_job"], 1),
        "throughput": round(lean["jobs_per_s"] / rq_own["jobs_per_s"], 2),
    }
    return out


__all__ = ["VARIANTS", "compare", "noop", "run_once"]
