"""Helpers for the worker-runtime tests: worker subprocesses, rq enqueueing, polling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workerpool import wait_until  # noqa: F401  (shared test helper)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def env_for_worker(**extra: str) -> dict[str, str]:
    """The test environment plus PYTHONPATH for ``jobfuncs`` and the repo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFLOW_", "REDIS_"))}
    env.pop("WORKER_ID", None)
    parts = [str(HERE), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra)
    return env




class WorkerProcess:
    """One ``graflow worker`` (or other) subprocess with its output captured to files."""

    def __init__(self, args: list[str], tmp: Path, env: dict[str, str] | None = None) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.out_path = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err_path = tmp / f"err-{time.monotonic_ns()}.txt"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=err,
                env=env or env_for_worker(),
                cwd=tmp,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"worker did not exit in {timeout} s; stderr:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")


def graflow_worker(redis_url: str, queue: str, tmp: Path, *extra: str, **env: str) -> WorkerProcess:
    args = [
        "-m",
        "graflow",
        "worker",
        "--url",
        redis_url,
        "--queue",
        queue,
        "--name",
        f"{queue}-w",
        *extra,
    ]
    return WorkerProcess(args, tmp, env_for_worker(**env))


def rq_queue(client: Any, name: str) -> Any:
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=client, serializer=JSONSerializer)


def enqueue(client: Any, queue: str, func: str, *args: Any, job_id: str) -> Any:
    """Enqueue like graflow does: JSON serializer, no result kept, no job timeout."""
    return rq_queue(client, queue).enqueue_call(
        f"jobfuncs.{func}", args=list(args), result_ttl=0, timeout=-1, job_id=job_id
    )


def entries(client: Any, key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def events(client: Any, key: str, event: str) -> list[dict[str, Any]]:
    return [e for e in entries(client, key) if e.get("event") == event]


def started_leases(client: Any, queue: str) -> dict[str, float]:
    """``job_id -> lease expiry`` from the queue's StartedJobRegistry (entries are job:execution)."""
    raw = client.zrange(f"rq:wip:{queue}", 0, -1, withscores=True)
    return {member.decode().split(":", 1)[0]: float(score) for member, score in raw}


def cleanup_rq_keys(client: Any, token: str) -> None:
    """Delete every rq key that names this test's queue, jobs or workers (never FLUSHDB)."""
    keys = list(client.scan_iter(match=f"*{token}*", count=1000))
    if keys:
        client.unlink(*keys)
    for set_key in ("rq:queues", "rq:workers"):
        members = [m for m in client.smembers(set_key) if token in m.decode(errors="replace")]
        if members:
            client.srem(set_key, *members)
