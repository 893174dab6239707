"""A crashing task never takes down a worker pool; a worker restarted under its old name
starts at once (graflow issue 9, items 2 and 5).

Real ``graflow worker`` commands on a real Redis: a task that SIGKILLs its process is
handed back the moment its worker process dies and fails its run with
``WorkerLostError`` after ``--max-redeliveries``, while the supervisor restarts the
process and keeps serving; a worker process that dies at every start is a crash loop,
which stops the command with exit 1 and names it; and a worker SIGKILLed as a whole and
started again at once under the same ``--name`` takes its old registration over.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import foflows as flows
import pytest
from fohelpers import FoPool, abandoned, wait_until

from graflow.exceptions import WorkerLostError, WorkflowFailedError
from graflow.worker.takeover import Registration

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _full_log(pool: FoPool, index: int) -> str:
    with open(pool.logs[index], errors="replace") as f:
        return f.read()


def _attempts(run: Any, key: str = "starts", index: int = 2) -> list[int]:
    return [s[index] for s in run.channel.get(key) or []]


@pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning")  # the run's error
def test_sigkilling_task_fails_its_run_and_the_pool_keeps_serving(redis_url: str) -> None:
    # One command, two worker processes; a 30 s lease: the poison run can only fail
    # within the deadline through the supervisor's immediate hand-back, not the reaper.
    args = ["--concurrency", "2", "--heartbeat", "30", "--max-redeliveries", "2"]
    with FoPool(redis_url, 1, args=args) as pool:
        command = pool.procs[0]
        healthy = pool.submit(flows.long_running(), initial_channel={"naps": [4.0]})
        wait_until(lambda: healthy.channel.get("starts"), 15, "the healthy task to start")
        poison = pool.submit(flows.sigkill_poison())
        with pytest.raises(WorkflowFailedError) as failed:
            poison.wait(timeout=20)
        err = failed.value
        assert err.error_type == "WorkerLostError" and isinstance(err.cause, WorkerLostError), pool.logs_text()
        assert err.task_id == "poison" and "poison task" in str(err)
        assert _attempts(poison, index=1) == [1, 2, 3]  # 1 + max_redeliveries, then failed
        assert poison.status().state == "failed" and poison.channel.get("ran") == ["first"]
        assert healthy.wait(timeout=20) == "OK", pool.logs_text()
        assert _attempts(healthy) == [1]  # the healthy task was never disturbed
        # The supervisor survived its children's deaths and serves new runs.
        assert command.poll() is None, pool.logs_text()
        again = pool.submit(flows.long_running(), initial_channel={"naps": [0.1]})
        assert again.wait(timeout=20) == "OK", pool.logs_text()
        # Each lost attempt recorded once (the hand-back and the reaper never both act).
        wait_until(lambda: len(abandoned(pool)) == 3, 10, "the third lost attempt recorded")
        reasons = sorted(abandoned(pool).values())
        assert all(" died (signal 9); " in r for r in reasons), reasons
        assert sum("poison task, run failed" in r for r in reasons) == 1, reasons
        logs = _full_log(pool, 0)
        assert logs.count("died unexpectedly (signal 9)") == 3 and "restarting worker" in logs, logs


def test_a_worker_process_dying_at_every_start_is_a_crash_loop(redis_url: str) -> None:
    pool = FoPool(redis_url, 0, args=["--concurrency", "2", "--import", "crash_on_fork"])
    try:
        command = pool.start_worker()
        code = command.wait(60)  # 5 deaths of one slot, back-offs 0.5 + 1 + 2 + 4 s
        log = _full_log(pool, 0)
        assert code == 1, log
        assert "crash loop: worker" in log and "died 5 times within 60 s without finishing a job" in log, log
        assert "(last: signal 9)" in log, log
    finally:
        pool.stop()


def test_a_worker_restarted_under_its_name_after_sigkill_starts_at_once(redis_url: str) -> None:
    # A 30 s lease and rq's worker key (TTL 150 s here): only the take-over explains a
    # worker that starts and re-runs the task within the deadline.
    with FoPool(redis_url, 0, args=["--heartbeat", "30"]) as pool:
        name = f"{pool.prefix}-fixed"
        first = pool.start_worker(name)
        pool.wait_ready()
        run = pool.submit(flows.long_running(), initial_channel={"naps": [30.0, 0.1]})
        wait_until(lambda: run.channel.get("starts"), 15, "the task to start")
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker command: supervisor and worker
        first.wait(5)
        t_kill = time.time()
        again = pool.start_worker(name)
        starts = wait_until(lambda: len(run.channel.get("starts") or []) == 2 and run.channel.get("starts"),
                            15, "attempt 2 to start")  # fmt: skip
        assert again.poll() is None, pool.log_text(len(pool.procs) - 1)
        (_, old_parent, a1, _), (_, new_parent, a2, t2) = starts
        assert (a1, a2) == (1, 2) and old_parent == first.pid and new_parent == again.pid
        print(f"same-name restart: attempt 2 started {t2 - t_kill:.2f} s after the restart (lease 30 s)")
        assert run.wait(timeout=20) == "OK", pool.logs_text()
        log = _full_log(pool, len(pool.procs) - 1)
        assert "took over the registration of a dead worker with this name" in log, log
        reasons = list(abandoned(pool).values())
        assert len(reasons) == 1 and f"worker {name} lost (its process" in reasons[0], reasons


def test_a_registration_is_dead_only_when_proven() -> None:
    """What a worker about to register concludes about the holder of its name."""
    import socket

    from rq.utils import now, utcformat

    stamp = utcformat(now())
    here = {"hostname": socket.gethostname(), "birth": stamp, "last_heartbeat": stamp}
    mine = Registration("w", {**here, "pid": str(os.getpid())})
    assert "is now this process" in (mine.dead_because(10.0) or "")
    parent = Registration("w", {**here, "pid": str(os.getppid())})  # alive, started before birth
    assert parent.dead_because(10.0) is None
    # Its liveness key lapsed (no lease pass for a lease, on Redis's clock): dead, whatever the clocks say.
    assert "liveness lapsed" in (parent.dead_because(10.0, alive=False) or "")
    elsewhere = Registration("w", {**here, "hostname": "another-host", "pid": "1"})
    assert elsewhere.dead_because(10.0) is None  # a pid on another host proves nothing
    assert "liveness lapsed" in (elsewhere.dead_because(10.0, alive=False) or "")
    assert "registered its death" in (Registration("w", {**here, "death": stamp}).dead_because(10.0) or "")


def test_a_stop_signal_during_the_restart_back_off_stops_at_once(redis_url: str) -> None:
    pool = FoPool(redis_url, 0, args=["--concurrency", "2", "--import", "crash_on_fork", "--restart-backoff", "30"])
    try:
        command = pool.start_worker()
        wait_until(lambda: _full_log(pool, 0).count("in 30.0 s") == 2, 20, "both worker processes to wait 30 s")
        command.send_signal(signal.SIGTERM)
        assert command.wait(10) == 0, _full_log(pool, 0)  # stopped by a signal: restarts nothing
        assert "(restart 1)" not in _full_log(pool, 0)
    finally:
        pool.stop()
