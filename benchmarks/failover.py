"""Failover time: SIGKILL the worker running a task, time until the task starts again elsewhere.

    python benchmarks/failover.py [--runs 5] [--heartbeat 10]

Starts its own Redis and two ``graflow worker`` processes with default settings
(heartbeat 10 s unless given). Each run kills the whole worker (its process group,
as on host loss) while the task runs, and restarts one so two stay up. Target:
<= 15 s median with the default heartbeat (the lease bound is 4/3 x heartbeat).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import PrivateRedis, emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slow_task(ctx: Any) -> str:
    ctx.get_channel().append("starts", [os.getppid(), ctx.attempt, time.time()])
    time.sleep(60)
    return "ok"


def start_worker(url: str, queue: str, name: str, heartbeat: float | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "graflow", "worker", "--url", url, "--queue", queue, "--prefix", queue,
           "--name", name, "--log-level", "WARNING"]  # fmt: skip
    if heartbeat is not None:
        cmd += ["--heartbeat", str(heartbeat)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.dirname(__file__)])}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def one_run(url: str, queue: str, workers: dict[int, subprocess.Popen[bytes]], heartbeat: float | None, n: int) -> float:
    from failover import slow_task as body

    from graflow.core.task import TaskWrapper
    from graflow.core.workflow import workflow
    from graflow.distributed import submit

    with workflow(f"failover{n}") as wf:
        TaskWrapper("slow", body, inject_context=True)
    run = submit(wf, url, queue=queue, key_prefix=queue)
    deadline = time.monotonic() + 60
    while not run.channel.get("starts"):
        if time.monotonic() > deadline:
            raise RuntimeError("the task never started")
        time.sleep(0.01)
    supervisor = run.channel.get("starts")[0][0]  # the worker command's pid (its supervisor)
    proc = workers.pop(supervisor)
    t_kill = time.time()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    replacement = start_worker(url, queue, f"{queue}-r{n}", heartbeat)
    workers[replacement.pid] = replacement
    deadline = time.monotonic() + 120
    while len(run.channel.get("starts") or []) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the task was not re-run")
        time.sleep(0.01)
    restarted = run.channel.get("starts")[1][2]
    run.cancel("benchmark run done")
    return float(restarted - t_kill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=None, help="default: the worker's default (10 s)")
    args = parser.parse_args()
    queue = "failoverbench"
    samples = []
    with PrivateRedis() as server:
        workers: dict[int, subprocess.Popen[bytes]] = {}
        for i in range(2):
            p = start_worker(server.url, queue, f"{queue}-w{i}", args.heartbeat)
            workers[p.pid] = p
        try:
            for n in range(args.runs):
                samples.append(one_run(server.url, queue, workers, args.heartbeat, n))
        finally:
            for p in workers.values():
                os.killpg(p.pid, signal.SIGKILL)
    emit("failover", {
        "runs": args.runs,
        "heartbeat_s": args.heartbeat or 10.0,
        "kill_to_restart_s_median": round(statistics.median(samples), 3),
        "kill_to_restart_s_max": round(max(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    })  # fmt: skip


if __name__ == "__main__":
    main()
