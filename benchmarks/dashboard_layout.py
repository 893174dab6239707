"""The dashboard's graph layout (``graflow.dashboard.layout``) on 1,000 and 5,000 nodes.

    python benchmarks/dashboard_layout.py [--runs 5] [--sizes 1000 5000]

Shapes: a chain; a group of n parallel members between two tasks; a task with n dynamic
successors joined again; a random workflow (each task fed by one or two of the 20 before
it, a loop back every 50 tasks, a group of 2-10 members per 50 tasks), the worst of the
four: its long edges want many dummies, up to the budget. Prints the best and the median
of ``--runs`` layouts, in milliseconds. Pure Python, no Redis.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from graflow.dashboard.layout import layout

Shape = dict[str, Any]


def task(node: str, **extra: Any) -> dict[str, Any]:
    return {"id": node, "kind": "task", **extra}


def chain(n: int) -> Shape:
    return {"nodes": [task(f"t{i}") for i in range(n)], "edges": [[f"t{i}", f"t{i + 1}"] for i in range(n - 1)]}


def group_fan_out(n: int) -> Shape:
    members = [f"m{i}" for i in range(n)]
    nodes = [task("a"), {"id": "g", "kind": "group", "members": members}, *map(task, members), task("z")]
    return {"nodes": nodes, "edges": [["a", "g"], ["g", "z"]]}


def dynamic_fan_out(n: int) -> Shape:
    spawned = [f"d{i}" for i in range(n)]
    return {
        "nodes": [task("a"), *[task(d, dynamic=True) for d in spawned], task("z")],
        "edges": [["a", d] for d in spawned] + [[d, "z"] for d in spawned],
    }


def random_workflow(n: int, seed: int = 1) -> Shape:
    rnd = random.Random(seed)
    ids = [f"n{i}" for i in range(n)]
    nodes = [task(i) for i in ids]
    edges = []
    for i in range(1, n):
        for _ in range(rnd.choice([1, 1, 1, 2])):
            edges.append([ids[max(0, i - rnd.randint(1, 20))], ids[i]])
        if rnd.random() < 0.02 and i > 5:
            edges.append([ids[i], ids[i - rnd.randint(1, 5)]])
    for g in range(n // 50):
        members = [f"g{g}m{k}" for k in range(rnd.randint(2, 10))]
        nodes += [{"id": f"G{g}", "kind": "group", "members": members}, *map(task, members)]
        edges += [[ids[rnd.randrange(n)], f"G{g}"], [f"G{g}", ids[rnd.randrange(n)]]]
    return {"nodes": nodes, "edges": edges}


SHAPES: dict[str, Callable[[int], Shape]] = {
    "chain": chain,
    "group fan-out": group_fan_out,
    "dynamic fan-out": dynamic_fan_out,
    "random workflow": random_workflow,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    print(f"{'shape':16} {'nodes':>6} {'edges':>6} {'best ms':>8} {'median ms':>10}")
    for name, make in SHAPES.items():
        for size in args.sizes:
            shape = make(size)
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                layout(shape)
                samples.append((time.perf_counter() - start) * 1000)
            print(
                f"{name:16} {len(shape['nodes']):6} {len(shape['edges']):6}"
                f" {min(samples):8.1f} {statistics.median(samples):10.1f}"
            )


if __name__ == "__main__":
    main()
