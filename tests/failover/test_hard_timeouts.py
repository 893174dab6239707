"""A task stuck in C code that holds the GIL still times out on the pool (graflow issue 9,
item 4): the supervisor kills the process that runs it, the attempt fails with
``TaskTimeoutError`` through the task's retry policy, the pool keeps serving.

Real ``graflow worker`` commands (one worker process each) on a real Redis. The task
sleeps 30 s in libc through ``ctypes.PyDLL``, which keeps the GIL, so nothing inside the
process can stop it; every run here must end well before that.
"""

from __future__ import annotations

from typing import Any

import hard_timeout_flows as flows
import pytest
from fohelpers import FoPool, abandoned, wait_until

from graflow.exceptions import TaskTimeoutError, WorkflowFailedError

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning"),  # the run's error
]

#: Well under the C call's 30 s: a run that ends in time was not waited out.
DEADLINE = 15.0
#: A lease longer than timeout + grace: the kill, not the reaper, ends the attempt.
ARGS = ["--heartbeat", "10"]


def _full_log(pool: FoPool) -> str:
    return pool.full_logs()


def _fails_with_timeout(pool: FoPool, run: Any) -> TaskTimeoutError:
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=DEADLINE)
    err = info.value
    assert err.error_type == "TaskTimeoutError" and err.task_id == "stuck", pool.logs_text()
    assert isinstance(err.cause, TaskTimeoutError) and err.cause.timeout == 1.0
    assert run.status().state == "failed"
    return err.cause


def _serves_another_run(pool: FoPool) -> None:
    assert pool.procs[0].poll() is None, pool.logs_text()  # the command (supervisor) lives
    again = pool.submit(flows.quick())
    assert isinstance(again.wait(timeout=DEADLINE), int), pool.logs_text()


def test_task_stuck_in_c_holding_the_gil_fails_with_task_timeout_error(redis_url: str) -> None:
    with FoPool(redis_url, 1, args=ARGS) as pool:
        run = pool.submit(flows.stuck_in_c(timeout=1.0))
        error = _fails_with_timeout(pool, run)
        assert error.attempt == 1  # the killed attempt
        assert run.channel.get("attempts") == [1]  # the marked activation did not run the body
        [pid] = run.channel.get("pids")
        log = _full_log(pool)
        assert ("ran past its timeout of 1 s and did not stop (code holding the GIL?); "
                f"killing process {pid}") in log, log  # fmt: skip
        assert "crash loop" not in log and "died unexpectedly" not in log, log
        [reason] = abandoned(pool).values()
        assert "was killed: its task ran past its timeout of 1 s" in reason, reason
        assert reason.endswith("re-enqueued as attempt 2, which fails with TaskTimeoutError"), reason
        _serves_another_run(pool)


def test_hard_timeout_goes_through_the_retry_policy(redis_url: str) -> None:
    with FoPool(redis_url, 1, args=ARGS) as pool:
        run = pool.submit(flows.stuck_in_c(timeout=1.0, max_retries=1))
        assert run.wait(timeout=DEADLINE) == "done", pool.logs_text()
        # Attempt 1 hung and was killed, attempt 2 (marked) failed without running the
        # body, the retry (attempt 3) ran it again and returned.
        assert run.channel.get("calls") == 2
        assert run.channel.get("attempts") == [1, 3]
        _serves_another_run(pool)


def test_forked_work_horse_stuck_in_c_is_killed(redis_url: str) -> None:
    with FoPool(redis_url, 1, args=["--fork", *ARGS]) as pool:
        run = pool.submit(flows.stuck_in_c(timeout=1.0))
        error = _fails_with_timeout(pool, run)
        assert error.attempt == 1
        assert run.channel.get("calls") == 1
        [horse] = run.channel.get("pids")
        log = _full_log(pool)
        assert f"did not stop (code holding the GIL?); killing process {horse}" in log, log
        wait_until(lambda: abandoned(pool), 5, "the killed attempt recorded")
        [reason] = abandoned(pool).values()
        assert "had its work horse killed: its task ran past its timeout of 1 s" in reason, reason
        _serves_another_run(pool)


def test_timeout_kills_do_not_make_a_crash_loop(redis_url: str) -> None:
    # One death would be a crash loop if a timeout kill counted as one.
    with FoPool(redis_url, 1, args=ARGS, GRAFLOW_CRASH_LOOP_DEATHS="1") as pool:
        for _ in range(2):
            run = pool.submit(flows.stuck_in_c(timeout=1.0))
            _fails_with_timeout(pool, run)
        _serves_another_run(pool)
        log = _full_log(pool)
        assert log.count("killing process") == 2 and "crash loop" not in log, log
