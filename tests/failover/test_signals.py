"""Signals, horse death, poison tasks and the failover example E7 (see docs/failover.md).

Real worker processes, real signals: a first SIGTERM lets the running task finish
(exit 0); a second hands it back as attempt 2 (exit 1); a killed ``--fork`` work horse
is redelivered at once, long before its lease would expire; a task that kills its
worker every time fails the run with ``WorkerLostError`` after ``--max-redeliveries``;
and E7 runs as the contract writes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import foflows as flows
import pytest
from fohelpers import FoPool, abandoned, orphans, ran_counts, wait_until
from workerpool import worker_env

from graflow import task, workflow
from graflow.exceptions import WorkerLostError, WorkflowFailedError

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _first_start(run: Any, timeout: float = 15.0) -> list[Any]:
    starts = wait_until(lambda: run.channel.get("starts"), timeout, "the task to start")
    return list(starts[0])


def _worker_of(pool: FoPool, pid: int) -> subprocess.Popen[bytes]:
    """The worker command (its supervisor process) with this pid."""
    for proc in pool.procs:
        if proc.pid == pid:
            return proc
    raise AssertionError(f"no worker command with pid {pid}: {[p.pid for p in pool.procs]}")


def test_first_sigterm_finishes_the_running_task_and_exits_0(redis_url: str) -> None:
    with FoPool(redis_url, 2) as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [3.0]})
        _, supervisor, _, _ = _first_start(run)  # in-process: the worker's parent
        proc = _worker_of(pool, supervisor)
        proc.send_signal(signal.SIGTERM)  # the supervisor forwards it to its worker
        assert run.wait(timeout=20) == "OK", pool.logs_text()
        assert proc.wait(15) == 0
        assert run.channel.get("ends") == [1] and len(run.channel.get("starts")) == 1
        assert ran_counts(run) == {"done": 1} and run.status().completed == 2
        assert not abandoned(pool)


def test_second_sigterm_hands_the_task_back_as_attempt_2(redis_url: str) -> None:
    with FoPool(redis_url, 2) as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [3.0, 0.1]})
        _, supervisor, attempt, _ = _first_start(run)
        assert attempt == 1
        proc = _worker_of(pool, supervisor)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.2)  # a repeat within 1 s counts once (rq's guard against double Ctrl+C)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 1
        assert run.wait(timeout=20) == "OK", pool.logs_text()
        starts = run.channel.get("starts")
        assert [s[2] for s in starts] == [1, 2] and starts[1][1] != supervisor  # another worker
        assert run.channel.get("ends") == [2]  # attempt 1 was stopped, not finished
        assert run.status().completed == 2 and ran_counts(run) == {"done": 1}
        reasons = list(abandoned(pool).values())
        assert len(reasons) == 1 and "second signal" in reasons[0] and "attempt 2" in reasons[0], reasons


def test_fork_horse_death_is_redelivered_at_once(redis_url: str) -> None:
    # A 10 s lease: a redelivery well under it can only come from the horse-death path.
    with FoPool(redis_url, 2, args=["--heartbeat", "10", "--fork"]) as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [20.0, 0.1]})
        horse, worker_pid, attempt, _ = _first_start(run)
        assert attempt == 1 and horse != worker_pid  # the task runs in a forked work horse
        t_kill = time.time()
        os.kill(horse, signal.SIGKILL)
        assert run.wait(timeout=15) == "OK", pool.logs_text()
        starts = run.channel.get("starts")
        assert [s[2] for s in starts] == [1, 2]
        delay = starts[1][3] - t_kill
        print(f"horse death → attempt 2 started after {delay:.2f} s (lease 10 s)")
        assert delay < 2.0
        assert all(p.poll() is None for p in pool.procs)  # the workers survived their horse
        assert run.status().completed == 2
        reasons = list(abandoned(pool).values())
        assert len(reasons) == 1 and "lost its work horse" in reasons[0] and "attempt 2" in reasons[0]


@pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning")  # the run's error
def test_poison_task_fails_the_run_after_max_redeliveries(redis_url: str) -> None:
    with FoPool(redis_url, 2, args=["--heartbeat", "1.5", "--max-redeliveries", "2"]) as pool:
        run = pool.submit(flows.poison())
        with pytest.raises(WorkflowFailedError) as failed:
            run.wait(timeout=30)
        err = failed.value
        assert err.error_type == "WorkerLostError" and isinstance(err.cause, WorkerLostError)
        assert err.task_id == "poison" and "poison task" in str(err)
        assert [s[1] for s in run.channel.get("starts")] == [1, 2, 3]  # 1 + max_redeliveries
        assert ran_counts(run) == {"first": 1} and run.status().state == "failed"
        # Each death cost one worker process, which its supervisor restarted.
        assert all(p.poll() is None for p in pool.procs), pool.logs_text()
        assert pool.full_logs().count("died unexpectedly (exit code 3)") == 3, pool.full_logs()
        # The redelivery step fails the run first, then records the lost job in rq's
        # failed registry (that order keeps the lease for the next pass if the redeliverer
        # dies in between): the run's failure does not mean the record is written yet.
        wait_until(lambda: len(abandoned(pool)) == 3, 10, "the third lost attempt recorded")
        reasons = sorted(abandoned(pool).values())
        assert len(reasons) == 3 and sum("poison task, run failed" in r for r in reasons) == 1, reasons


def test_last_allowed_attempt_that_completed_is_not_failed_as_poison(redis_url: str, tmp_path: Any) -> None:
    """Attempt 1 + max_redeliveries completes, and its worker dies before the hand-over:
    the task is done, not poison; the redelivery hands its successor over."""
    once = tmp_path / "once"
    once.write_text("disarmed until survivor's attempt 3 arms it\n")
    env = {"GRAFLOW_CRASH_AT": "commit.before_handover", "GRAFLOW_CRASH_ONCE_FILE": str(once),
           "FO_ARM_AT": "survivor"}  # fmt: skip
    with FoPool(redis_url, 2, args=["--heartbeat", "1.5", "--max-redeliveries", "2"], **env) as pool:
        run = pool.submit(flows.last_chance())
        assert run.wait(timeout=30) == "SURVIVED", pool.logs_text()
        assert once.read_text().startswith("commit.before_handover")
        assert [s[1] for s in run.channel.get("starts")] == [1, 2, 3]
        assert run.status().completed == 3 and ran_counts(run) == {"first": 1, "after": 1}
        wait_until(lambda: len(abandoned(pool)) == 3, 10, "the third lost attempt recorded")
        reasons = sorted(abandoned(pool).values())
        assert all(p.poll() is None for p in pool.procs), pool.logs_text()  # worker processes restarted
        assert sum("activation already done" in r for r in reasons) == 1, reasons
        assert not any("poison" in r for r in reasons), reasons


def test_a_worker_killed_alone_is_restarted_and_leaves_no_process_behind(redis_url: str) -> None:
    """Only the worker process dies (a crash, the OOM killer): its supervisor hands the
    task back at once (long before the 10 s lease) and restarts the worker, and rq's
    scheduler process, which the dead worker started, stops instead of living on."""
    with FoPool(redis_url, 1, args=["--heartbeat", "10"]) as pool:  # alone: it runs the scheduler
        run = pool.submit(flows.long_running(), initial_channel={"naps": [20.0, 0.1]})
        worker, supervisor, _, _ = _first_start(run)
        os.kill(worker, signal.SIGKILL)
        assert run.wait(timeout=8) == "OK", pool.logs_text()
        (_, _, a1, _), (pid2, parent2, a2, _) = run.channel.get("starts")
        assert (a1, a2) == (1, 2) and parent2 == supervisor and pid2 != worker  # the restarted worker
        assert pool.procs[0].poll() is None
        wait_until(lambda: not orphans(supervisor), 5, "the dead worker's scheduler process to stop")
        reasons = list(abandoned(pool).values())
        assert len(reasons) == 1 and " died (signal 9); re-enqueued as attempt 2" in reasons[0], reasons


def test_a_lost_attempt_leaves_no_rq_execution_behind(redis_url: str) -> None:
    """rq deletes a job's executions when the job ends; for a lost worker's job the reaper
    does, so nothing of the lost attempt outlives its failed-registry entry."""
    with FoPool(redis_url, 2) as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [20.0, 0.1]})
        _, supervisor, _, _ = _first_start(run)
        proc = _worker_of(pool, supervisor)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert run.wait(timeout=30) == "OK", pool.logs_text()
        lost = list(abandoned(pool))
        assert len(lost) == 1, lost
        left = [k for k in run.client.scan_iter(match=f"rq:execution*:{lost[0]}*", count=1000)]
        assert not left, left
        assert [s[2] for s in run.channel.get("starts")] == [1, 2]


def test_rqs_own_cleanup_never_abandons_a_graflow_lease(redis_url: str) -> None:
    """rq's registry clean-up (``rq`` CLI, a dashboard, a plain rq worker) judges leases by
    the clock of whatever host runs it; graflow's leases are on the Redis server's clock and
    out of its reach. A killed worker's task waits for graflow's reaper: the next worker
    that starts redelivers it."""
    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    from graflow import keys

    with FoPool(redis_url, 1) as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [20.0, 0.1]})
        _first_start(run)
        os.killpg(pool.procs[0].pid, signal.SIGKILL)  # no worker left: no reaper either
        pool.procs[0].wait(5)
        leases = keys.leases(pool.prefix)

        def expired() -> bool:
            seconds, micros = run.client.time()
            return bool(run.client.zrangebyscore(leases, "-inf", seconds + micros / 1e6))

        wait_until(expired, 10, "the lease to expire on the Redis clock")
        registry = StartedJobRegistry(pool.queue, connection=run.client, serializer=JSONSerializer)
        registry.cleanup(int(time.time()) + 3600)  # as `rq` would, even an hour ahead
        assert len(registry.get_job_ids()) == 1 and run.status().pending == 0  # still running, to rq
        pool.start_worker()
        assert run.wait(timeout=30) == "OK", pool.logs_text()
        assert [s[2] for s in run.channel.get("starts")] == [1, 2] and run.status().completed == 2


def test_e7_failover(redis_url: str) -> None:
    """E7 as the contract writes it; queue, prefix and heartbeat are this test's own."""
    URL = redis_url
    HEARTBEAT = 1.5
    probe = FoPool(redis_url, 0)  # only for its private prefix and its clean-up
    env = worker_env()
    pool = [subprocess.Popen([sys.executable, "-m", "graflow", "worker", "--url", URL, "--queue", probe.queue,
                              "--prefix", probe.prefix, "--heartbeat", str(HEARTBEAT)],
                             start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2)]  # fmt: skip
    try:
        with workflow("failover") as wf:

            @task(inject_context=True)
            def slow(ctx):  # type: ignore[no-untyped-def]
                ctx.get_channel().append("starts", (os.getpid(), os.getppid(), ctx.attempt, time.time()))
                time.sleep(20)
                return "ok"

            @task
            def done(slow: str) -> str:
                return slow.upper()

            slow >> done
            run = wf.submit(URL, queue=probe.queue, key_prefix=probe.prefix)
        deadline = time.monotonic() + 20
        while not run.channel.get("starts"):
            assert time.monotonic() < deadline, "slow never started"
            time.sleep(0.05)
        horse, parent, _, _ = run.channel.get("starts")[0]
        t_kill = time.time()  # lose the whole worker, as on host loss: its group and its horse
        os.killpg(os.getpgid(parent), signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        assert run.wait(timeout=60) == "OK"
        (_, p1, a1, _), (_, p2, a2, t2) = run.channel.get("starts")
        print(f"E7: attempt 2 started {t2 - t_kill:.2f} s after the kill (heartbeat {HEARTBEAT} s)")
        assert (a1, a2) == (1, 2) and p1 != p2 and t2 - t_kill < 4 / 3 * HEARTBEAT + 2
        assert run.status().completed == 2  # slow and done, once each
        reasons = list(abandoned(probe).values())
        assert len(reasons) == 1 and reasons[0].startswith("abandoned: worker ") and "attempt 2" in reasons[0]
        for w in pool:
            w.terminate()
    finally:
        for w in pool:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
            w.wait(10)
        probe.cleanup()
