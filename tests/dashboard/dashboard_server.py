"""A real ``graflow dashboard`` subprocess for the tests, and a small HTTP client for it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workerpool import worker_env

HERE = Path(__file__).resolve().parent
_SCRUB = ("GRAFLOW_SECRET_KEY", "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_KEY_PREFIX", "GRAFLOW_REDIS_URL", "REDIS_URL",
          "REDIS_PASSWORD", "GRAFLOW_SESSION_TTL", "GRAFLOW_DASHBOARD_TOKEN", "GRAFLOW_DASHBOARD_USER",
          "GRAFLOW_DASHBOARD_PASSWORD")  # fmt: skip


def child_env(**extra: str) -> dict[str, str]:
    env = worker_env([str(HERE)])
    for name in _SCRUB:
        env.pop(name, None)
    env.update(extra)
    return env


def submit(pool: Any, wf: Any, **kwargs: Any) -> Any:
    from graflow.distributed import submit as submit_run

    return submit_run(wf, pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, **kwargs)


class Dashboard:
    """A running ``graflow dashboard`` subprocess and a small HTTP client for it."""

    def __init__(self, redis_url: str, prefix: str, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graflow", "dashboard", "--url", redis_url, "--prefix", prefix, "--port", "0",
             *args], env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"http://[^/ ]+/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"dashboard did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = found.group(0).rstrip("/")
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {**self.headers, **(headers or {})}
        if data is not None:
            hdrs.setdefault("content-type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                raw = response.read()
                status, got = response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(), exc.code, dict(exc.headers)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return status, doc, {k.lower(): v for k, v in got.items()}

    def get(self, path: str) -> Any:
        status, doc, _ = self.request("GET", path)
        assert status == 200, (path, status, doc)
        return doc

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        status, doc, _ = self.request("POST", path, body if body is not None else {})
        return status, doc

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
