"""Shared fixtures: a real Redis for every test that needs one, isolated by key prefix.

The Redis comes from ``GRAFLOW_TEST_REDIS_URL`` (CI exports it) or, when that is unset
or does not answer, from a private ``redis-server`` started on a free port for the
test session. Tests never flush a database: each gets its own key prefix and the
fixture deletes only that prefix's keys afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis that answers; a private server is started when needed."""
    url = os.environ.get("GRAFLOW_TEST_REDIS_URL", "")
    if url and _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis answers and redis-server is not installed; set GRAFLOW_TEST_REDIS_URL")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="graflow-test-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"private redis-server on port {port} did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"gftest{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[Any]:
    """A binary redis-py client; every key under this test's prefix is deleted afterwards."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()


@pytest.fixture
def monkeypatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """pytest's ``monkeypatch``, re-reading graflow's settings after every environment
    change: ``graflow.settings.current()`` reads the environment once and caches it, so a
    test's ``setenv``/``delenv`` (and their undoing) must be followed by ``reload()``."""
    from graflow import settings

    for name in ("setenv", "delenv"):
        change = getattr(monkeypatch, name)

        def changed(*args: Any, _change: Any = change, **kwargs: Any) -> None:
            _change(*args, **kwargs)
            settings.reload()

        setattr(monkeypatch, name, changed)
    settings.reload()
    yield monkeypatch
    monkeypatch.undo()
    settings.reload()
