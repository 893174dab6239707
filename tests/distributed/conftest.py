"""Fixtures of the distributed-mode tests: worker pools, CLI subprocesses, polling.

Every pool serves a private queue under a private key prefix (``tests/workerpool.py``).
Workers get ``GRAFLOW_SESSION_TTL=300`` so the TTL of a finished session is visible
and distinct from the 7-day default. Tear-down deletes the prefix's keys and the rq
job keys of its sessions (failed jobs keep their hash for ``failure_ttl``); the shared
Redis is never flushed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from workerpool import (
    Pool,
    wait_until,  # noqa: F401  (shared test helper)
    worker_env,
)

HERE = Path(__file__).resolve().parent
SESSION_TTL = 300
#: Variables a test process may have that must not leak into workers or CLIs.
_SCRUB = ("GRAFLOW_SECRET_KEY", "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_KEY_PREFIX", "GRAFLOW_REDIS_URL",
          "REDIS_URL", "REDIS_PASSWORD", "GRAFLOW_SESSION_TTL", "GRAFLOW_CRASH_AT")  # fmt: skip

pytestmark = [pytest.mark.redis, pytest.mark.slow]




def child_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI or producer subprocess: repo + this folder on PYTHONPATH."""
    env = worker_env([str(HERE)])
    for name in _SCRUB:
        env.pop(name, None)
    env.update(extra)
    return env


def graflow(*args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m graflow ARGS`` to completion; text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "graflow", *args], env=child_env(**env), capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def graflow_popen(*args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``python -m graflow ARGS`` in the background (stdout/stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "graflow", *args], env=child_env(**env), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


class DistPool(Pool):
    """A ``Pool`` that also removes the rq job keys of its sessions (failed jobs keep them)."""

    def __init__(self, redis_url: str, size: int = 2, cwd: str | None = None, **env: str) -> None:
        env.setdefault("GRAFLOW_SESSION_TTL", str(SESSION_TTL))
        super().__init__(redis_url, size, extra_paths=[str(HERE)], cwd=cwd, **env)
        self.started = False

    def start_worker(self, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """As ``Pool.start_worker``, minus the test process's own graflow settings."""
        import tempfile

        cmd = [sys.executable, "-m", "graflow", "worker", "--url", self.redis_url, "--queue", self.queue,
               "--prefix", self.prefix, "--name", name or f"{self.prefix}-w{len(self.procs)}", *self.args]  # fmt: skip
        log = tempfile.NamedTemporaryFile(prefix=f"{self.prefix}-", suffix=".log", delete=False)  # noqa: SIM115
        self.logs.append(log.name)
        proc = subprocess.Popen(
            cmd, env=child_env(**{**self.env, **env}), start_new_session=True, stdout=log,
            stderr=subprocess.STDOUT, cwd=self.cwd,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def __enter__(self) -> DistPool:
        super().__enter__()
        self.started = True
        return self

    def worker_pids(self) -> set[int]:
        """Pids of the worker processes that run tasks: the children of each worker
        command (the command itself is their supervisor)."""
        pids: set[int] = set()
        for proc in self.procs:
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    pids.update(int(x) for x in f.read().split())
            except OSError:
                continue
        return pids

@pytest.fixture(scope="module")
def pool(redis_url: str) -> Iterator[DistPool]:
    """Two workers for the whole module (``GRAFLOW_SESSION_TTL=300``)."""
    with DistPool(redis_url, 2) as p:
        yield p


@pytest.fixture
def make_pool(redis_url: str) -> Iterator[Callable[..., DistPool]]:
    """``make_pool(size, start=True, **env)``: a pool of its own, stopped after the test."""
    made: list[DistPool] = []

    def make(size: int = 1, start: bool = True, **env: str) -> DistPool:
        p = DistPool(redis_url, size, **env)
        made.append(p)
        if start:
            p.__enter__()
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    import redis

    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key, prefix or TTL setting of the test process leaks into a test; no current workflow."""
    from graflow.core.workflow import clear_workflow_context

    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    clear_workflow_context()
    yield
    clear_workflow_context()


def session_keys(client: Any, prefix: str, session_id: str) -> list[bytes]:
    """Every key of one session: its state keys and its channel data and locks."""
    out: list[bytes] = []
    for pattern in (f"{prefix}:session:{{{session_id}}}*", f"{prefix}:channel:{{{session_id}}}:*",
                    f"{prefix}:lock:{{{session_id}}}:*"):  # fmt: skip
        out += list(client.scan_iter(match=pattern, count=1000))
    return sorted(out)


def release(run: Any, key: str = "go") -> None:
    """Open a ``dist_flows.gate`` of ``run`` (idempotent; safe in ``finally``)."""
    with contextlib.suppress(Exception):
        run.channel.set(key, True)
