"""In-process engine cost: a 2,000-task no-op chain and a 50-way fan-out/fan-in.

    python benchmarks/local_engine.py [--runs 7] [--compare PYTHON [--rounds 3]]

Each workload is timed two ways: **warm** — the same workflow executed again and
again (``wf.execute()`` builds a fresh context each time; the join plan is cached on
the graph), and **cold** — the first execution of a newly built workflow, so join
planning and first-use costs are included. Figures are medians of ``--runs`` samples; a
sample of a small workload (the fan-outs) is the mean of back-to-back runs worth 2,000
tasks, so that it is not timer noise.

``--compare PYTHON`` runs the same workloads under another interpreter (one with
upstream ``graflow==0.2.0`` installed, say) in the same invocation, alternating the
two ``--rounds`` times so that both see the same machine, and prints both and the
ratio ours/theirs of µs per task (below 1 is faster). The workloads use only the
upstream API, so the script runs unchanged under either package.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import emit

CHAIN = 2000
WIDTH = 50


def noop() -> None:
    return None


def build_chain(n: int) -> Any:
    from graflow.core.task import TaskWrapper
    from graflow.core.workflow import workflow

    with workflow("chain") as wf:
        tasks = [TaskWrapper(f"t{i}", noop) for i in range(n)]
        for a, b in itertools.pairwise(tasks):
            a >> b
    return wf


def build_fanout(width: int, backend: str) -> Any:
    from graflow.coordination.coordinator import CoordinationBackend
    from graflow.core.task import TaskWrapper, parallel
    from graflow.core.workflow import workflow

    with workflow("fan") as wf:
        src = TaskWrapper("source", noop)
        members = [TaskWrapper(f"m{i}", noop) for i in range(width)]
        sink = TaskWrapper("sink", noop)
        src >> parallel(*members).with_execution(backend=CoordinationBackend(backend)) >> sink
    return wf


def workloads(chain: int, width: int) -> dict[str, tuple[Any, int, str]]:
    """name -> (builder of a new workflow, tasks it runs, start node)."""
    return {
        "chain": (lambda: build_chain(chain), chain, "t0"),
        "fanout_threading": (lambda: build_fanout(width, "threading"), width + 3, "source"),  # + group, sink
        "fanout_direct": (lambda: build_fanout(width, "direct"), width + 3, "source"),
    }


#: A sample runs a workload this many tasks' worth of times at least: a 53-task fan-out
#: takes about a millisecond, too short for one run to be a stable sample.
SAMPLE_TASKS = 2000


def sample(runs: int, chain: int, width: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per run of each workload, warm and cold, in this interpreter (each sample
    is the mean over ``repeat`` back-to-back runs, so small workloads are not timer noise)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, (build, tasks, first) in workloads(chain, width).items():
        repeat = max(1, -(-SAMPLE_TASKS // tasks))
        cold = []
        for _ in range(runs):
            fresh = [build() for _ in range(repeat)]
            start = time.perf_counter()
            for wf in fresh:
                wf.execute(first, max_steps=10**9)
            cold.append((time.perf_counter() - start) / repeat)
        wf = build()
        wf.execute(first, max_steps=10**9)  # warm-up
        warm = []
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(repeat):
                wf.execute(first, max_steps=10**9)
            warm.append((time.perf_counter() - start) / repeat)
        out[name] = {"warm": warm, "cold": cold}
    return out


def summarise(samples: dict[str, dict[str, list[float]]], chain: int, width: int) -> dict[str, Any]:
    sizes = {name: tasks for name, (_, tasks, _) in workloads(chain, width).items()}
    summary: dict[str, Any] = {}
    for name, kinds in samples.items():
        summary[name] = {"tasks": sizes[name]}
        for kind, seconds in kinds.items():
            median = statistics.median(seconds)
            summary[name][kind] = {
                "median_s": round(median, 6),
                "us_per_task": round(median / sizes[name] * 1e6, 2),
                "tasks_per_s": round(sizes[name] / median),
            }
    return summary


def _child(python: str, runs: int, chain: int, width: int) -> dict[str, dict[str, list[float]]]:
    """Run the sampling in ``python`` (from a neutral directory, so it imports its own graflow)."""
    command = [python, os.path.abspath(__file__), "--samples", "--runs", str(runs),
               "--chain", str(chain), "--width", str(width)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/", env=env)
    if done.returncode != 0:
        raise SystemExit(f"{python} failed:\n{done.stderr.strip()[-2000:]}")
    # The last line: a package may print on its own before it.
    result: dict[str, dict[str, list[float]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('graflow'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False, cwd="/")
    return done.stdout.strip() or "unknown"


def compare(other: str, runs: int, rounds: int, chain: int, width: int) -> dict[str, Any]:
    ours: dict[str, dict[str, list[float]]] = {}
    theirs: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for python, into in ((sys.executable, ours), (other, theirs)):
            for name, kinds in _child(python, runs, chain, width).items():
                for kind, seconds in kinds.items():
                    into.setdefault(name, {}).setdefault(kind, []).extend(seconds)
    a, b = summarise(ours, chain, width), summarise(theirs, chain, width)
    ratios = {
        name: {kind: round(a[name][kind]["us_per_task"] / b[name][kind]["us_per_task"], 3) for kind in ("warm", "cold")}
        for name in a
    }
    return {
        "ours": {"python": sys.executable, "graflow": _version(sys.executable), **a},
        "theirs": {"python": other, "graflow": _version(other), **b},
        "ratio_us_per_task": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chain", type=int, default=CHAIN)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--compare", metavar="PYTHON", help="another interpreter to run the same workloads")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two interpreters (--compare)")
    parser.add_argument("--samples", action="store_true", help=argparse.SUPPRESS)  # child mode: raw samples
    args = parser.parse_args()

    if args.samples:
        samples = sample(args.runs, args.chain, args.width)
        sys.stdout.write("\n" + json.dumps(samples) + "\n")
        return
    if args.compare:
        emit("local_engine", {"runs": args.runs * args.rounds, **compare(args.compare, args.runs, args.rounds,
                                                                      args.chain, args.width)})  # fmt: skip
        return
    emit("local_engine", {"runs": args.runs, **summarise(sample(args.runs, args.chain, args.width),
                                                          args.chain, args.width)})  # fmt: skip


if __name__ == "__main__":
    main()
