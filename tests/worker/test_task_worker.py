"""Upstream's ``TaskWorker``: rq jobs on threads of the calling process."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from worker_helpers import enqueue, entries, events, rq_queue, wait_until

from graflow.worker.worker import TaskWorker

pytestmark = pytest.mark.redis


def _queue(redis_client: Any, name: str) -> Any:
    from graflow.distributed.task_queue import DistributedTaskQueue

    return DistributedTaskQueue(redis_client=redis_client, key_prefix=name)


def test_rejects_anything_but_a_distributed_queue() -> None:
    from graflow.core.local_queue import LocalTaskQueue

    for bad in (object(), LocalTaskQueue.__new__(LocalTaskQueue)):
        with pytest.raises(ValueError, match="RedisTaskQueue"):
            TaskWorker(bad, "w")


def test_runs_jobs_on_threads_and_reports_metrics(redis_client: Any, queue_name: str) -> None:
    out = f"{queue_name}:out"
    for i in range(3):
        enqueue(redis_client, queue_name, "record", out, f"v{i}", job_id=f"{queue_name}-ok{i}")
    enqueue(redis_client, queue_name, "boom", out, job_id=f"{queue_name}-bad")
    worker = TaskWorker(
        _queue(redis_client, queue_name),
        f"{queue_name}-tw",
        max_concurrent_tasks=2,
        poll_interval=0.02,
    )
    assert not worker.is_running
    worker.start()
    try:
        assert worker.is_running
        wait_until(lambda: worker.get_metrics()["tasks_processed"] == 4, what="four jobs")
        metrics = worker.get_metrics()
        assert metrics["tasks_succeeded"] == 3 and metrics["tasks_failed"] == 1
        assert metrics["active_tasks"] == 0 and metrics["worker_id"] == f"{queue_name}-tw"
        assert metrics["is_running"] and metrics["uptime"] > 0
    finally:
        started = time.monotonic()
        worker.stop(timeout=5)
    assert time.monotonic() - started < 2  # idle threads notice the stop within a poll
    assert not worker.is_running and not worker.get_metrics()["is_running"]
    ran = entries(redis_client, out)
    assert sorted(e["value"] for e in ran) == ["boom", "v0", "v1", "v2"]
    assert {e["pid"] for e in ran} == {os.getpid()}
    assert {e["thread"] for e in ran} <= {f"{queue_name}-tw-t1", f"{queue_name}-tw-t2"}
    assert rq_queue(redis_client, queue_name).failed_job_registry.get_job_ids() == [
        f"{queue_name}-bad"
    ]


def test_jobs_run_concurrently_with_live_leases(redis_client: Any, queue_name: str) -> None:
    out, release = f"{queue_name}:out", f"{queue_name}:release"
    for i in (1, 2):
        enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-{i}")
    worker = TaskWorker(
        _queue(redis_client, queue_name),
        f"{queue_name}-tw",
        max_concurrent_tasks=2,
        poll_interval=0.02,
    )
    worker.start()
    try:
        wait_until(lambda: len(events(redis_client, out, "started")) == 2, what="two jobs at once")
        assert worker.get_metrics()["active_tasks"] == 2
        scores = [
            s for _m, s in redis_client.zrange(f"rq:wip:{queue_name}", 0, -1, withscores=True)
        ]
        assert len(scores) == 2 and all(s < time.time() + 11 for s in scores)  # leases, not +inf
        redis_client.set(release, 1)
        wait_until(lambda: worker.get_metrics()["tasks_succeeded"] == 2, what="both done")
    finally:
        worker.stop(timeout=5)
    assert not redis_client.zcard(f"rq:wip:{queue_name}")


def test_delayed_jobs_are_moved_to_the_queue(redis_client: Any, queue_name: str) -> None:
    from datetime import timedelta

    out = f"{queue_name}:out"
    rq_queue(redis_client, queue_name).enqueue_in(
        timedelta(seconds=1), "jobfuncs.record", out, "later",
        job_id=f"{queue_name}-later", result_ttl=0, job_timeout=-1,
    )  # fmt: skip
    worker = TaskWorker(
        _queue(redis_client, queue_name),
        f"{queue_name}-tw",
        max_concurrent_tasks=1,
        poll_interval=0.02,
    )
    worker.start()
    try:
        wait_until(lambda: entries(redis_client, out), timeout=5, what="the delayed job")
    finally:
        worker.stop(timeout=5)
