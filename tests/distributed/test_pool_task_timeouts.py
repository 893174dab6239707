"""Task timeouts and cancel on real workers: the attempt is stopped, the process is freed.

Every pool here has ONE worker process, so "another run completes" proves that the
process that ran the hung task is free again; the task records its pid to show it is
the same process (it was not killed and replaced).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import timeout_flows as flows
from conftest import DistPool, wait_until

from graflow.distributed import WorkflowRun, submit
from graflow.exceptions import RetryLimitExceededError, TaskTimeoutError, WorkflowFailedError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Generous: well under the hung tasks' own length (timeout_flows.HANG).
DEADLINE = 40.0


def _submit(pool: DistPool, wf: Any) -> WorkflowRun:
    return submit(wf, pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)


def _quick_run_pid(pool: DistPool) -> int:
    """Run a one-task workflow on the pool; the pid of the process that ran it."""
    run = _submit(pool, flows.quick())
    pid = run.wait(timeout=DEADLINE)
    assert isinstance(pid, int)
    return pid


def test_hung_task_fails_with_task_timeout_error_and_frees_the_worker(make_pool: Any) -> None:
    pool = make_pool(1)
    run = _submit(pool, flows.hung(timeout=1.0))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=DEADLINE)
    err = info.value
    assert err.error_type == "TaskTimeoutError" and err.task_id == "hang"
    assert isinstance(err.cause, TaskTimeoutError) and err.cause.timeout == 1.0
    status = run.status()
    assert (status.state, status.stop_reason, status.failed_task) == (
        "failed",
        "task_failed",
        "hang",
    )
    assert isinstance(run.get_result("hang"), TaskTimeoutError)
    [hung_pid] = run.channel.get("pids")
    # The same worker process (not a replacement) runs the next run's task.
    assert _quick_run_pid(pool) == hung_pid
    assert pool.procs[0].poll() is None


def test_timeout_goes_through_the_retry_policy_on_the_pool(make_pool: Any) -> None:
    pool = make_pool(1)
    run = _submit(pool, flows.hung(timeout=1.0, max_retries=1))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=DEADLINE)
    err = info.value
    assert err.error_type == "RetryLimitExceededError"
    assert isinstance(err.cause, RetryLimitExceededError)
    assert isinstance(err.cause.last_error, TaskTimeoutError) and err.cause.last_error.attempt == 2
    assert len(run.channel.get("pids")) == 2  # two attempts, both stopped


def test_worker_task_timeout_flag_is_the_default(make_pool: Any) -> None:
    pool = make_pool(1, start=False)
    pool.args = ["--task-timeout", "1"]
    pool.__enter__()
    run = _submit(pool, flows.hung(timeout=None))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=DEADLINE)
    assert info.value.error_type == "TaskTimeoutError"
    assert isinstance(info.value.cause, TaskTimeoutError) and info.value.cause.timeout == 1.0
    [hung_pid] = run.channel.get("pids")
    assert _quick_run_pid(pool) == hung_pid


def test_forked_work_horse_times_out_too(make_pool: Any) -> None:
    pool = make_pool(1, start=False)
    pool.args = ["--fork", "--task-timeout", "1"]
    pool.__enter__()
    run = _submit(pool, flows.hung(timeout=None))
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=DEADLINE)
    assert info.value.error_type == "TaskTimeoutError"
    _quick_run_pid(pool)  # the worker serves the next run


def test_cancel_stops_a_running_task_and_frees_the_worker(make_pool: Any) -> None:
    pool = make_pool(1, GRAFLOW_HEARTBEAT="3")
    run = _submit(pool, flows.forever())
    wait_until(
        lambda: run.channel.get("looping"), timeout=DEADLINE, what="the task to start looping"
    )
    [loop_pid] = run.channel.get("pids")
    assert run.cancel() is True
    # The only worker process is busy with the loop until the cancel stops it.
    assert _quick_run_pid(pool) == loop_pid
    wait_until(
        lambda: run.status().running == 0,
        timeout=DEADLINE,
        what="the stopped attempt to leave :running",
    )
    status = run.status()
    assert (status.state, status.stop_reason) == ("canceled", "run_canceled")
    assert run.store.completed() == []  # the stopped attempt scheduled nothing
    assert run.get_result("after") is None


def test_warm_sigterm_after_cancel_exits_promptly(make_pool: Any) -> None:
    pool = make_pool(1, GRAFLOW_HEARTBEAT="3")
    run = _submit(pool, flows.forever())
    wait_until(
        lambda: run.channel.get("looping"), timeout=DEADLINE, what="the task to start looping"
    )
    assert run.cancel() is True
    proc = pool.procs[0]
    os.kill(proc.pid, signal.SIGTERM)  # warm: waits for the running job, which now stops
    assert proc.wait(timeout=DEADLINE) == 0


def test_cancel_stops_a_task_in_a_forked_work_horse(make_pool: Any) -> None:
    pool = make_pool(1, start=False, GRAFLOW_HEARTBEAT="3")
    pool.args = ["--fork"]
    pool.__enter__()
    run = _submit(pool, flows.forever())
    wait_until(
        lambda: run.channel.get("looping"), timeout=DEADLINE, what="the task to start looping"
    )
    assert run.cancel() is True
    _quick_run_pid(pool)  # the only worker's horse was stopped: the next run gets it
    assert run.status().state == "canceled" and run.store.completed() == []
