"""Producers ride out Redis outages like workers do (graflow issue 9, item 7).

Workers reconnect within a second of a Redis restart; a producer waiting for the run
(``run.wait()``, ``graflow submit --wait``, ``graflow status --watch``) used to raise
``RedisUnavailableError`` (exit 3) during a 3 s outage although the run completed. Now
waiting reconnects with backoff for as long as its timeout allows, with one line when
Redis becomes unreachable and one when it is back. Refusals (bad credentials, an unknown
session) still raise at once.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import foflows as flows
import pytest
from fohelpers import HERE, FoPool, wait_until
from test_redis_restart import PrivateRedis
from workerpool import worker_env

from graflow.distributed import WorkflowRun
from graflow.exceptions import RedisUnavailableError
from graflow.redisconn import is_outage

pytestmark = [pytest.mark.redis, pytest.mark.slow]

UNREACHABLE = "is unreachable; the run goes on on the workers"
BACK = "is reachable again"
OUTAGE = 3.0  # seconds Redis is down


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server with AOF persistence (fsync always): the run's keys survive a restart."""
    redis_server = PrivateRedis(tmp_path, persistent=True)
    redis_server.start()
    try:
        yield redis_server
    finally:
        if redis_server.proc is not None and redis_server.proc.poll() is None:
            redis_server.proc.kill()
            redis_server.proc.wait(10)


def bounce(server: PrivateRedis) -> None:
    """Stop Redis (it flushes its AOF), keep it down ~3 s, start it on the same port and dir."""
    server.stop()
    time.sleep(OUTAGE)  # the outage itself, not synchronisation
    server.start()


def pool(server: PrivateRedis) -> FoPool:
    # A 10 s heartbeat (lease about 13 s) outlasts the outage: the task is not redelivered.
    return FoPool(server.url, 1, args=["--heartbeat", "10"], GRAFLOW_REDIS_RETRY_FOR="30")


def test_submit_wait_survives_a_redis_restart(server: PrivateRedis) -> None:
    with pool(server) as workers:
        cmd = [sys.executable, "-m", "graflow", "submit", "foflows:long_running", "--url", server.url,
               "--prefix", workers.prefix, "--queue", workers.queue, "--set", "naps=[7.0]",
               "--wait", "--timeout", "60"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=worker_env([str(HERE)]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        try:
            assert proc.stdout is not None
            session = proc.stdout.readline().strip()
            run = WorkflowRun.attach(session, redis_url=server.url, key_prefix=workers.prefix)
            wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
            bounce(server)  # slow sleeps 7 s: the run is under way all along
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0, f"{err}\n{workers.logs_text()}"
        assert out.strip() == '"OK"', out
        assert err.count(UNREACHABLE) == 1 and err.count(BACK) == 1, err
        assert len([line for line in err.splitlines() if "Redis at" in line]) == 2, err  # one line each
        assert [s[2] for s in run.channel.get("starts")] == [1]  # ran once: not redelivered


def test_run_wait_survives_a_redis_restart(server: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="graflow.distributed")
    with pool(server) as workers:
        run = workers.submit(flows.long_running(), initial_channel={"naps": [7.0]})
        wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
        outage = threading.Thread(target=bounce, args=(server,))
        outage.start()
        try:
            assert run.wait(timeout=60) == "OK", workers.logs_text()
        finally:
            outage.join()
    lines = [r.getMessage() for r in caplog.records if r.name == "graflow.distributed"]
    assert sum(UNREACHABLE in m for m in lines) == 1 and sum(BACK in m for m in lines) == 1, lines
    assert server.url.split("//")[1].split("/")[0] in next(m for m in lines if UNREACHABLE in m)


def test_status_watch_survives_a_redis_restart(server: PrivateRedis) -> None:
    with pool(server) as workers:
        run = workers.submit(flows.long_running(), initial_channel={"naps": [7.0]})
        wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
        cmd = [sys.executable, "-m", "graflow", "status", run.session_id, "--url", server.url,
               "--prefix", workers.prefix, "--json", "--watch"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # attached and watching: now lose Redis
            assert '"state": "running"' in first, first
            bounce(server)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, err
    assert '"state": "completed"' in out.splitlines()[-1], out
    assert err.count("is unreachable; the run goes on on the workers, still watching") == 1, err
    assert err.count(BACK) == 1, err


def test_wait_gives_up_at_its_timeout_while_redis_stays_down(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="graflow.distributed")
    with pool(server) as workers:
        run = workers.submit(flows.long_running(), initial_channel={"naps": [7.0]})
        wait_until(lambda: run.channel.get("starts"), 15, "slow to start")
        server.stop()
        try:
            with pytest.raises(RedisUnavailableError):
                run.wait(timeout=2)
        finally:
            server.start()
    assert sum(UNREACHABLE in r.getMessage() for r in caplog.records) == 1  # it retried, then gave up


def test_refusals_are_not_outages(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Bad credentials and an unknown session raise at once, with no outage line."""
    import redis

    from graflow.exceptions import SessionNotFoundError

    caplog.set_level(logging.WARNING, logger="graflow.distributed")
    host = redis_url.split("//")[1]
    bad = redis.Redis.from_url(f"redis://nobody:wrong-password@{host}")
    with pytest.raises(redis.RedisError) as caught:
        bad.ping()
    assert not is_outage(caught.value)
    run = WorkflowRun("no-such-session", client=bad, redis_url=f"redis://nobody:wrong-password@{host}")
    with pytest.raises(Exception) as waited:
        run.wait(timeout=30)
    assert not is_outage(waited.value), waited.value
    ghost = WorkflowRun("no-such-session", redis_url=redis_url)
    with pytest.raises(SessionNotFoundError):
        ghost.wait(timeout=30)
    assert not any("is unreachable" in r.getMessage() for r in caplog.records)
    closed = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
    with pytest.raises(redis.ConnectionError) as down:
        closed.ping()
    assert is_outage(down.value)
