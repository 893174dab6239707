"""Failover and Redis cost of ``graflow worker`` with default settings, as one JSON object.

    python benchmarks/failover.py [--runs 5] [--heartbeat S] [--only kill,child,commands]

Each section starts its own redis-server and its own ``graflow worker`` commands (a
supervisor and one child each, every command its own process group), with no flag
beyond queue, prefix, name and log level (``--heartbeat`` only when given) and no
GRAFLOW_*/REDIS_* variable from the shell, so the worker's defaults are what is measured.

* kill: SIGKILL the whole process group of the worker running a long task (host loss),
  start a replacement so two stay up; time from the kill until the task's next attempt
  starts (on a surviving worker, after the dead one's lease runs out).
* child: SIGKILL only the child process running the task (the supervisor survives and
  hands the job back); time until the next attempt starts, on either worker.
* commands: Redis commands/s of ONE worker command (supervisor, child and the child's rq
  scheduler process), idle and while
  it runs a sleeping task, from INFO commandstats (less our own INFO), split by process
  through MONITOR.

Start times are what the task itself records in the run's channel (``time.time()`` on
this machine, as is the kill time).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PrivateRedis, emit
from _failover_pool import (
    WorkerCommand,
    busy_task,
    failover_task,
    graflow_root,
    parent_pid,
    scrub_environment,
    starts,
    submit_one,
    wait_all_idle,
    wait_for,
    wait_starts,
)
from _redis_cost import measure_window

#: Child kills of one worker command within a minute before we replace it: the supervisor
#: stops the pool after a crash loop (5 deaths in 60 s by default), which is not what we measure.
CHILD_KILLS_BEFORE_REPLACING = 3


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
        "min_s": round(min(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


class Bench:
    """One section's private Redis and its worker commands (``workers`` is the section's to change)."""

    def __init__(self, args: argparse.Namespace, server: PrivateRedis, queue: str) -> None:
        import redis

        self.args, self.server, self.queue = args, server, queue
        self.url = server.url
        self.client = redis.Redis.from_url(server.url)
        self.workers: list[WorkerCommand] = []

    def new(self, name: str) -> WorkerCommand:
        return WorkerCommand(self.url, self.queue, name, heartbeat=self.args.heartbeat, log_dir=self.args.log_dir)

    def failed(self, what: str, exc: BaseException) -> RuntimeError:
        """``exc`` with the tail of every worker's log, to see why a trial failed."""
        logs = "\n".join(f"--- {w.name} ({w.log_path}) ---\n{w.log_tail()}" for w in self.workers)
        return RuntimeError(f"{what}: {exc}\n{logs}")


@contextmanager
def bench(args: argparse.Namespace, queue: str, size: int) -> Iterator[Bench]:
    """A private Redis and ``size`` worker commands on ``queue``, all killed on the way out."""
    with PrivateRedis() as server:
        b = Bench(args, server, queue)
        try:
            b.workers.extend(b.new(f"{queue}-w{i}") for i in range(size))
            yield b
        finally:
            for w in b.workers:
                w.kill_group()
            b.client.close()


def kill_section(args: argparse.Namespace) -> dict[str, Any]:
    """Whole worker command killed (process group), replaced; time to the next attempt's start."""
    queue = "fokill"
    samples, trials = [], []
    with bench(args, queue, 2) as b:
        for n in range(args.runs):
            try:
                wait_all_idle(b.client, b.workers)
                run = submit_one(b.url, queue, failover_task, f"kill{n}")
                first = wait_starts(run, 1, 60)[0]
                victim = next(w for w in b.workers if w.pid == first[0])
                t_kill = time.time()
                victim.kill_group()
                b.workers.remove(victim)
                b.workers.append(b.new(f"{queue}-r{n}"))
                second = wait_starts(run, 2, args.restart_timeout)[1]
            except RuntimeError as exc:
                raise b.failed(f"kill trial {n}", exc) from exc
            run.cancel("benchmark trial done")
            samples.append(second[3] - t_kill)
            ran_on = "replacement" if second[0] == b.workers[-1].pid else "survivor"
            trials.append({"kill_to_start_s": round(samples[-1], 3), "attempt": second[2], "ran_on": ran_on})
    return {
        "what": "SIGKILL of the whole worker command (supervisor + child, its process group) running the task; "
        "a replacement worker is started right after the kill; time from the kill to the next attempt's start",
        **summary(samples),
        "trials": trials,
    }


def child_section(args: argparse.Namespace) -> dict[str, Any]:
    """Only the child running the task killed; the supervisor hands the job back."""
    queue = "fochild"
    samples, trials = [], []
    kills: dict[str, list[float]] = {}
    replaced = 0
    with bench(args, queue, 2) as b:
        for n in range(args.runs):
            for i, w in enumerate(list(b.workers)):
                recent = [t for t in kills.get(w.name, []) if time.monotonic() - t < 70]
                if len(recent) >= CHILD_KILLS_BEFORE_REPLACING:
                    w.stop()
                    b.workers[i] = b.new(f"{queue}-r{n}-{i}")
                    replaced += 1
            try:
                wait_all_idle(b.client, b.workers)
                run = submit_one(b.url, queue, failover_task, f"child{n}")
                supervisor, child, _attempt, _at = wait_starts(run, 1, 60)[0]
                victim = next(w for w in b.workers if w.pid == supervisor)
                if parent_pid(child) != supervisor or child not in victim.children():
                    raise RuntimeError(f"pid {child} recorded by the task is not a child of worker {victim.name}")
                t_kill = time.time()
                os.kill(child, signal.SIGKILL)
                kills.setdefault(victim.name, []).append(time.monotonic())
                second = wait_starts(run, 2, args.restart_timeout)[1]
                if not victim.alive():
                    raise RuntimeError(f"the supervisor of {victim.name} exited after its child was killed")
            except RuntimeError as exc:
                raise b.failed(f"child trial {n}", exc) from exc
            run.cancel("benchmark trial done")
            samples.append(second[3] - t_kill)
            ran_on = "same worker (restarted child)" if second[0] == supervisor else "other worker"
            trials.append({"kill_to_start_s": round(samples[-1], 3), "attempt": second[2], "ran_on": ran_on})
    return {
        "what": "SIGKILL of only the worker child process running the task (its pid as recorded by the task, "
        "checked to be a child of the supervisor); time from the kill to the next attempt's start, on either worker",
        **summary(samples),
        "trials": trials,
        "workers_replaced_to_avoid_crash_loop": replaced,
    }


def commands_section(args: argparse.Namespace) -> dict[str, Any]:
    """Redis commands/s of one idle worker command, then of the same running a task."""
    queue = "focmds"
    with bench(args, queue, 1) as b:
        worker = b.workers[0]
        wait_for("the worker registering", lambda: worker.idle(b.client), 60, step=0.05)
        time.sleep(args.settle)
        idle = measure_window(b.url, args.window, worker.process_roles)
        run = submit_one(b.url, queue, busy_task, "busy", busy_seconds=args.window + args.settle + 25)
        wait_starts(run, 1, 60)
        time.sleep(args.settle)
        busy = measure_window(b.url, args.window, worker.process_roles)
        state = run.status().state
        if len(starts(run)) != 1 or state != "running":
            raise RuntimeError(f"the busy task did not run through the window (state {state}, starts {starts(run)})")
        run.cancel("benchmark done")
    return {
        "what": "Redis commands per second of ONE `graflow worker --concurrency 1` command: all numbers are per "
        "worker command (all its processes together: the supervisor, its one worker child, and the rq scheduler "
        "process that child forks); monitor.by_process_per_s splits them by process",
        "per": "worker command (supervisor + 1 child + the child's rq scheduler process)",
        "how": f"INFO commandstats read {args.window:g} s apart, minus our own INFO; includes commands run inside "
        "Lua scripts. monitor: the same window seen by MONITOR, top-level commands by client process "
        "(port -> pid through /proc), script-internal commands apart",
        "settle_s": args.settle,
        "idle": idle,
        "running_a_task": busy,
    }


def code_state() -> dict[str, Any]:
    """Which graflow was measured: its path, and the git commit and changes of its tree."""
    import graflow

    root = graflow_root()
    state: dict[str, Any] = {"graflow_file": graflow.__file__}

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", "-C", root, *cmd], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    state["git_head"] = git("rev-parse", "--short", "HEAD")
    state["git_modified_in_graflow"] = [line for line in git("status", "--short", "graflow").splitlines()]
    try:
        from graflow.worker import settings

        state["worker_default_heartbeat_s"] = getattr(settings, "DEFAULT_HEARTBEAT", None)
    except ImportError:
        pass
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="trials of kill and of child (default 5)")
    parser.add_argument("--heartbeat", type=float, default=None, help="pass --heartbeat S to the workers "
                        "(default: no flag, the worker's own default)")  # fmt: skip
    parser.add_argument("--only", default="kill,child,commands", help="comma-separated sections to run")
    parser.add_argument("--window", type=float, default=10.0, help="seconds between the two INFO reads")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before a window opens")
    parser.add_argument("--restart-timeout", type=float, default=300.0, help="give up on a trial after this")
    parser.add_argument("--log-dir", default=None, help="worker logs (default: a temporary folder)")
    args = parser.parse_args()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"kill", "child", "commands"}
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; use kill, child and/or commands")
    scrubbed = scrub_environment()
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="graflow-failover-bench-")
    os.makedirs(args.log_dir, exist_ok=True)
    runners = {"kill": kill_section, "child": child_section, "commands": commands_section}
    results = {name: runners[name](args) for name in sections}
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    emit("failover", {
        "settings": {
            "runs": args.runs,
            "heartbeat_flag_s": args.heartbeat,
            "worker_flags": "--concurrency 1 --log-level WARNING (+ --queue/--prefix/--name)"
            + (f" --heartbeat {args.heartbeat:g}" if args.heartbeat is not None else ""),
            "window_s": args.window,
            "settle_s": args.settle,
            "environment_dropped": scrubbed,
            "worker_logs": args.log_dir,
            "redis_server": redis_version,
            **code_state(),
        },
        **results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
