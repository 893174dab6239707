"""Pool throughput: a 200-task fan-out and a 200-step chain on 1 and 2 workers, plus raw rq;
then graflow's lean bookkeeping against rq's own job path; then the producer-driven group
fan-out built the way upstream Graflow documents it.

    python benchmarks/distributed.py [--runs 5] [--tasks 200] [--paths-jobs 1000]
                                     [--compare PYTHON [--rounds 3]] [--metrics [--rounds 3]]

Starts its own Redis and ``graflow worker`` processes. The baseline is rq itself
running the same number of no-op jobs on the same number of in-process
(``SimpleWorker``) workers, enqueued in one batch with rq's defaults, in the same run.
Targets on 2 cores: fan-out with 2 workers >= 600 tasks/s and >= the raw rq
baseline; chain <= 3 ms per hop.

``rq_paths`` (``_rq_paths.py``): the same no-op jobs through rq's ``SimpleWorker``,
through ``GraflowWorker`` with its lean steps off, and through graflow's lean path, in
this process: jobs/s and Redis round trips per job, the numbers that justify graflow
re-doing rq's job writes (docs/rq.md). ``--paths-jobs 0`` skips it.

``upstream_group`` (``_upstream_group.py``): ``source >> parallel(200 members)
.with_execution(backend=REDIS, backend_config={"redis_client": r, "key_prefix": p}) >> sink``
with ``r = redis.Redis(..., decode_responses=True)``, run by the producer's engine on a Redis
channel, members on 2 ``python -m graflow.worker.main`` workers. ``--compare PYTHON`` runs the
same program under another interpreter that has ``graflow==0.2.0`` installed, alternating
with ours for ``--rounds`` rounds, and reports both medians and the ratio (target >= 1.5).

``--metrics``: only the fan-out and the chain, on pools started with the operator's
observability off (no ``--metrics-port``, ``GRAFLOW_LOG_CAPTURE_BYTES=0``) and on
(``--metrics-port``, needs ``graflow[metrics]``, and log capture as by default),
alternating for ``--rounds`` rounds; reports the medians of both, the ratio on/off (target:
within 5 %), the workers' CPU seconds per activation (``cpu_ms_per_task``: the fan-out is n members, source, sink, the group start and finish; the chain n; summed over the worker
processes from /proc, steadier than wall time on a busy machine), and the observer's own
cost per attempt measured in-process (``observer``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import PrivateRedis, emit
from _rq_paths import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def noop() -> None:
    return None


_TMP: list[str] = []


def _metrics_tmp() -> str:
    if not _TMP:
        import atexit
        import shutil
        import tempfile

        _TMP.append(tempfile.mkdtemp(prefix="graflow-bench-"))
        atexit.register(shutil.rmtree, _TMP[0], True)
    return _TMP[0]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_workers(url: str, queue: str, n: int, *, rq_simple: bool = False, metrics: bool = False,
                  observe: bool | None = None) -> list[subprocess.Popen[bytes]]:  # fmt: skip
    """``metrics``: with ``--metrics-port``; ``observe=False``: no log capture either."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.dirname(__file__)])}
    procs = []
    for i in range(n):
        if rq_simple:
            cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--worker-class", "rq.SimpleWorker",
                   "--serializer", "rq.serializers.JSONSerializer", "--quiet", "--name", f"{queue}-rq{i}", queue]
        else:
            cmd = [sys.executable, "-m", "graflow", "worker", "--url", url, "--queue", queue, "--prefix", queue,
                   "--name", f"{queue}-w{i}", "--log-level", "WARNING"]
            if metrics:
                # stop_workers SIGKILLs: the supervisor cannot delete its multiprocess directory
                # then, so it goes to a directory of this benchmark's, removed at exit.
                cmd += ["--metrics-port", str(free_port())]
                env["TMPDIR"] = _metrics_tmp()
            elif observe is False:
                env["GRAFLOW_LOG_CAPTURE_BYTES"] = "0"
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    import redis
    from rq import Worker

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while len([w for w in Worker.all(connection=client) if w.name.startswith(queue)]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.05)
    return procs


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds (user + system) used so far by the worker commands and their processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [p.pid for p in procs]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()


def fanout(n: int) -> Any:
    from graflow.core.task import TaskWrapper, parallel
    from graflow.core.workflow import workflow

    with workflow("bench_fanout") as wf:
        src, sink = TaskWrapper("source", noop), TaskWrapper("sink", noop)
        members = [TaskWrapper(f"m{i}", noop) for i in range(n)]
        src >> parallel(*members) >> sink
    return wf


def chain(n: int) -> Any:
    from graflow.core.task import TaskWrapper
    from graflow.core.workflow import workflow

    with workflow("bench_chain") as wf:
        tasks = [TaskWrapper(f"c{i}", noop) for i in range(n)]
        for a, b in itertools.pairwise(tasks):
            a >> b
    return wf


def time_run(wf: Any, url: str, queue: str) -> float:
    from graflow.distributed import submit

    start = time.perf_counter()
    run = submit(wf, url, queue=queue, key_prefix=queue)
    run.wait(timeout=300)
    return time.perf_counter() - start


def time_raw_rq(url: str, queue: str, n: int) -> float:
    """n no-op jobs with rq's defaults (results kept), enqueued in one batch, until all finished."""
    import redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry
    from rq.serializers import JSONSerializer

    client = redis.Redis.from_url(url)
    q = Queue(queue, connection=client, serializer=JSONSerializer)
    finished = FinishedJobRegistry(queue=q)
    before = finished.count
    start = time.perf_counter()
    q.enqueue_many([Queue.prepare_data("distributed.noop") for _ in range(n)])
    while finished.count < before + n:
        time.sleep(0.001)
    return time.perf_counter() - start


def group_fanout(python: str, url: str, prefix: str, n: int, runs: int) -> dict[str, Any]:
    """One interpreter's producer-driven group fan-out (``_upstream_group.py``), as JSON."""
    import json

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_upstream_group.py")
    out = subprocess.run(
        [python, script, url, prefix, "--workers", "2", "--tasks", str(n), "--runs", str(runs)],
        check=True, capture_output=True, text=True, timeout=600, cwd=os.path.dirname(script),
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def compare_group(url: str, n: int, runs: int, other: str | None, rounds: int) -> dict[str, Any]:
    """Ours (and ``other``'s) group fan-out, alternating per round so both see the same noise."""
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds if other else 1):
        ours.append(group_fanout(sys.executable, url, f"grp-ours{r}", n, runs)["group_tasks_per_s"])
        if other:
            theirs.append(group_fanout(other, url, f"grp-up{r}", n, runs)["group_tasks_per_s"])
    result: dict[str, Any] = {"workers": 2, "members": n, "ours_tasks_per_s": statistics.median(ours),
                              "ours_rounds": ours}  # fmt: skip
    if other:
        result.update(upstream_python=other, upstream_tasks_per_s=statistics.median(theirs),
                      upstream_rounds=theirs,
                      ratio=round(statistics.median(ours) / statistics.median(theirs), 2))  # fmt: skip
    return result


def median(fn: Any, runs: int) -> float:
    fn()  # warm-up: workers load the graph once
    return statistics.median(fn() for _ in range(runs))


def compare_metrics(url: str, n: int, runs: int, rounds: int) -> dict[str, Any]:
    """Fan-out and chain on pools with metrics and log capture off, then on, alternating."""
    out: dict[str, Any] = {}
    for workers in (1, 2):
        seen: dict[str, dict[str, list[float]]] = {m: {"fan": [], "chain": [], "cpu": []} for m in ("off", "on")}
        for r in range(rounds):
            for mode in ("off", "on"):
                queue = f"mbench{workers}{mode}{r}"
                procs = start_workers(url, queue, workers, metrics=mode == "on", observe=mode == "on")
                try:
                    fan_wf, chain_wf = fanout(n), chain(n)
                    before = cpu_seconds(procs)
                    seen[mode]["fan"].append(median(lambda wf=fan_wf, q=queue: time_run(wf, url, q), runs))
                    seen[mode]["chain"].append(median(lambda wf=chain_wf, q=queue: time_run(wf, url, q), runs))
                    seen[mode]["cpu"].append((cpu_seconds(procs) - before) * 1000 / (runs * (2 * n + 4)))
                finally:
                    stop_workers(procs)
        row: dict[str, Any] = {}
        for what in ("fan", "chain"):
            off, on = statistics.median(seen["off"][what]), statistics.median(seen["on"][what])
            row[f"{what}_s_off"], row[f"{what}_s_on"] = round(off, 4), round(on, 4)
            row[f"{what}_time_ratio_on_off"] = round(on / off, 3)
        cpu_off, cpu_on = statistics.median(seen["off"]["cpu"]), statistics.median(seen["on"]["cpu"])
        row["cpu_ms_per_task_off"], row["cpu_ms_per_task_on"] = round(cpu_off, 4), round(cpu_on, 4)
        row["cpu_ratio_on_off"] = round(cpu_on / cpu_off, 3)
        out[f"workers_{workers}"] = row
    return out


def observer_cost(n: int = 20000) -> dict[str, float]:
    """µs per attempt of the observer machinery without and with the metrics observer, in
    this process (multiprocess mode in a temporary directory): the noise-free part of the
    comparison. Last: it leaves the metrics enabled in this process."""
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="observer-", dir=_metrics_tmp())
    from graflow.distributed.attempt_info import AttemptInfo
    from graflow.wire import TaskSpec
    from graflow.worker import metrics
    from graflow.worker.observe import observed

    wire = TaskSpec(session_id="s", task_id="m17", graph_hash="g", spec_id="x")
    meta = {"workflow_name": "bench_fanout"}

    def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            with observed(AttemptInfo(wire, "w")) as info:
                info.started(meta)
                info.outcome = "completed"
        return (time.perf_counter() - start) / n * 1e6

    off = min(loop() for _ in range(3))
    metrics.enable(True)
    on = min(loop() for _ in range(3))
    return {"us_per_attempt_off": round(off, 2), "us_per_attempt_on": round(on, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--paths-jobs", type=int, default=1000, help="jobs per run of the rq path comparison")
    parser.add_argument("--skip-pool", action="store_true", help="only the rq path comparison")
    parser.add_argument("--skip-group", action="store_true", help="skip the upstream-style group fan-out")
    parser.add_argument("--compare", metavar="PYTHON", help="an interpreter with graflow==0.2.0 installed")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --compare or --metrics")
    parser.add_argument("--metrics", action="store_true", help="only: the pool with and without --metrics-port")
    args = parser.parse_args()
    n = args.tasks
    results: dict[str, Any] = {"runs": args.runs, "tasks": n}
    if args.metrics:
        with PrivateRedis() as server:
            results["metrics"] = compare_metrics(server.url, n, args.runs, args.rounds)
        results["metrics"]["observer"] = observer_cost()
        emit("distributed_metrics", results)
        return
    fan_tasks = n + 3  # source, members, the group node, sink
    with PrivateRedis() as server:
        for workers in () if args.skip_pool else (1, 2):
            queue = f"bench{workers}"
            procs = start_workers(server.url, queue, workers)
            try:
                fan_wf, chain_wf = fanout(n), chain(n)
                t_fan = median(lambda wf=fan_wf, q=queue: time_run(wf, server.url, q), args.runs)
                t_chain = median(lambda wf=chain_wf, q=queue: time_run(wf, server.url, q), args.runs)
            finally:
                stop_workers(procs)
            rq_queue = f"rqbench{workers}"
            procs = start_workers(server.url, rq_queue, workers, rq_simple=True)
            try:
                t_raw = median(lambda q=rq_queue: time_raw_rq(server.url, q, n), args.runs)
            finally:
                stop_workers(procs)
            results[f"workers_{workers}"] = {
                "fanout_tasks_per_s": round(fan_tasks / t_fan, 1),
                "fanout_s": round(t_fan, 4),
                "chain_ms_per_hop": round(t_chain / n * 1e3, 3),
                "chain_s": round(t_chain, 4),
                "raw_rq_jobs_per_s": round(n / t_raw, 1),
                "fanout_vs_raw_rq": round((fan_tasks / t_fan) / (n / t_raw), 2),
            }
        if args.paths_jobs > 0:
            results["rq_paths"] = compare(server.url, args.paths_jobs, args.runs)
        if not args.skip_group:
            results["upstream_group"] = compare_group(server.url, n, args.runs, args.compare, args.rounds)
    emit("distributed", results)


if __name__ == "__main__":
    main()
