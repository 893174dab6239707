"""Redis restarts under a running pool: no lost work (see docs/failover.md).

A private ``redis-server`` (free port, its own directory) is stopped with SIGTERM while
a run is in progress and restarted on the same port and directory. With AOF
persistence (``appendfsync always``) the workers reconnect (rq's loop retries, graflow's
session steps retry with back-off) and the run completes, every task completed once.
Without persistence the session is gone: the producer's handle raises
``SessionNotFoundError`` and the worker that finishes the lost run's task says so.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import foflows as flows
import pytest
from fohelpers import FoPool, done_markers, ran_counts, store_of, wait_until

from graflow.distributed import WorkflowRun
from graflow.exceptions import SessionNotFoundError

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class PrivateRedis:
    """A ``redis-server`` of this test only, restartable on the same port and directory."""

    def __init__(self, workdir: Path, persistent: bool) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.workdir = workdir
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always", "--save", ""] if persistent
                            else ["--appendonly", "no", "--save", ""])  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), *self.persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, f"redis-server on port {self.port}")
        client.close()

    def stop(self) -> None:
        """SIGTERM and wait: Redis flushes its AOF and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)


@pytest.fixture
def private_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, persistent=request.param)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@pytest.mark.parametrize("private_redis", [True], indirect=True)
def test_workers_reconnect_and_the_run_completes(private_redis: PrivateRedis) -> None:
    members, tail = 60, 8
    expected = {"start", *(f"m{i}" for i in range(members)), *(f"t{i}" for i in range(tail))}
    with FoPool(private_redis.url, 2, GRAFLOW_REDIS_RETRY_FOR="30") as pool:
        run = pool.submit(flows.fan(members, tail, nap=0.05))
        wait_until(lambda: len(run.channel.get("ran") or []) >= 10, 15, "the run to be under way")
        private_redis.stop()
        down_at = time.monotonic()
        time.sleep(1.0)
        private_redis.start()
        print(f"Redis down for {time.monotonic() - down_at:.1f} s")
        again = WorkflowRun.attach(run.session_id, redis_url=private_redis.url, key_prefix=pool.prefix)
        try:
            assert again.wait(timeout=45) == f"t{tail - 1}"
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{pool.logs_text()}") from exc
        status = again.status()
        completed = store_of(again).completed()
        ran = ran_counts(again)
        done = done_markers(again)
        assert all(p.poll() is None for p in pool.procs), pool.logs_text()  # nobody gave up
        # Delayed retries still run: rq's scheduler process (which a Redis outage kills) is back.
        retried = pool.submit(flows.flaky_once())
        try:
            assert retried.wait(timeout=15) == "retried"
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{pool.logs_text()}") from exc
    assert status.state == "completed" and status.completed == len(completed) == members + tail + 2
    assert set(completed) >= expected and len(set(completed)) == len(completed)
    assert int(status.extra["steps"]) == len(completed) == len(done)
    assert set(ran) == expected and max(ran.values()) <= 2, ran.most_common(3)


@pytest.mark.parametrize("private_redis", [True], indirect=True)
def test_a_task_cut_off_by_the_outage_is_redelivered(private_redis: PrivateRedis) -> None:
    """A task body that needs Redis while it is down did not fail on its own: it runs
    again (attempt 2) once Redis is back, instead of failing the run."""
    with FoPool(private_redis.url, 1, GRAFLOW_REDIS_RETRY_FOR="30") as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [1.0, 0.1]})
        wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
        private_redis.stop()
        time.sleep(1.5)  # slow wakes up after 1 s and writes to the channel: Redis is down
        private_redis.start()
        again = WorkflowRun.attach(run.session_id, redis_url=private_redis.url, key_prefix=pool.prefix)
        try:
            assert again.wait(timeout=20) == "OK"
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{pool.logs_text()}") from exc
        assert [s[2] for s in again.channel.get("starts")] == [1, 2]
        assert again.channel.get("ends") == [2] and again.status().completed == 2
        assert "lost Redis" in pool.log_text(0)


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_without_persistence_the_session_is_gone(private_redis: PrivateRedis) -> None:
    with FoPool(private_redis.url, 2, GRAFLOW_REDIS_RETRY_FOR="30") as pool:
        run = pool.submit(flows.long_running(), initial_channel={"naps": [2.5]})
        starts = wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
        supervisor = starts[0][1]
        index = [p.pid for p in pool.procs].index(supervisor)
        private_redis.stop()
        private_redis.start()  # empty: nothing was persisted
        with pytest.raises(SessionNotFoundError):
            run.status()
        with pytest.raises(SessionNotFoundError):
            run.wait(timeout=5)
        with pytest.raises(SessionNotFoundError):
            WorkflowRun.attach(run.session_id, redis_url=private_redis.url, key_prefix=pool.prefix)
        # The worker finishes the task, finds no session to commit to, and says so.
        try:
            wait_until(lambda: f"session {run.session_id} does not exist" in pool.log_text(index), 15,
                       "the worker to log the lost session")  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pool.logs_text()}") from None
        log = pool.log_text(index)
        assert "does not exist" in log, log
        assert all(p.poll() is None for p in pool.procs), pool.logs_text()
        # Nothing of the lost run is left without a TTL (its late channel writes expire too).
        client = run.client
        lost = [k for k in client.scan_iter(match=f"{pool.prefix}*") if client.ttl(k) == -1]
        assert not lost, lost


@pytest.mark.parametrize("private_redis", [True], indirect=True)
def test_a_worker_lost_during_an_outage_takes_its_scheduler_lock_back(private_redis: PrivateRedis) -> None:
    """The worker process running rq's scheduler is killed with it while Redis is down:
    nothing releases the scheduler lock, which the persisted Redis keeps for a minute. The process the
    supervisor restarts under the same name holds that lock at once, so a delayed retry
    still moves within seconds (rq's random scheduler names left it stuck until expiry)."""
    import os

    import redis

    from graflow.distributed.rqapi import RQScheduler

    with FoPool(private_redis.url, 1, GRAFLOW_REDIS_RETRY_FOR="30") as pool:
        client = redis.Redis.from_url(private_redis.url)
        lock = RQScheduler.get_locking_key(pool.queue)
        wait_until(lambda: client.exists(lock), 15, "the scheduler lock")
        holder = client.get(lock)
        def children(pid: int) -> list[int]:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(x) for x in f.read().split()]

        [worker_pid] = children(pool.procs[0].pid)
        [scheduler_pid] = children(worker_pid)
        private_redis.stop()
        for pid in (scheduler_pid, worker_pid):  # killed outright: nothing releases the lock
            os.kill(pid, signal.SIGKILL)
        private_redis.start()
        assert client.get(lock) == holder and client.ttl(lock) > 30  # kept by the AOF, unreleased
        try:
            retried = pool.submit(flows.flaky_once())
            assert retried.wait(timeout=20) == "retried"
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{pool.logs_text()}") from exc
        assert client.get(lock) == holder  # the restarted process's scheduler, under the same name
        client.close()
