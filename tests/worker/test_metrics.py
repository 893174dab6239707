"""``graflow worker --metrics-port``: real worker commands, scraped over HTTP (docs/metrics.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import metricflows as flows
import pytest
from workerpool import Pool, wait_until, worker_env

from graflow.distributed import submit
from graflow.exceptions import WorkflowFailedError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
prometheus_client = pytest.importorskip("prometheus_client")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``: ``{(name, labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scraped(port: int, name: str, want: float, **labels: str) -> Samples:
    """Scrape until ``name{labels}`` reaches ``want``; returns that scrape."""
    found: list[Samples] = []

    def reached() -> bool:
        found[:] = [scrape(port)]
        return value(found[0], name, **labels) >= want

    wait_until(reached, 20, f"{name}{labels} >= {want}")
    return found[0]


def metrics_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("graflow-metrics-*"))


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def stop(pool: Pool, index: int = 0) -> int:
    """Stop one worker command: SIGTERM to its supervisor, SIGKILL to its worker processes
    (a warm stop can wait up to a minute on rq's pub/sub thread); returns its exit code."""
    proc = pool.procs[index]
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(pool.log_text(index)) from None


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_attempts_by_outcome_durations_and_checkpoints(redis_url: str, tmp: Path) -> None:
    port = free_port()
    pool = Pool(redis_url, 1, extra_paths=[str(HERE)], args=["--metrics-port", str(port), "--concurrency", "2"],
                TMPDIR=str(tmp))  # fmt: skip
    with pool:
        [directory] = metrics_dirs(tmp)  # the supervisor's private multiprocess directory
        run = submit(flows.mixed(), redis_url, queue=pool.queue, key_prefix=pool.prefix,
                     initial_channel={"ck": str(tmp / "ck" / "saved")})  # fmt: skip
        with pytest.raises(WorkflowFailedError):
            run.wait(timeout=30)
        samples = scraped(port, "graflow_task_attempts_total", 1, workflow="mixed", task="boom", outcome="failed")
        attempts = {(dict(k[1])["task"], dict(k[1])["outcome"]): v for k, v in samples.items()
                    if k[0] == "graflow_task_attempts_total" and dict(k[1]).get("workflow") == "mixed"}  # fmt: skip
        assert attempts == {("ok", "completed"): 1, ("flaky", "retried"): 1, ("flaky", "completed"): 1,
                            ("save", "completed"): 1, ("boom", "failed"): 1}  # fmt: skip
        assert value(samples, "graflow_task_attempts_started_total", workflow="mixed", task="flaky") == 2
        count = "graflow_task_attempt_duration_seconds_count"
        assert value(samples, count, workflow="mixed", task="flaky", outcome="retried") == 1
        assert value(samples, count, workflow="mixed", task="boom", outcome="failed") == 1
        assert value(samples, "graflow_checkpoint_writes_total", workflow="mixed") == 1
        written = sum(p.stat().st_size for p in (tmp / "ck").iterdir())
        assert value(samples, "graflow_checkpoint_bytes_sum", workflow="mixed") == written > 0
        assert value(samples, "graflow_checkpoint_bytes_count", workflow="mixed") == 1
        assert value(samples, "graflow_workers_alive") == 2
        assert value(samples, "graflow_redis_up") == 1
        assert value(samples, "graflow_worker_attempts_running") == 0
        assert value(samples, "graflow_queue_jobs", queue=pool.queue) == 0
        # the command removes the directory when it exits
        stop(pool)
        assert not directory.exists()


def test_queue_gauges_while_a_task_runs_and_no_task_label(redis_url: str, tmp: Path) -> None:
    """One worker process held by a task: the next run waits in the queue."""
    port = free_port()
    pool = Pool(redis_url, 1, extra_paths=[str(HERE)], args=["--metrics-port", str(port)],
                TMPDIR=str(tmp), GRAFLOW_METRICS_TASK_LABEL="0")  # fmt: skip
    with pool:
        first = submit(flows.held(), redis_url, queue=pool.queue, key_prefix=pool.prefix)
        wait_until(lambda: first.channel.get("waiting"), 20, "the task to hold")
        second = submit(flows.held(), redis_url, queue=pool.queue, key_prefix=pool.prefix)
        samples = scraped(port, "graflow_queue_oldest_job_age_seconds", 0.001, queue=pool.queue)
        assert value(samples, "graflow_queue_jobs", queue=pool.queue) == 1
        assert value(samples, "graflow_queue_running", queue=pool.queue) == 1
        assert value(samples, "graflow_queue_load", queue=pool.queue) == 2
        assert value(samples, "graflow_queue_scheduled", queue=pool.queue) == 0
        assert value(samples, "graflow_worker_attempts_running") == 1
        # GRAFLOW_METRICS_TASK_LABEL=0: by workflow only
        assert value(samples, "graflow_task_attempts_started_total", workflow="held") == 1
        first.channel.set("go", 1)
        second.channel.set("go", 1)
        assert first.wait(timeout=30) == "released" and second.wait(timeout=30) == "released"
        samples = scraped(port, "graflow_task_attempts_total", 2, workflow="held", outcome="completed")
        assert value(samples, "graflow_worker_attempts_running") == 0
        assert value(samples, "graflow_queue_load", queue=pool.queue) == 0


def test_leases_expired_after_a_worker_command_is_killed(redis_url: str, tmp: Path) -> None:
    """The victim runs the task; the metrics command's reaper redelivers it once its lease
    runs out, and runs it again."""
    port = free_port()
    pool = Pool(redis_url, 0, extra_paths=[str(HERE)], args=["--heartbeat", "1"])
    with pool:
        pool.start_worker()  # the victim, without metrics
        pool.wait_ready()
        run = submit(flows.held(), redis_url, queue=pool.queue, key_prefix=pool.prefix)
        wait_until(lambda: run.channel.get("waiting"), 20, "the victim to run the task")
        pool.args = ["--heartbeat", "1", "--metrics-port", str(port)]
        pool.start_worker(TMPDIR=str(tmp))
        pool.wait_ready()
        os.killpg(pool.procs[0].pid, signal.SIGKILL)
        samples = scraped(port, "graflow_leases_expired_total", 1)
        assert value(samples, "graflow_task_redeliveries_total", workflow="held", task="hold",
                     cause="lease_expired") == 1  # fmt: skip
        wait_until(lambda: len(run.channel.get("waiting") or []) == 2, 20, "the task to run again")
        run.channel.set("go", 1)
        assert run.wait(timeout=30) == "released"
        samples = scraped(port, "graflow_task_attempts_total", 1, workflow="held", task="hold", outcome="completed")
        assert value(samples, "graflow_task_attempts_started_total", workflow="held", task="hold") == 1


def test_a_dead_worker_process_is_handed_back_and_counted(redis_url: str, tmp: Path) -> None:
    """A worker process SIGKILLed under its supervisor: the supervisor hands its job back."""
    port = free_port()
    pool = Pool(redis_url, 1, extra_paths=[str(HERE)], args=["--metrics-port", str(port)], TMPDIR=str(tmp))
    with pool:
        run = submit(flows.held(), redis_url, queue=pool.queue, key_prefix=pool.prefix)
        wait_until(lambda: run.channel.get("waiting"), 20, "the task to hold")
        assert value(scrape(port), "graflow_worker_attempts_running") == 1
        [child] = children(pool.procs[0].pid)
        os.kill(child, signal.SIGKILL)
        scraped(port, "graflow_task_redeliveries_total", 1, workflow="held", task="hold", cause="worker_died")
        # the dead process's live gauge is gone with it (mark_process_dead)
        wait_until(lambda: len(run.channel.get("waiting") or []) == 2, 20, "the task to run again")
        samples = scrape(port)
        assert value(samples, "graflow_worker_attempts_running") == 1
        assert value(samples, "graflow_leases_expired_total") == 0
        run.channel.set("go", 1)
        assert run.wait(timeout=30) == "released"


def test_a_scrape_without_redis_still_answers(tmp: Path) -> None:
    """Redis stops under a running worker command: /metrics answers with graflow_redis_up 0."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server")
    redis_port, port = free_port(), free_port()
    server = subprocess.Popen([binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{redis_port}/0"
    pool = Pool(url, 0, extra_paths=[str(HERE)], args=["--metrics-port", str(port)], TMPDIR=str(tmp))
    try:
        wait_until(lambda: _answers(url), 10, "the private redis-server")
        pool.start_worker()
        pool.wait_ready()
        assert value(scrape(port), "graflow_redis_up") == 1
        server.terminate()
        server.wait(10)
        samples = scrape(port)
        assert value(samples, "graflow_redis_up") == 0
        assert value(samples, "graflow_workers_alive") == 1
        assert ("graflow_queue_load", frozenset({("queue", pool.queue)})) not in samples
    finally:
        for proc in pool.procs:  # not pool.stop(): its clean-up needs the Redis that is gone
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if server.poll() is None:
            server.kill()
            server.wait(10)


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _worker(*args: str, hide: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    """``graflow worker ARGS`` run to its end; ``hide``: as if prometheus-client were not installed."""
    return subprocess.run([sys.executable, "-c", _NO_PROMETHEUS if hide else _PLAIN, *args],
                          env=worker_env(**env), capture_output=True, text=True, timeout=60)  # fmt: skip


#: ``graflow worker ARGS`` in a process where prometheus_client cannot be imported.
_NO_PROMETHEUS = "import sys; sys.modules['prometheus_client'] = None; from graflow.cli import main; sys.argv[0] = 'graflow'; sys.exit(main())"
_PLAIN = "import sys; from graflow.cli import main; sys.argv[0] = 'graflow'; sys.exit(main())"


def test_metrics_port_without_the_extra_is_a_usage_error(redis_url: str) -> None:
    done = _worker("worker", "--url", redis_url, "--metrics-port", str(free_port()), "--burst", hide=True)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("graflow: error: --metrics-port/GRAFLOW_METRICS_PORT needs prometheus-client")
    assert "pip install 'graflow[metrics]'" in line
    # without the port the same process needs no prometheus-client (the worker's modules load)
    ok = _worker("worker", "--url", redis_url, "--check", hide=True)
    assert ok.returncode == 0, ok.stderr


def test_bad_or_busy_metrics_port_is_a_usage_error(redis_url: str, tmp: Path) -> None:
    bad = _worker("worker", "--url", redis_url, "--metrics-port", "70000")
    assert bad.returncode == 2 and "--metrics-port/GRAFLOW_METRICS_PORT 70000 is invalid" in bad.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        queue = f"gfmetrics{uuid.uuid4().hex[:8]}"
        done = _worker("worker", "--url", redis_url, "--queue", queue, "--prefix", queue, "--burst",
                       GRAFLOW_METRICS_PORT=str(taken), TMPDIR=str(tmp))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"graflow: error: cannot serve metrics on 127.0.0.1:{taken}" in done.stderr
    assert not metrics_dirs(tmp)  # its directory went with it


def test_pool_gauges_read_rqs_layout(redis_client: Any, key_prefix: str) -> None:
    """The keys and the enqueued_at format the scrape reads are rq's own (rqapi/private.py)."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from graflow.distributed.rqapi import layout
    from graflow.worker.pool_gauges import read_queues

    queue = Queue(key_prefix, connection=redis_client)
    assert layout.queue_key(key_prefix) == queue.key
    assert layout.started_key(key_prefix) == StartedJobRegistry(key_prefix, connection=redis_client).key
    assert layout.scheduled_key(key_prefix) == ScheduledJobRegistry(key_prefix, connection=redis_client).key
    try:
        before = time.time()
        queue.enqueue("builtins.print", "x")
        [(waiting, age, running, scheduled)] = read_queues(redis_client, [key_prefix]).values()
        assert (waiting, running, scheduled) == (1, 0, 0)
        assert 0 <= age <= time.time() - before + 1.0
        from datetime import timedelta

        queue.enqueue_in(timedelta(hours=1), "builtins.print", "later")
        assert read_queues(redis_client, [key_prefix])[key_prefix][3] == 1
    finally:
        names = list(redis_client.scan_iter(match=f"rq:*{key_prefix}*"))
        names += [layout.JOB_PREFIX + job_id for job_id in queue.job_ids]
        names += [layout.JOB_PREFIX + j for j in ScheduledJobRegistry(key_prefix, connection=redis_client).get_job_ids()]
        if names:
            redis_client.unlink(*names)
        redis_client.srem(layout.QUEUES_SET, queue.key)
