"""Worker settings, the upstream flag mapping, TLS, log redaction, and the lease and
hand-back mechanics of ``GraflowWorker`` driven directly (no subprocess)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis
from worker_helpers import enqueue, rq_queue, started_leases

from graflow.exceptions import ConfigError
from graflow.worker.handback import handback_id
from graflow.worker.main import build_parser, settings_from_args
from graflow.worker.runner import RedactFilter
from graflow.worker.settings import DEFAULT_HEARTBEAT, WorkerSettings

S = WorkerSettings.from_env_and_args


def test_url_precedence_and_password_fill() -> None:
    assert S(env={}).url == "redis://localhost:6379/0"
    env = {"REDIS_URL": "redis://r:1/2", "GRAFLOW_REDIS_URL": "redis://g:1/3"}
    assert S(env=env).url == "redis://g:1/3"
    assert S(env={"REDIS_URL": "redis://r:1/2"}).url == "redis://r:1/2"
    assert S(url="redis://flag:1/4", env=env).url == "redis://flag:1/4"
    filled = S(url="redis://h:7/1", env={"REDIS_PASSWORD": "p@ss/w"})
    assert filled.url == "redis://:p%40ss%2Fw@h:7/1" and filled.password == "p@ss/w"
    user = S(url="redis://bob@h:7/1", env={"REDIS_PASSWORD": "pw"})
    assert user.url == "redis://bob:pw@h:7/1"
    kept = S(url="redis://:own@h:7/1", env={"REDIS_PASSWORD": "other"})
    assert kept.password == "own"
    assert "own" not in repr(kept) and kept.display_url == "redis://:***@h:7/1"
    with pytest.raises(ConfigError):
        S(url="http://h:1", env={})


def test_queues_prefix_and_numbers() -> None:
    s = S(
        env={
            "GRAFLOW_KEY_PREFIX": "px",
            "GRAFLOW_HEARTBEAT": "4.5",
            "GRAFLOW_MAX_REDELIVERIES": "7",
        }
    )
    assert s.prefix == "px" and s.queues == ("px",)
    assert s.heartbeat == 4.5 and s.max_redeliveries == 7
    assert s.concurrency == 1 and not s.burst and not s.fork and s.log_level == "INFO"
    s = S(
        queues=["hi", "lo", "hi"],
        prefix="p",
        heartbeat=2,
        max_redeliveries=0,
        env={"GRAFLOW_HEARTBEAT": "9"},
    )
    assert (
        s.queues == ("hi", "lo")
        and s.prefix == "p"
        and s.heartbeat == 2.0
        and s.max_redeliveries == 0
    )
    assert S(env={}).heartbeat == DEFAULT_HEARTBEAT == 3.0 and S(env={}).max_redeliveries == 3
    assert S(name="w", concurrency=3, env={}).worker_names() == ["w-1", "w-2", "w-3"]
    assert S(name="w", env={}).worker_names() == ["w"]
    assert S(env={}).name  # host-pid by default
    for bad in (
        {"concurrency": 0},
        {"heartbeat": 0.1},
        {"max_redeliveries": -1},
        {"log_level": "LOUD"},
        {"queues": [" x"]},
    ):
        with pytest.raises(ConfigError):
            S(env={}, **bad)
    with pytest.raises(ConfigError, match="GRAFLOW_HEARTBEAT"):
        S(env={"GRAFLOW_HEARTBEAT": "soon"})


def test_queue_concurrency_and_heartbeat_from_env() -> None:
    """A container configures the worker by environment alone (worker/Dockerfile, compose)."""
    env = {
        "GRAFLOW_QUEUE": "high, low,high",
        "GRAFLOW_CONCURRENCY": "3",
        "GRAFLOW_HEARTBEAT": "6",
        "GRAFLOW_KEY_PREFIX": "px",
    }
    s = S(env=env)
    assert s.queues == ("high", "low") and s.prefix == "px"
    assert s.concurrency == 3 and isinstance(s.concurrency, int) and s.heartbeat == 6.0
    # flags beat the variables
    s = S(queues=["only"], concurrency=2, heartbeat=3, env=env)
    assert s.queues == ("only",) and s.concurrency == 2 and s.heartbeat == 3.0
    # unset or empty: the prefix is the queue, one process (compose passes empty values)
    for blank in ({}, {"GRAFLOW_QUEUE": "", "GRAFLOW_CONCURRENCY": "", "GRAFLOW_HEARTBEAT": " "}):
        s = S(env={"GRAFLOW_KEY_PREFIX": "px", **blank})
        assert s.queues == ("px",) and s.concurrency == 1 and s.heartbeat == 3.0
    assert S(env={"GRAFLOW_QUEUE": " , "}).queues == ("graflow",)
    for bad in ("0", "-1", "2.5", "many"):
        with pytest.raises(ConfigError, match="GRAFLOW_CONCURRENCY"):
            S(env={"GRAFLOW_CONCURRENCY": bad})


def test_cli_reads_queue_and_concurrency_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``graflow worker`` with no flags, as the container's ENTRYPOINT runs it."""
    from graflow.cli import main
    from graflow.cli.common import default_queue

    captured: list[WorkerSettings] = []
    monkeypatch.setattr("graflow.worker.runner.run", lambda s: captured.append(s) or 0)
    monkeypatch.setenv("GRAFLOW_QUEUE", "jobs,spare")
    monkeypatch.setenv("GRAFLOW_CONCURRENCY", "2")
    monkeypatch.setenv("GRAFLOW_HEARTBEAT", "4")
    monkeypatch.setenv("GRAFLOW_KEY_PREFIX", "kp")
    assert main(["worker"]) == 0
    (s,) = captured
    assert s.queues == ("jobs", "spare") and s.concurrency == 2 and s.heartbeat == 4.0
    assert s.prefix == "kp"
    assert default_queue("kp") == "jobs"  # graflow submit sends where the pool listens
    monkeypatch.delenv("GRAFLOW_QUEUE")
    assert default_queue("kp") == "kp"


def test_rediss_url_builds_an_ssl_connection() -> None:
    settings = S(url="rediss://:pw@cache.example.invalid:6380/2", env={})
    assert settings.ssl
    client = settings.connect()  # connects lazily: no server needed
    pool = client.connection_pool
    assert issubclass(pool.connection_class, redis.connection.SSLConnection)
    assert pool.connection_kwargs["host"] == "cache.example.invalid"
    assert pool.connection_kwargs["port"] == 6380 and pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    assert pool.connection_kwargs["decode_responses"] is False
    plain = S(url="redis://h:1/0", env={}).connect().connection_pool
    assert not issubclass(plain.connection_class, redis.connection.SSLConnection)


def _main_settings(argv: list[str], env: dict[str, str]) -> WorkerSettings:
    return settings_from_args(build_parser(env).parse_args(argv), env)


def test_upstream_main_flags_and_env() -> None:
    import os

    s = _main_settings([], {})
    assert (
        s.url == "redis://localhost:6379/0" and s.queues == ("graflow",) and s.prefix == "graflow"
    )
    # Upstream's worker runs 4 tasks at once by default; so does its entry point here.
    assert s.name == f"worker_{os.getpid()}" and s.concurrency == 4 and s.log_level == "INFO"
    env = {
        "REDIS_HOST": "rh", "REDIS_PORT": "7000", "REDIS_DB": "5", "REDIS_KEY_PREFIX": "kp",
        "WORKER_ID": "w9", "LOG_LEVEL": "debug", "MAX_CONCURRENT_TASKS": "3", "POLL_INTERVAL": "2",
        "REDIS_PASSWORD": "pw",
    }  # fmt: skip
    s = _main_settings([], env)
    assert s.url == "redis://:pw@rh:7000/5" and s.queues == ("kp",) and s.prefix == "kp"
    assert s.name == "w9" and s.log_level == "DEBUG" and s.concurrency == 3
    s = _main_settings(
        ["--redis-host", "fh", "--redis-key-prefix", "fp", "--max-concurrent-tasks", "2"], env
    )
    assert s.url == "redis://:pw@fh:7000/5" and s.queues == ("fp",) and s.concurrency == 2
    s = _main_settings(["--redis-host", "ignored"], {**env, "REDIS_URL": "rediss://u@tls:6390/1"})
    assert s.url == "rediss://u:pw@tls:6390/1" and s.ssl


def test_redact_filter_masks_passwords() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "to %s with %s",
        ("redis://u:topsecret@h:1/0", "topsecret"),
        None,
    )
    RedactFilter(["topsecret"]).filter(record)
    assert "topsecret" not in record.getMessage()
    assert "redis://u:***@h:1/0" in record.getMessage()


def test_handback_ids() -> None:
    assert handback_id("gf-s-x-a1") == "gf-s-x-a1-h1"
    assert handback_id("gf-s-x-a1-h1") == "gf-s-x-a1-h2"
    assert handback_id("j-h9") == "j-h10"


@pytest.mark.redis
def test_lease_written_at_start_refreshed_by_beat_and_handed_back(
    redis_client: Any, queue_name: str
) -> None:
    from rq.queue import Queue

    from graflow.worker.rq_worker import GraflowWorker

    job_id = f"{queue_name}-j"
    enqueue(redis_client, queue_name, "record", f"{queue_name}:out", job_id=job_id)
    worker = GraflowWorker(
        [queue_name], name=f"{queue_name}-direct", connection=redis_client, heartbeat=2.0
    )
    worker.register_birth()
    try:
        job, _queue = Queue.dequeue_any(
            worker.queues, None, connection=redis_client, serializer=worker.serializer
        )
        worker.prepare_execution(job)
        assert worker.current_job is job
        first = started_leases(redis_client, queue_name)[job_id]
        assert abs(first - (time.time() + 2.0)) < 0.5  # rq would write +inf for job_timeout=-1
        assert redis_client.ttl(worker.execution.key) > 2  # bookkeeping outlives the lease
        worker.beat()
        assert started_leases(redis_client, queue_name)[job_id] >= first
        new = worker.hand_back(job)
    finally:
        worker.register_death()
    assert new.id == f"{job_id}-h1" and new.func_name == "jobfuncs.record"
    q = rq_queue(redis_client, queue_name)
    assert q.job_ids == [new.id] and q.failed_job_registry.get_job_ids() == [job_id]
    assert not started_leases(redis_client, queue_name)
    assert "handed back" in q.fetch_job(job_id).latest_result().exc_string
    assert q.fetch_job(new.id).failure_ttl == 7 * 24 * 3600
