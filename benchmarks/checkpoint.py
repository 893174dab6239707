"""Checkpoint create/resume time and size, Memory vs Redis channel, small vs 10 MiB data.

    python benchmarks/checkpoint.py [--runs 9]

Starts its own Redis. The Memory-channel creation time is compared with a bare
``cloudpickle.dumps`` of the same context plus a plain file write (the floor any
design pays); targets: Redis ``.pkl`` < 4 KiB and creation <= 2 ms; Memory
creation <= 1.5x that floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

import cloudpickle
from _common import PrivateRedis, emit, median_time

from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import ExecutionContext
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow

BIG = 10 * 1024 * 1024


def step() -> int:
    return 1


def build(backend: str, size: int, url: str, prefix: str) -> ExecutionContext:
    with workflow("bench") as wf:
        a, b = TaskWrapper("a", step), TaskWrapper("b", step)
        a >> b
    config = {"url": url, "key_prefix": prefix} if backend == "redis" else None
    ctx = ExecutionContext.create(wf.graph, "a", channel_backend=backend, config=config)
    ctx.channel.set("payload", os.urandom(size) if size else b"x")
    ctx.channel.set("a.__result__", 1)
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    results: dict[str, object] = {"runs": args.runs}
    workdir = tempfile.mkdtemp(prefix="graflow-bench-ck-")
    with PrivateRedis() as redis_server:
        for backend in ("memory", "redis"):
            for label, size in (("small", 0), ("10MiB", BIG)):
                ctx = build(backend, size, redis_server.url, "bench")
                base = os.path.join(workdir, f"{backend}_{label}")
                t_create, _ = median_time(lambda ctx=ctx, base=base: CheckpointManager.create_checkpoint(ctx, path=base), args.runs)
                t_resume, _ = median_time(lambda base=base: CheckpointManager.resume_from_checkpoint(base), args.runs)
                entry: dict[str, object] = {
                    "create_ms": round(t_create * 1e3, 3),
                    "resume_ms": round(t_resume * 1e3, 3),
                    "pkl_bytes": os.path.getsize(base + ".pkl"),
                }
                if backend == "memory":
                    floor_path = base + ".floor"

                    def floor(ctx: ExecutionContext = ctx, path: str = floor_path) -> None:
                        with open(path, "wb") as f:
                            f.write(cloudpickle.dumps(ctx))

                    def durable_floor(ctx: ExecutionContext = ctx, path: str = floor_path) -> None:
                        with open(path, "wb") as f:
                            f.write(cloudpickle.dumps(ctx))
                            f.flush()
                            os.fsync(f.fileno())

                    t_floor, _ = median_time(floor, args.runs)
                    t_durable, _ = median_time(durable_floor, args.runs)
                    entry["bare_pickle_write_ms"] = round(t_floor * 1e3, 3)
                    entry["create_vs_bare"] = round(t_create / t_floor, 2)
                    # The same plus one fsync: what any crash-safe write pays at least.
                    entry["bare_pickle_write_fsync_ms"] = round(t_durable * 1e3, 3)
                    entry["create_vs_bare_fsync"] = round(t_create / t_durable, 2)
                results[f"{backend}_{label}"] = entry
    emit("checkpoint", results)


if __name__ == "__main__":
    main()
