"""The pool's workers as operators see them: ``pool_workers`` and ``graflow workers``.

Real ``graflow worker`` processes; a run of ``dist_flows:slow_cli`` holds a worker busy
at its gate until the test opens it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import Any

import pytest
from conftest import DistPool, graflow, release, wait_until

from graflow.defaults import DEFAULT_HEARTBEAT
from graflow.distributed import WorkflowRun, rqapi
from graflow.distributed.dispatch import parse_job_id
from graflow.distributed.pool_workers import LOST, WorkerView, list_workers, snapshot
from graflow.distributed.rqapi import layout

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _at(pool: DistPool) -> list[str]:
    return ["--url", pool.redis_url, "--prefix", pool.prefix]


def _views(client: Any, pool: DistPool) -> dict[str, WorkerView]:
    return {w.name: w for w in list_workers(client, pool.prefix, [pool.queue])}


def _waiting(pool: DistPool) -> tuple[WorkflowRun, Any]:
    """A run of ``slow_cli`` and its ``waiter`` attempt, running at its gate."""
    out = graflow("submit", "dist_flows:slow_cli", *_at(pool), "--queue", pool.queue)
    assert out.returncode == 0, out.stderr
    run = WorkflowRun.attach(out.stdout.splitlines()[0], redis_url=pool.redis_url, key_prefix=pool.prefix)
    attempt = wait_until(lambda: next((a for a in run.running_attempts() if a.task_id == "waiter"), None),
                         what="the waiter to run")  # fmt: skip
    return run, attempt


def test_parse_job_id_reads_dispatchs_ids() -> None:
    assert parse_job_id("gf-my-run_1-0123abcd-a12") == ("my-run_1", "0123abcd", 12)
    assert parse_job_id("gf-0123-4567-a1") == ("0123", "4567", 1)
    for other in ("0123-4567-a1", "gf-0123-a1", "gf-0123-4567-b1", "gf-0123-4567-a", "gf-a:b-4567-a1"):
        assert parse_job_id(other) is None


def test_idle_busy_and_idle_again_as_rq_sees_it(pool: DistPool, client: Any) -> None:
    names = {f"{pool.prefix}-w0", f"{pool.prefix}-w1"}
    idle = wait_until(lambda: (v := _views(client, pool)) and all(w.state == "idle" for w in v.values()) and v,
                      what="both workers idle")  # fmt: skip
    assert set(idle) == names
    for view in idle.values():
        assert view.queues == [pool.queue] and view.hostname == socket.gethostname()
        assert view.pid is not None and view.birth is not None and view.last_heartbeat is not None
        assert (view.current_job, view.session_id, view.task_id, view.attempt) == ("", "", "", None)
        assert view.lease_deadline is None and view.lease_age is None and view.failed == 0
    listed = [w.name for w in list_workers(client, pool.prefix)]  # every rq worker on the Redis
    assert names <= set(listed) and listed == sorted(listed)

    run, attempt = _waiting(pool)
    try:
        seen = snapshot(client, pool.prefix, [pool.queue], lease_seconds=DEFAULT_HEARTBEAT)
        views = {w.name: w for w in seen.workers}
        busy = views[attempt.worker]
        job = f"gf-{run.session_id}-{attempt.spec_id}-a1"
        assert (busy.state, busy.current_job, busy.session_id, busy.task_id, busy.attempt) == (
            "busy", job, run.session_id, "waiter", 1)  # fmt: skip
        assert busy.started_at == attempt.started_at
        assert busy.lease_deadline is not None and busy.lease_deadline > seen.now  # renewed while it runs
        assert busy.lease_age is not None and busy.lease_age >= 0
        (other,) = names - {attempt.worker}
        assert views[other].current_job == "" and views[other].session_id == ""

        # What rq's own Worker reads of the same registration (rq info, rq-dashboard).
        rq_worker = rqapi.Worker.find_by_key(layout.worker_key(busy.name), connection=client)
        assert rq_worker is not None
        assert rq_worker.get_current_job_id() == busy.current_job and rq_worker.get_state() == busy.state
        assert (rq_worker.hostname, rq_worker.pid, rq_worker.queue_names()) == (busy.hostname, busy.pid, busy.queues)
        assert rq_worker.birth_date is not None and rq_worker.birth_date.timestamp() == busy.birth
        assert rq_worker.successful_job_count == busy.successful

        # Another prefix's view: the same rq job, but no run of that prefix owns it.
        foreign = {w.name: w for w in list_workers(client, pool.prefix + "x", [pool.queue])}[busy.name]
        assert (foreign.current_job, foreign.session_id, foreign.task_id, foreign.lease_deadline) == (job, "", "", None)
        assert foreign.started_at is not None  # rq's job hash

        out = graflow("workers", *_at(pool), "--queue", pool.queue, "--json")
        assert out.returncode == 0, out.stderr
        docs = {d["name"]: d for d in json.loads(out.stdout)}
        assert set(docs) == names
        stable = ("state", "queues", "hostname", "pid", "birth", "current_job", "session_id", "task_id", "attempt",
                  "started_at")  # fmt: skip
        for name, doc in docs.items():
            assert {k: doc[k] for k in stable} == {k: views[name].to_dict()[k] for k in stable}
        assert docs[busy.name]["lease_deadline"] is not None

        table = graflow("workers", *_at(pool), "--queue", pool.queue)
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        assert header.split() == ["NAME", "STATE", "QUEUES", "PROCESS", "RUNNING", "FOR", "LEASE", "JOBS"]
        line = {r.split()[0]: r for r in rows}
        assert set(line) == names
        assert line[busy.name].split()[1] == "busy" and f"waiter #1 of {run.session_id}" in line[busy.name]
        assert " left " in line[busy.name] and line[other].split()[1] == "idle"
    finally:
        release(run)
    assert run.wait(timeout=20) == "finally"
    after = wait_until(lambda: (v := _views(client, pool)) and v[attempt.worker].state == "idle" and v,
                       what="the worker idle again")  # fmt: skip
    done = after[attempt.worker]
    assert (done.current_job, done.session_id, done.task_id, done.lease_deadline) == ("", "", "", None)
    assert done.successful > busy.successful


def test_a_killed_worker_is_lost_with_the_attempt_it_ran(make_pool: Any, client: Any) -> None:
    pool = make_pool(1)
    name = f"{pool.prefix}-w0"
    run, attempt = _waiting(pool)
    try:
        os.killpg(pool.procs[0].pid, signal.SIGKILL)  # the supervisor and its worker process
        pool.procs[0].wait(10)
        # rq still holds its registration (until its heartbeat key expires): no crash, and
        # whatever rq says of it, the view reads.
        view = {w.name: w for w in list_workers(client, pool.prefix, [pool.queue])}.get(name)
        assert view is None or view.state in ("busy", LOST)

        # Its rq heartbeat key runs out (rq's worker TTL, shortened here from minutes):
        # still registered for the queue, so it is lost, and the lease it held (nobody is
        # left to reap it) still names the attempt it ran.
        index = layout.worker_executions_key(name)
        client.pexpire(layout.worker_key(name), 1)
        if index is not None:
            client.pexpire(index, 1)
        wait_until(lambda: not client.exists(layout.worker_key(name)), what="the worker hash to expire")
        lost = _views(client, pool)[name]
        assert (lost.state, lost.queues, lost.pid, lost.hostname) == (LOST, [pool.queue], None, "")
        assert (lost.session_id, lost.task_id, lost.attempt) == (run.session_id, "waiter", 1)
        assert lost.current_job == f"gf-{run.session_id}-{attempt.spec_id}-a1" and lost.lease_deadline is not None

        table = graflow("workers", *_at(pool), "--queue", pool.queue)
        assert table.returncode == 0, table.stderr
        assert [r.split()[:2] for r in table.stdout.splitlines()[1:]] == [[name, LOST]]
    finally:
        release(run)


def test_no_workers_and_unreachable_redis(redis_url: str, key_prefix: str) -> None:
    out = graflow("workers", "--url", redis_url, "--prefix", key_prefix, "--queue", key_prefix)
    assert (out.returncode, out.stdout.strip()) == (0, f"no rq workers serving {key_prefix}")
    assert json.loads(graflow("workers", "--url", redis_url, "--queue", key_prefix, "--json").stdout) == []
    down = graflow("workers", "--url", "redis://127.0.0.1:1/0")
    assert down.returncode == 3
    (line,) = down.stderr.splitlines()
    assert line.startswith("graflow: error: cannot reach Redis at redis://127.0.0.1:1/0 — ")
