"""One interpreter's run of the producer-driven group fan-out, built as upstream documents it.

    python benchmarks/_upstream_group.py URL PREFIX --workers 2 --tasks 200 --runs 5

Runs under whichever interpreter has the ``graflow`` to measure (ours, or another venv with
``graflow==0.2.0``): the same program for both. It starts ``--workers`` processes of
``python -m graflow.worker.main`` (upstream's worker entry point, which ours keeps), builds
``source >> parallel(m0..mN).with_execution(backend=REDIS, backend_config={"redis_client":
r, "key_prefix": p}) >> sink`` with ``r = redis.Redis(..., decode_responses=True)``, runs it
in the producer with a Redis channel, and prints one JSON line: the median seconds per run
and tasks/s (members + source + sink + the group node). ``benchmarks/distributed.py
--compare PYTHON`` calls it for both interpreters, alternating.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlparse

import redis


def noop() -> None:
    return None


def start_workers(host: str, port: int, db: int, prefix: str, n: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-m", "graflow.worker.main", "--redis-host", host, "--redis-port", str(port),
               "--redis-db", str(db), "--redis-key-prefix", prefix, "--worker-id", f"{prefix}-w{i}",
               "--log-level", "WARNING"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))  # fmt: skip
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()


def build(n: int, client: redis.Redis, prefix: str) -> Any:
    from graflow.coordination.coordinator import CoordinationBackend
    from graflow.core.decorators import task
    from graflow.core.task import parallel
    from graflow.core.workflow import workflow

    with workflow("bench_group") as wf:
        src, sink = task("source")(noop), task("sink")(noop)
        members = [task(f"m{i}")(noop) for i in range(n)]
        group = parallel(*members).with_execution(
            backend=CoordinationBackend.REDIS,
            backend_config={"redis_client": client, "key_prefix": prefix},
        )
        src >> group >> sink
    return wf


def run_once(wf: Any, client: redis.Redis, prefix: str) -> float:
    from graflow.core.context import ExecutionContext
    from graflow.core.engine import WorkflowEngine

    start = time.perf_counter()
    ctx = ExecutionContext.create(
        wf.graph, "source", channel_backend="redis", config={"redis_client": client, "key_prefix": prefix}
    )
    WorkflowEngine().execute(ctx)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    parts = urlparse(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    db = int((parts.path or "/0").lstrip("/") or 0)
    client = redis.Redis(host=host, port=port, db=db, decode_responses=True)
    procs = start_workers(host, port, db, args.prefix, args.workers)
    try:
        wf = build(args.tasks, client, args.prefix)
        run_once(wf, client, args.prefix)  # warm-up: workers start and load the graph
        samples = [run_once(wf, client, args.prefix) for _ in range(args.runs)]
    finally:
        stop_workers(procs)
    import graflow

    seconds = statistics.median(samples)
    tasks = args.tasks + 3  # source, members, the group node, sink
    print(json.dumps({
        "graflow": getattr(graflow, "__version__", "?"),
        "python": sys.executable,
        "group_s": round(seconds, 4),
        "group_tasks_per_s": round(tasks / seconds, 1),
        "samples_s": [round(s, 4) for s in samples],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
