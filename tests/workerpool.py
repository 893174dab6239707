"""Real worker subprocesses for tests: a pool serving one private queue and key prefix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def worker_env(extra_paths: list[str] | None = None, **env: str) -> dict[str, str]:
    out = dict(os.environ)
    paths = [str(ROOT), *(extra_paths or [])]
    if out.get("PYTHONPATH"):
        paths.append(out["PYTHONPATH"])
    out["PYTHONPATH"] = os.pathsep.join(paths)
    out.update(env)
    return out


class Pool:
    """``size`` ``graflow worker`` processes on queue == prefix == a fresh name."""

    def __init__(self, redis_url: str, size: int = 2, *, extra_paths: list[str] | None = None,
                 prefix: str | None = None, args: list[str] | None = None, cwd: str | None = None,
                 **env: str) -> None:  # fmt: skip
        self.redis_url = redis_url
        self.cwd = cwd  # the workers' working directory (None: this process's)
        self.prefix = prefix or f"gfpool{uuid.uuid4().hex[:10]}"
        self.queue = self.prefix
        self.size = size
        self.extra_paths = extra_paths or []
        self.args = args or []
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []

    def start_worker(self, name: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "graflow", "worker", "--url", self.redis_url, "--queue", self.queue,
               "--prefix", self.prefix, "--name", name or f"{self.prefix}-w{len(self.procs)}", *self.args]  # fmt: skip
        import tempfile

        # Worker logs go to a file: a pipe nobody reads would fill and block the worker.
        log = tempfile.NamedTemporaryFile(prefix=f"{self.prefix}-", suffix=".log", delete=False)  # noqa: SIM115
        self.logs.append(log.name)
        proc = subprocess.Popen(
            cmd, env=worker_env(self.extra_paths, **{**self.env, **env}), start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Pool:
        for _ in range(self.size):
            self.start_worker()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until every worker has registered with rq."""
        import redis
        from rq import Worker

        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [w.name for w in Worker.all(connection=client) if w.name.startswith(self.prefix)]
            if len(names) >= len([p for p in self.procs if p.poll() is None]):
                return
            dead = [i for i, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                raise RuntimeError(f"worker exited early: {self.log_text(dead[0])}")
            time.sleep(0.05)
        raise RuntimeError("workers did not register in time")

    def log_text(self, index: int) -> str:
        with open(self.logs[index], errors="replace") as f:
            return f.read()[-4000:]

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(10)
        for path in self.logs:
            os.unlink(path)
        self.cleanup()

    def cleanup(self) -> None:
        """Delete the pool's keys: its prefix, rq's keys of its queue, the rq job hashes of
        its sessions (job ids name the session, not the prefix) and its registry entries."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            sessions = {k.decode().split("{", 1)[1].split("}", 1)[0]
                        for k in client.scan_iter(match=f"{self.prefix}:session:*", count=1000)}  # fmt: skip
            if sessions:
                names = [k for k in client.scan_iter(match="rq:*gf-*", count=1000)
                         if any(s in k.decode(errors="replace") for s in sessions)]  # fmt: skip
                if names:
                    client.unlink(*names)
            for set_key in ("rq:queues", "rq:workers"):
                stale = [m for m in client.smembers(set_key) if self.prefix in m.decode(errors="replace")]
                if stale:
                    client.srem(set_key, *stale)
            for pattern in (f"{self.prefix}*", f"rq:*{self.prefix}*"):
                names = list(client.scan_iter(match=pattern, count=1000))
                if names:
                    client.unlink(*names)
        finally:
            client.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` every 20 ms until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
