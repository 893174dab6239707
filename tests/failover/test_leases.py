"""Leases on the Redis server's clock, renewed by the supervisor: blind to skewed clocks
and to tasks that hold the GIL; a late attempt's completion is refused, and the run ends.

Real ``graflow worker`` commands, real signals (SIGKILL, SIGSTOP/SIGCONT), real Redis.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import leaseflows
import pytest
from fohelpers import FoPool, abandoned, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _starts(run: Any, count: int = 1, timeout: float = 20.0) -> list[list[Any]]:
    """The (pid, ppid, attempt) records of the first ``count`` starts, once there."""
    return list(wait_until(lambda: (run.channel.get("starts") or [])[count - 1 :] and run.channel.get("starts"),
                           timeout, f"{count} start(s)"))  # fmt: skip


def _command(pool: FoPool, supervisor_pid: int) -> Any:
    return next(p for p in pool.procs if p.pid == supervisor_pid)


def test_skewed_clocks_cause_no_false_failover_and_a_lost_worker_still_fails_over(redis_url: str) -> None:
    """One worker's clock 60 s behind, the other's 60 s ahead: a task four leases long runs
    once; when the worker running a task is killed, the other still redelivers it."""
    with FoPool(redis_url, 0, args=["--heartbeat", "1.5", "--import", "skew_clock"]) as pool:
        pool.start_worker(GRAFLOW_TEST_CLOCK_SKEW="-60")
        pool.wait_ready()
        run = pool.submit(leaseflows.quiet_nap(), initial_channel={"naps": [6.0]})
        _starts(run)  # on the worker whose clock is behind: the only one
        pool.start_worker(GRAFLOW_TEST_CLOCK_SKEW="60")  # its passes would reap a wall-clock lease at once
        pool.wait_ready()
        assert run.wait(timeout=30) == "OK", pool.logs_text()
        assert [s[2] for s in run.channel.get("starts")] == [1], pool.logs_text()
        assert not abandoned(pool)

        lost = pool.submit(leaseflows.quiet_nap(), initial_channel={"naps": [60.0, 0.1]})
        _, supervisor, _ = _starts(lost)[0]
        os.killpg(supervisor, signal.SIGKILL)  # the whole worker, as on host loss
        _command(pool, supervisor).wait(10)
        assert lost.wait(timeout=30) == "OK", pool.logs_text()
        starts = lost.channel.get("starts")
        assert [s[2] for s in starts] == [1, 2] and starts[1][1] != supervisor
        reasons = list(abandoned(pool).values())
        assert len(reasons) == 1 and "lost" in reasons[0], reasons


def test_a_task_holding_the_gil_for_30_s_runs_exactly_once_with_default_settings(redis_url: str) -> None:
    """``ctypes.PyDLL(None).sleep(30)`` keeps its process's GIL for 30 s, ten default leases:
    no thread of that process runs, but the supervisor renews the lease from its own."""
    with FoPool(redis_url, 2, args=["--log-level", "INFO"]) as pool:  # default heartbeat
        run = pool.submit(leaseflows.gil_holder(), initial_channel={"hold": 30})
        assert run.wait(timeout=90) == "HELD", pool.logs_text()
        assert [s[2] for s in run.channel.get("starts")] == [1], pool.logs_text()
        assert run.channel.get("ends") == [1] and run.channel.get("after") == [1]
        assert not abandoned(pool), pool.logs_text()


def test_a_late_completion_is_refused_and_the_redelivered_attempt_ends_the_run(redis_url: str) -> None:
    """A stopped worker's task is redelivered while no worker is free to run attempt 2; the
    stopped worker resumes and finishes attempt 1. Its completion is refused (attempt 2
    owns the task: one owner's effects only), attempt 2 runs, and the run ends: it never
    waits on an activation that no worker will run."""
    with FoPool(redis_url, 1) as pool:
        block = pool.submit(leaseflows.blocker(), initial_channel={"block": 120.0})
        _starts(block)  # the first worker is busy from here on
        paused = pool.start_worker()
        pool.wait_ready()
        run = pool.submit(leaseflows.quiet_nap(), initial_channel={"naps": [4.0, 0.5]})
        _, supervisor, _ = _starts(run)[0]
        assert supervisor == paused.pid
        os.killpg(paused.pid, signal.SIGSTOP)  # supervisor and worker: its lease runs out
        try:
            wait_until(lambda: run.status().pending == 1, 20, "the busy worker's supervisor to redeliver")
        finally:
            os.killpg(paused.pid, signal.SIGCONT)
        assert run.wait(timeout=30) == "OK", pool.logs_text()
        assert [s[2] for s in run.channel.get("starts")] == [1, 2], pool.logs_text()
        assert run.channel.get("after") == [1] and run.status().completed == 2
        assert f"(session {run.session_id[:8]}, attempt 1) was superseded" in pool.full_logs()
        assert block.status().state == "running"  # the other worker was busy all along
        block.cancel()
