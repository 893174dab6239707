"""Submit, attach, follow, cancel and purge a pooled run (see docs/life-of-a-task.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from typing import Any

import dist_flows as flows
import pytest
from conftest import SESSION_TTL, DistPool, child_env, release, session_keys, wait_until

from graflow import task, workflow
from graflow.distributed import RunStatus, WorkflowRun, submit
from graflow.distributed.dispatch import JOB_FUNCTION
from graflow.exceptions import (
    GraflowRuntimeError,
    GraflowWorkflowCanceledError,
    MaxStepsExceeded,
    TaskError,
    WorkflowFailedError,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _submit(pool: DistPool, wf: Any, **kw: Any) -> WorkflowRun:
    return submit(wf, pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, **kw)


def test_e6_submit_and_reattach(pool: DistPool) -> None:
    url = pool.redis_url
    with workflow("remote") as wf:

        @task
        def square(x: int) -> int:
            return x * x

        @task
        def report(square: int) -> str:
            return str(square)

        square >> report
        run = wf.submit(url, initial_channel={"x": 7}, queue=pool.queue, key_prefix=pool.prefix)
    again = WorkflowRun.attach(run.session_id, redis_url=url, key_prefix=pool.prefix)
    assert again.wait(timeout=30) == "49" and again.get_result("square") == 49
    assert again.status().state == "completed"


def test_producer_subprocess_exits_then_attach(pool: DistPool) -> None:
    code = (
        "import sys, dist_flows as flows\n"
        "run = flows.e6().submit(sys.argv[1], initial_channel={'x': 9}, queue=sys.argv[2], key_prefix=sys.argv[2])\n"
        "print(run.session_id)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, pool.redis_url, pool.prefix], env=child_env(),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    session_id = out.stdout.strip()
    assert len(session_id) == 32 and int(session_id, 16) >= 0
    run = WorkflowRun.attach(session_id, redis_url=pool.redis_url, key_prefix=pool.prefix)
    assert run.wait(timeout=20) == "81"
    assert run.get_result("square") == 81
    status = run.status()
    assert (status.state, status.stop_reason, status.completed, status.steps) == ("completed", "drained", 2, 2)


def test_status_follows_queued_running_completed(make_pool: Any) -> None:
    pool = make_pool(1, start=False)  # nothing serves the queue yet: the run stays queued
    run = _submit(pool, flows.gated_chain())
    try:
        queued = run.status()
        assert isinstance(queued, RunStatus)
        assert (queued.state, queued.stop_reason, queued.done) == ("queued", None, False)
        assert (queued.completed, queued.pending, queued.running, queued.steps) == (0, 1, 0, 0)
        assert queued.max_steps == 10000 and queued.session_id == run.session_id
        assert queued.created_at is not None and abs(queued.created_at - time.time()) < 60
        assert queued.updated_at is not None and queued.updated_at >= queued.created_at
        assert queued.failed_task is None and queued.error is None and queued.last_checkpoint is None
        pool.__enter__()
        running = wait_until(lambda: (s := run.status()).running == 1 and s.completed == 1 and s, what="b running")
        assert (running.state, running.pending, running.steps, running.done) == ("running", 0, 1, False)
        assert running.updated_at is not None and running.updated_at >= queued.updated_at
        [b_started] = [e for e in run.store.events() if e["event"] == "started" and e["data"]["task_id"] == "b"]
        assert running.updated_at >= b_started["time"] - 0.002  # a start is an update (event times are ms)
        assert float(running.extra["started_at"]) >= queued.created_at
        release(run)
        assert run.wait(timeout=20) == "c-done"
    finally:
        release(run)
    done = run.status()
    assert (done.state, done.stop_reason, done.done, done.max_steps_reached) == ("completed", "drained", True, False)
    assert (done.completed, done.pending, done.running, done.steps) == (3, 0, 0, 3)
    assert done.updated_at is not None and running.updated_at is not None
    assert done.updated_at >= running.updated_at and done.created_at == queued.created_at
    assert run.channel.get("ran") == ["a", "b", "c"]
    assert json.loads(json.dumps(done.to_dict()))["state"] == "completed"


def test_wait_timeout_raises_timeout_error(pool: DistPool) -> None:
    run = _submit(pool, flows.gated_chain())
    try:
        wait_until(lambda: run.channel.get("waiting"), what="b at its gate")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=run.session_id):
            run.wait(timeout=0.3)
        assert time.monotonic() - started < 3
        with pytest.raises(TimeoutError):
            run.result()  # wait(timeout=0)
        assert run.status().state == "running"
    finally:
        release(run)
    assert run.wait(timeout=20) == "c-done"


def test_failed_run_raises_workflow_failed_error(pool: DistPool) -> None:
    run = _submit(pool, flows.failing("plain"))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=20)
    err = info.value
    assert isinstance(err, GraflowRuntimeError)
    assert err.task_id == "explode" and run.session_id in str(err)
    assert err.error_type == "GraflowRuntimeError"  # the run's error, as in-process
    assert err.remote_traceback and "FlowError" in err.remote_traceback and "explode" in err.remote_traceback
    # ``cause`` is the run's own error, unpickled: in-process it is GraflowRuntimeError
    # wrapping the task's exception, which survives with its type and arguments.
    assert type(err.cause) is GraflowRuntimeError
    assert isinstance(err.cause.cause, flows.FlowError) and err.cause.cause.args == ("boom", 42)
    status = run.status()
    assert (status.state, status.stop_reason, status.failed_task) == ("failed", "task_failed", "explode")
    assert status.error and "boom" in status.error
    assert run.channel.get("ran") == ["prepare", "explode"]
    assert isinstance(run.get_result("explode"), flows.FlowError)


def test_task_error_raised_upstream_style_reaches_the_caller_whole(pool: DistPool) -> None:
    # TaskError(task_id, message, cause), upstream's order, pickled on the worker and
    # loaded by wait(): same type, task id, text and cause as where it was raised.
    run = _submit(pool, flows.failing("task_error"))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=20)
    err = info.value
    assert err.error_type == "TaskError" and err.task_id == "explode"
    cause = err.cause
    assert type(cause) is TaskError and cause.task_id == "explode"
    assert str(cause) == "Error in task 'explode': went wrong (caused by FlowError: why)"
    assert isinstance(cause.cause, flows.FlowError) and cause.cause.args == ("why",)
    assert "went wrong" in (run.status().error or "")


def test_task_raising_graflow_runtime_error_is_the_cause_unchanged(pool: DistPool) -> None:
    run = _submit(pool, flows.failing("runtime"))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=20)
    assert info.value.error_type == "FlowRuntimeError"
    assert type(info.value.cause) is flows.FlowRuntimeError
    assert str(info.value.cause) == "runtime boom" and info.value.cause.task_id == "explode"


def test_cancel_drops_queued_jobs_and_stops_running_tasks(pool: DistPool, client: Any) -> None:
    from rq import Queue

    queue = Queue(pool.queue, connection=client)
    run = _submit(pool, flows.fanout_gated())
    try:
        # Two workers: two members wait at their gates, the third is still an rq job.
        wait_until(lambda: len(run.channel.get("waiting") or []) == 2 and queue.count == 1, what="2 running, 1 queued")
        [dropped] = queue.job_ids
        queued_desc = client.hget(f"rq:job:{dropped}", "description").decode()
        status = run.status()
        assert (status.state, status.running, status.pending) == ("running", 2, 1)
        assert run.cancel() is True
        canceled = run.status()
        assert (canceled.state, canceled.stop_reason, canceled.done) == ("canceled", "run_canceled", True)
        assert queue.count == 0  # the queued job was dropped from the rq queue…
        assert not client.exists(f"rq:job:{dropped}")  # …and its hash (no TTL) deleted
        with pytest.raises(GraflowWorkflowCanceledError):
            run.wait(timeout=5)
        # The running members, still at their gates, are stopped by their workers'
        # heartbeats (not left to run on); nothing they would have scheduled is queued.
        wait_until(lambda: run.status().running == 0, timeout=20, what="running members to be stopped")
    finally:
        release(run)
    ran = run.channel.get("ran")
    waiting = run.channel.get("waiting")
    assert sorted(ran) == sorted(["start", *waiting])
    assert "after" not in ran
    never = ({"b1", "b2", "b3"} - set(waiting)).pop()
    assert f"graflow {never} " in queued_desc
    assert queue.count == 0 and run.status().state == "canceled"
    assert run.store.completed() == ["start"]  # late commits record nothing
    assert run.cancel() is False  # already ended


def test_cancel_drops_a_delayed_retry(pool: DistPool, client: Any) -> None:
    from rq import Queue

    scheduled = Queue(pool.queue, connection=client).scheduled_job_registry
    run = _submit(pool, flows.slow_retry())
    ids = wait_until(lambda: scheduled.get_job_ids(), what="the retry to be scheduled")
    [retry_job] = [i for i in ids if run.session_id in i]
    assert retry_job.endswith("-a2")
    assert run.status().state == "running" and run.channel.get("ran") == ["flaky"]
    assert run.cancel("no more retries")
    assert retry_job not in scheduled.get_job_ids() and not client.exists(f"rq:job:{retry_job}")
    status = run.status()
    assert (status.state, status.stop_reason, status.error) == ("canceled", "run_canceled", "no more retries")


def test_cancel_a_queued_run(make_pool: Any, client: Any) -> None:
    from rq import Queue

    pool = make_pool(1, start=False)
    run = _submit(pool, flows.e6(), initial_channel={"x": 1})
    queue = Queue(pool.queue, connection=client)
    [job_id] = queue.job_ids
    assert run.cancel() is True
    assert queue.count == 0 and not client.exists(f"rq:job:{job_id}")
    assert run.status().state == "canceled" and run.cancel() is False
    with pytest.raises(GraflowWorkflowCanceledError, match="canceled by user"):
        run.wait(timeout=1)


def test_cancel_returns_false_for_a_completed_run(pool: DistPool) -> None:
    run = _submit(pool, flows.e6(), initial_channel={"x": 2})
    assert run.wait(timeout=20) == "4"
    assert run.cancel() is False
    assert run.status().state == "completed"


def test_purge(pool: DistPool, client: Any) -> None:
    run = _submit(pool, flows.rich())
    run.wait(timeout=20)
    assert session_keys(client, pool.prefix, run.session_id)
    run.purge()
    assert session_keys(client, pool.prefix, run.session_id) == []
    assert not run.store.exists()

    live = _submit(pool, flows.gated_chain())
    try:
        wait_until(lambda: live.channel.get("waiting"), what="b at its gate")
        with pytest.raises(GraflowRuntimeError, match="still running"):
            live.purge()
        assert live.status().state == "running"
        live.purge(force=True)
        assert session_keys(client, pool.prefix, live.session_id) == []
    finally:
        release(live)
    # Channel keys written after the purge (here the gate key) get the session TTL
    # when the task still running commits: its commit finds no session and schedules
    # nothing.
    wait_until(lambda: (names := session_keys(client, pool.prefix, live.session_id))
               and all(client.ttl(n) > 0 for n in names), what="late channel keys to expire")  # fmt: skip
    assert not live.store.exists() and live.channel.get("ran") is None


def test_terminate_workflow_ends_run_terminated(pool: DistPool) -> None:
    run = _submit(pool, flows.terminating())
    assert run.wait(timeout=20) == "stopped"
    status = run.status()
    assert (status.state, status.stop_reason, status.completed, status.steps) == ("terminated", "terminate_workflow", 2, 2)
    assert run.channel.get("ran") == ["first", "stopper"]


def test_max_steps_on_the_pool(pool: DistPool) -> None:
    run = _submit(pool, flows.looping(), start_node="agent", max_steps=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run.wait(timeout=20)
    assert any(issubclass(w.category, MaxStepsExceeded) for w in caught)
    status = run.status()
    assert (status.state, status.stop_reason, status.max_steps_reached) == ("terminated", "max_steps", True)
    assert status.steps == 5 and status.pending == 1
    assert result == 1  # agent completed last (a, t, a, t, a)
    assert run.channel.get("ran") == ["agent", "tool", "agent", "tool", "agent"]


def _assert_session_ttl(client: Any, prefix: str, session_id: str) -> list[bytes]:
    """Every key of the session has the session TTL (the worker's last step sets it;
    channel keys get it just after the state turns final, so poll briefly)."""

    def wrong() -> dict[bytes, int]:
        ttls = {n: client.ttl(n) for n in session_keys(client, prefix, session_id)}
        assert ttls, "the session has no keys"
        return {n: t for n, t in ttls.items() if not SESSION_TTL - 30 <= t <= SESSION_TTL}

    wait_until(lambda: not wrong(), timeout=5, what="session TTLs")
    return session_keys(client, prefix, session_id)


def test_final_sessions_get_the_session_ttl(pool: DistPool, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers end these runs with their GRAFLOW_SESSION_TTL; cancel() below ends one from
    # this process, with this process's setting.
    monkeypatch.setenv("GRAFLOW_SESSION_TTL", str(SESSION_TTL))
    completed = _submit(pool, flows.rich())
    completed.wait(timeout=20)  # extra and the group run concurrently: either ends last
    assert completed.status().state == "completed"
    names = _assert_session_ttl(client, pool.prefix, completed.session_id)
    text = [n.decode() for n in names]
    assert any(":dyn:extra" in n for n in text) and any(":group:" in n for n in text)
    assert any(n.endswith(":odd") for n in text) and any(n.endswith(":counter") for n in text)
    assert any(n.endswith(".__result__") for n in text)

    failed = _submit(pool, flows.failing("plain"))
    with pytest.raises(WorkflowFailedError):
        failed.wait(timeout=20)
    _assert_session_ttl(client, pool.prefix, failed.session_id)

    canceled = _submit(pool, flows.gated_chain())
    try:
        wait_until(lambda: canceled.channel.get("waiting"), what="b at its gate")
        assert canceled.cancel()
    finally:
        release(canceled)
    wait_until(lambda: canceled.status().running == 0, what="b to finish")
    _assert_session_ttl(client, pool.prefix, canceled.session_id)


def test_rq_jobs_follow_the_wire_contract(make_pool: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from graflow.distributed.spec import decode

    monkeypatch.setenv("GRAFLOW_SESSION_TTL", "321")
    pool = make_pool(1, start=False)
    run = _submit(pool, flows.e6(), initial_channel={"x": 3})
    queue = Queue(pool.queue, connection=client, serializer=JSONSerializer)
    [job_id] = queue.job_ids
    spec = decode(client.hvals(run.store.keys.pending)[0])
    assert job_id == f"gf-{run.session_id}-{spec.spec_id}-a1"
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    assert job.func_name == JOB_FUNCTION == "graflow.worker.jobs.execute_task_spec"
    assert job.description == f"graflow square (session {run.session_id[:8]}, attempt 1)"
    assert job.result_ttl == 0
    assert job.failure_ttl == 321  # failed jobs expire with the session
    assert job.timeout == -1
    payload, signature = job.args
    assert signature is None and decode(payload) == spec
    assert (spec.v, spec.task_id, spec.attempt, spec.driver, spec.queue, spec.key_prefix) == (
        1, "square", 1, "pool", pool.queue, pool.prefix)  # fmt: skip
    raw = client.hgetall(f"rq:job:{job_id}")
    assert raw[b"result_ttl"] == b"0" and raw[b"failure_ttl"] == b"321"
    pool.__enter__()
    assert run.wait(timeout=20) == "9"
    # result_ttl 0, yet kept as finished for GRAFLOW_FINISHED_JOB_TTL (rq info, rq-dashboard)
    wait_until(lambda: job_id in queue.finished_job_registry.get_job_ids(), what="the finished job")
    kept = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    assert kept.get_status() == "finished" and 0 < client.ttl(kept.key) <= 500


def test_a_long_lived_producer_does_not_leak_connections(pool: DistPool) -> None:
    """Each submit makes its own client; once the run's handle is dropped, its connections
    close. (A module-level cache of rq queues once kept every client alive: two open
    sockets per run, until Redis refused new clients.)"""
    import gc
    import os

    def open_fds() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    def one_run() -> None:
        run = submit(flows.e6(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, initial_channel={"x": 3})
        run.wait(timeout=30)
        run.status()
        run.channel.get("missing")

    one_run()  # imports, caches and the like settle
    before = open_fds()
    for _ in range(20):
        one_run()
    assert open_fds() - before < 5  # 40 without the fix
