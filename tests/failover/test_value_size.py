"""Oversized values get a size error, fast (graflow issue 9, item 8).

A value over ``GRAFLOW_MAX_VALUE_BYTES`` (a channel write, a task result) is refused
before it is sent, with ``ValueTooLargeError`` naming the key and the size. On a worker
it fails the attempt like an exception raised by the task: the retry policy applies, and
it is never redelivered as if Redis had been lost. Before, Redis closing the connection
on an oversized bulk read as "Broken pipe", was retried for a minute as an outage, and
the task ran again and again. When Redis's own ``proto-max-bulk-len`` is the lower limit,
the write still fails with ``ValueTooLargeError`` (Redis's limit named), not as an outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sizeflows
from fohelpers import FoPool
from test_redis_restart import PrivateRedis

from graflow.channels.encoding import decode_value
from graflow.exceptions import (
    ConfigError,
    GraflowRuntimeError,
    RetryLimitExceededError,
    ValueTooLargeError,
    WorkflowFailedError,
)
from graflow.limits import DEFAULT_MAX_VALUE_BYTES, max_value_bytes

pytestmark = [pytest.mark.redis]

LIMIT = 1_000_000
SIZE = 2_000_000  # over LIMIT, and over the 1 MB proto-max-bulk-len of the strict server
KEYS = {"channel": "big", "result": "produce.__result__"}


def size_error(exc: BaseException) -> ValueTooLargeError:
    """The ValueTooLargeError in ``exc``'s chain of causes (tasks' errors are wrapped)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if isinstance(seen, ValueTooLargeError) or seen is None:
            break
        seen = getattr(seen, "cause", None) or seen.__cause__
    assert isinstance(seen, ValueTooLargeError), repr(exc)
    return seen


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_MAX_VALUE_BYTES", str(LIMIT))


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in ((None, DEFAULT_MAX_VALUE_BYTES), ("", DEFAULT_MAX_VALUE_BYTES),
                          ("0", DEFAULT_MAX_VALUE_BYTES), ("1000000", 1_000_000)):  # fmt: skip
        if raw is None:
            monkeypatch.delenv("GRAFLOW_MAX_VALUE_BYTES", raising=False)
        else:
            monkeypatch.setenv("GRAFLOW_MAX_VALUE_BYTES", raw)
        assert max_value_bytes() == expected
    assert DEFAULT_MAX_VALUE_BYTES < 512 * 1024 * 1024
    monkeypatch.setenv("GRAFLOW_MAX_VALUE_BYTES", "64MB")
    with pytest.raises(ConfigError, match="GRAFLOW_MAX_VALUE_BYTES='64MB' is not a number of bytes; set"):
        max_value_bytes()
    # A worker refuses it at start-up (exit 2), before it takes any task.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFLOW_")}
    done = subprocess.run([sys.executable, "-m", "graflow", "worker", "--url", "redis://127.0.0.1:1/0", "--burst"],
                          env={**env, "GRAFLOW_MAX_VALUE_BYTES": "64MB"}, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and "GRAFLOW_MAX_VALUE_BYTES='64MB' is not a number of bytes — set" in done.stderr


@pytest.mark.usefixtures("limited")
@pytest.mark.parametrize("how", ["channel", "result"])
def test_in_process_the_attempt_fails_once_with_a_size_error(
    how: str, redis_client: Any, redis_url: str, key_prefix: str
) -> None:
    wf = sizeflows.oversized()
    channel: dict[str, Any] = {"size": SIZE, "how": how}
    with pytest.raises(GraflowRuntimeError) as caught:  # in-process wraps a task's error (no retries)
        wf.execute(channel_backend="redis", config={"url": redis_url, "key_prefix": key_prefix},
                   initial_channel=channel)  # fmt: skip
    err = size_error(caught.value)
    assert (err.key, err.limit) == (KEYS[how], LIMIT) and err.size > SIZE
    assert f"value for {KEYS[how]!r} is {err.size:,} bytes, over the limit of 1,000,000 bytes" in str(err)
    stored = {k.rsplit(b":", 1)[1]: k for k in redis_client.scan_iter(match=f"{key_prefix}*")}
    assert b"big" not in stored and b"after" not in stored  # nothing sent; the run stopped
    assert [decode_value(v) for v in redis_client.lrange(stored[b"attempts"], 0, -1)] == [1]  # ran once


@pytest.mark.slow
@pytest.mark.usefixtures("limited")
@pytest.mark.parametrize("how", ["channel", "result"])
def test_on_a_worker_the_run_fails_once_with_a_size_error(how: str, redis_url: str) -> None:
    with FoPool(redis_url, 1, GRAFLOW_MAX_VALUE_BYTES=str(LIMIT)) as pool:
        run = pool.submit(sizeflows.oversized(), initial_channel={"size": SIZE, "how": how})
        with pytest.raises(WorkflowFailedError) as caught:
            run.wait(timeout=30)
        attempts, after = run.channel.get("attempts"), run.channel.get("after")
        log = pool.logs_text()
    cause = size_error(caught.value)
    assert (cause.key, cause.limit) == (KEYS[how], LIMIT)
    assert f"value for {KEYS[how]!r}" in str(caught.value) and "over the limit of 1,000,000 bytes" in str(caught.value)
    assert attempts == [1], log  # ran exactly once: not redelivered, not retried
    assert caught.value.task_id == "produce" and after is None  # the run failed there
    assert "lost Redis" not in log, log


@pytest.mark.slow
@pytest.mark.usefixtures("limited")
def test_on_a_worker_the_retry_policy_applies(redis_url: str) -> None:
    with FoPool(redis_url, 1, GRAFLOW_MAX_VALUE_BYTES=str(LIMIT)) as pool:
        run = pool.submit(sizeflows.oversized(max_retries=1), initial_channel={"size": SIZE, "how": "result"})
        with pytest.raises(WorkflowFailedError) as caught:
            run.wait(timeout=30)
        attempts = run.channel.get("attempts")
    assert isinstance(caught.value.cause, RetryLimitExceededError), caught.value
    assert "ValueTooLargeError" in str(caught.value) and "produce.__result__" in str(caught.value)
    assert attempts == [1, 2]


@pytest.fixture
def strict_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server whose proto-max-bulk-len is 1 MB (the least Redis allows)."""
    server = PrivateRedis(tmp_path, persistent=False)
    server.persistence += ["--proto-max-bulk-len", "1mb"]
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["channel", "result"])
def test_redis_refusing_a_value_is_not_an_outage(
    how: str, strict_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our limit (8 MB) lets 2 MB through; Redis (1 MB) closes the connection on it. The
    run fails with ValueTooLargeError naming Redis's limit, the task ran once, and it is
    not retried for GRAFLOW_REDIS_RETRY_FOR (60 s) as an outage: wait() times out at 30."""
    monkeypatch.setenv("GRAFLOW_MAX_VALUE_BYTES", "8000000")
    with FoPool(strict_redis.url, 1, GRAFLOW_MAX_VALUE_BYTES="8000000") as pool:
        run = pool.submit(sizeflows.oversized(), initial_channel={"size": SIZE, "how": how})
        with pytest.raises(WorkflowFailedError) as caught:
            run.wait(timeout=30)
        attempts = run.channel.get("attempts")
        log = pool.logs_text()
    cause = size_error(caught.value)
    assert (cause.key, cause.limit) == (KEYS[how], 1024 * 1024)
    assert "over Redis's proto-max-bulk-len of 1,048,576 bytes" in str(cause)
    assert attempts == [1], log
    assert "lost Redis" not in log and "Redis unreachable" not in log, log
