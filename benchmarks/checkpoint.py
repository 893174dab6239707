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
import statistics
import sys
import tempfile
import time

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


def against_floor(ctx: ExecutionContext, base: str, runs: int) -> dict[str, object]:
    """Create times beside the floors, interleaved round by round so that drift in the
    machine's speed hits both alike; ratios are medians of per-round ratios."""
    floor_path = base + ".floor"

    def create() -> None:
        CheckpointManager.create_checkpoint(ctx, path=base)

    def floor() -> None:
        with open(floor_path, "wb") as f:
            f.write(cloudpickle.dumps(ctx))

    def durable_floor() -> None:  # the same plus one fsync: what any crash-safe write pays
        with open(floor_path, "wb") as f:
            f.write(cloudpickle.dumps(ctx))
            f.flush()
            os.fsync(f.fileno())

    samples: dict[str, list[float]] = {"create": [], "floor": [], "durable": []}
    for fn in (create, floor, durable_floor):
        fn()  # warm-up
    for _ in range(runs):
        for name, fn in (("create", create), ("floor", floor), ("durable", durable_floor)):
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    ms = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    ratio = [c / f for c, f in zip(samples["create"], samples["floor"], strict=True)]
    ratio_durable = [c / f for c, f in zip(samples["create"], samples["durable"], strict=True)]
    return {
        "create_ms": round(ms["create"], 3),
        "bare_pickle_write_ms": round(ms["floor"], 3),
        "create_vs_bare": round(statistics.median(ratio), 2),
        "bare_pickle_write_fsync_ms": round(ms["durable"], 3),
        "create_vs_bare_fsync": round(statistics.median(ratio_durable), 2),
    }


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
                entry: dict[str, object] = {}
                if backend == "memory":
                    entry.update(against_floor(ctx, base, args.runs))
                else:
                    t_create, _ = median_time(lambda ctx=ctx, base=base: CheckpointManager.create_checkpoint(ctx, path=base), args.runs)
                    entry["create_ms"] = round(t_create * 1e3, 3)
                t_resume, _ = median_time(lambda base=base: CheckpointManager.resume_from_checkpoint(base), args.runs)
                entry["resume_ms"] = round(t_resume * 1e3, 3)
                entry["pkl_bytes"] = os.path.getsize(base + ".pkl")
                results[f"{backend}_{label}"] = entry
    emit("checkpoint", results)


if __name__ == "__main__":
    main()
