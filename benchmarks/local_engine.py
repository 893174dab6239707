"""In-process engine throughput: a 2,000-task no-op chain and a 50-way fan-out/fan-in.

    python benchmarks/local_engine.py [--runs 7]

Each figure is the median of the runs; every run executes a freshly built context
(``wf.execute()``), so join planning and context setup are included.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import emit, median_time

from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow


def noop() -> None:
    return None


def build_chain(n: int):  # type: ignore[no-untyped-def]
    with workflow("chain") as wf:
        tasks = [TaskWrapper(f"t{i}", noop) for i in range(n)]
        for a, b in itertools.pairwise(tasks):
            a >> b
    return wf


def build_fanout(width: int, backend: str):  # type: ignore[no-untyped-def]
    from graflow.core.task import parallel

    with workflow("fan") as wf:
        src = TaskWrapper("source", noop)
        members = [TaskWrapper(f"m{i}", noop) for i in range(width)]
        sink = TaskWrapper("sink", noop)
        src >> parallel(*members).with_execution(backend=backend) >> sink
    return wf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chain", type=int, default=2000)
    parser.add_argument("--width", type=int, default=50)
    args = parser.parse_args()

    chain = build_chain(args.chain)
    t_chain, _ = median_time(lambda: chain.execute(max_steps=10**9), args.runs)
    results = {
        "runs": args.runs,
        "chain": {
            "tasks": args.chain,
            "median_s": round(t_chain, 6),
            "us_per_task": round(t_chain / args.chain * 1e6, 2),
            "tasks_per_s": round(args.chain / t_chain),
        },
    }
    tasks = args.width + 3  # source, members, group node, sink
    for backend in ("threading", "direct"):
        fan = build_fanout(args.width, backend)
        t_fan, _ = median_time(lambda fan=fan: fan.execute(), args.runs)
        results[f"fanout_{backend}"] = {
            "width": args.width,
            "median_s": round(t_fan, 6),
            "us_per_task": round(t_fan / tasks * 1e6, 2),
            "tasks_per_s": round(tasks / t_fan),
        }
    emit("local_engine", results)


if __name__ == "__main__":
    main()
