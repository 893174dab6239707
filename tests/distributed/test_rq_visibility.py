"""Completed tasks in rq's own views: the FinishedJobRegistry, ``rq info`` and the
dashboard, for ``GRAFLOW_FINISHED_JOB_TTL`` seconds (0: nothing is kept)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import dist_flows as flows
import pytest
from conftest import wait_until

from graflow.distributed import submit
from graflow.distributed.rqapi import FinishedJobRegistry, Queue

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _jobs_of(run: Any) -> set[str]:
    """The rq job of every attempt the run started (``graflow.distributed.dispatch.job_id``)."""
    return {f"gf-{run.session_id}-{e['data']['spec_id']}-a{e['data']['attempt']}"
            for e in run.store.events(100) if e["event"] == "started"}  # fmt: skip


def _rq_info(url: str, queue: str) -> dict[str, int]:
    """``rq info --raw --only-queues QUEUE``: queued, executing, finished, failed."""
    done = subprocess.run([sys.executable, "-m", "rq.cli", "info", "-u", url, "-r", "-Q", queue],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    m = re.search(rf"queue {queue} (\d+), (\d+) executing, (\d+) finished, (\d+) failed", done.stdout)
    assert m, done.stdout
    return dict(zip(("queued", "executing", "finished", "failed"), map(int, m.groups()), strict=True))


def test_completed_tasks_are_listed_in_rqs_finished_registry(make_pool: Any, client: Any) -> None:
    pool = make_pool(1)
    run = submit(flows.rich(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
    run.wait(timeout=30)
    jobs = _jobs_of(run)
    assert len(jobs) >= 4  # begin, the group, its two members, end
    registry = FinishedJobRegistry(pool.queue, connection=client)
    # The last job's success step runs after the run has ended: wait for it.
    wait_until(lambda: set(registry.get_job_ids()) == jobs, timeout=10, what="every job in the registry")
    assert _rq_info(pool.redis_url, pool.queue) == {"queued": 0, "executing": 0, "finished": len(jobs), "failed": 0}
    queue = Queue(pool.queue, connection=client)
    for job_id in jobs:  # what rq-dashboard reads to list them
        job = queue.fetch_job(job_id)
        assert job is not None and job.get_status() == "finished" and job.ended_at is not None
        assert job.description.startswith("graflow ") and 0 < client.ttl(job.key) <= 500


def test_ttl_zero_keeps_nothing(make_pool: Any, client: Any) -> None:
    pool = make_pool(1, GRAFLOW_FINISHED_JOB_TTL="0")
    run = submit(flows.rich(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
    run.wait(timeout=30)
    jobs = _jobs_of(run)
    wait_until(lambda: not any(client.exists(f"rq:job:{j}") for j in jobs), timeout=10, what="jobs deleted")
    assert FinishedJobRegistry(pool.queue, connection=client).count == 0
    assert _rq_info(pool.redis_url, pool.queue)["finished"] == 0


def test_a_resume_requeues_a_kept_job_without_its_ttl(make_pool: Any, client: Any, tmp_path: Any) -> None:
    """A resume re-enqueues the checkpoint's pending activations under their own job ids;
    one that ran since is kept as finished, with a TTL the queued job must not inherit."""
    from graflow.distributed import WorkflowRun

    pool = make_pool(1)
    ck = str(tmp_path / "ck")
    run = submit(flows.checkpoint_at("first"), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
                 initial_channel={"ck": ck})  # fmt: skip
    assert run.wait(timeout=20) == "last-done"
    [last] = [j for j in _jobs_of(run) if j in {f"gf-{run.session_id}-{e['data']['spec_id']}-a1"
              for e in run.store.events(100) if e["data"].get("task_id") == "last"}]  # fmt: skip
    registry = FinishedJobRegistry(pool.queue, connection=client)
    wait_until(lambda: last in registry.get_job_ids(), timeout=10, what="the last job kept")
    idle = f"{pool.queue}-idle"  # no worker serves it: the job stays queued
    WorkflowRun.resume(ck, pool.redis_url, queue=idle)
    job = Queue(idle, connection=client).fetch_job(last)
    assert job is not None and job.get_status() == "queued"
    assert client.ttl(job.key) == -1 and last not in registry.get_job_ids()
