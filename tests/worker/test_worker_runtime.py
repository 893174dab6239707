"""``graflow worker`` as real subprocesses: leases, workers, exit codes (see docs/failover.md)."""

from __future__ import annotations

import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import (
    WorkerProcess,
    enqueue,
    entries,
    env_for_worker,
    events,
    graflow_worker,
    rq_queue,
    started_leases,
    wait_until,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_burst_runs_jobs_in_process_or_in_a_forked_horse(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path, fork: bool
) -> None:
    out = f"{queue_name}:out"
    enqueue(redis_client, queue_name, "record", out, "one", job_id=f"{queue_name}-1")
    enqueue(redis_client, queue_name, "boom", out, job_id=f"{queue_name}-2")
    extra = ["--burst", "--fork"] if fork else ["--burst"]
    worker = graflow_worker(redis_url, queue_name, tmp_path, *extra)
    assert worker.wait() == 0, worker.stderr
    ran = entries(redis_client, out)
    assert [e["value"] for e in ran] == ["one", "boom"]
    # The command is a supervisor; its one worker process is a child of it.
    if fork:  # each job in a work horse forked by that worker
        assert all(e["ppid"] != worker.pid and e["pid"] != worker.pid for e in ran)
    else:  # each job in the worker process itself, on its main thread
        assert all(e["ppid"] == worker.pid and e["thread"] == "MainThread" for e in ran)
    failed = rq_queue(redis_client, queue_name).failed_job_registry.get_job_ids()
    assert failed == [f"{queue_name}-2"]
    assert redis_client.llen(f"rq:queue:{queue_name}") == 0


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_lease_is_now_plus_heartbeat_and_refreshed(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path, fork: bool
) -> None:
    heartbeat = 1.5
    out, release = f"{queue_name}:out", f"{queue_name}:release"
    job_id = f"{queue_name}-long"
    enqueue(redis_client, queue_name, "hold", out, release, job_id=job_id)
    extra = ["--heartbeat", str(heartbeat)] + (["--fork"] if fork else [])
    worker = graflow_worker(redis_url, queue_name, tmp_path, *extra)
    try:
        wait_until(lambda: events(redis_client, out, "started"), what="job start")
        first = started_leases(redis_client, queue_name)[job_id]
        seen = time.time()
        # Written at start and at each refresh as now + heartbeat (rq: +60 s or +inf).
        assert seen - 0.2 <= first <= seen + heartbeat + 0.2
        second = wait_until(
            lambda: (
                (s := started_leases(redis_client, queue_name).get(job_id))
                and s > first + 0.1
                and s
            ),
            timeout=3 * heartbeat,
            what="a lease refresh",
        )
        now = time.time()
        assert now + heartbeat - heartbeat / 3 - 0.3 <= second <= now + heartbeat + 0.2
        third = wait_until(
            lambda: (
                (s := started_leases(redis_client, queue_name).get(job_id))
                and s > second + 0.1
                and s
            ),
            timeout=3 * heartbeat,
            what="a second lease refresh",
        )
        assert third > second
        redis_client.set(release, 1)
        wait_until(lambda: events(redis_client, out, "finished"), what="job end")
        wait_until(lambda: not started_leases(redis_client, queue_name), what="lease removal")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.stderr
    finally:
        worker.kill()


def _shutdown_requested(client: Any, worker_name: str) -> bool:
    return bool(client.hexists(f"rq:worker:{worker_name}", "shutdown_requested_date"))


def test_first_sigterm_finishes_the_running_job_and_exits_0(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path
) -> None:
    out, release = f"{queue_name}:out", f"{queue_name}:release"
    enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-a")
    worker = graflow_worker(redis_url, queue_name, tmp_path)
    try:
        wait_until(lambda: events(redis_client, out, "started"), what="job start")
        enqueue(redis_client, queue_name, "record", out, "later", job_id=f"{queue_name}-b")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: _shutdown_requested(redis_client, f"{queue_name}-w"), what="warm stop")
        assert worker.proc.poll() is None  # still running the job
        redis_client.set(release, 1)
        assert worker.wait() == 0, worker.stderr
        assert len(events(redis_client, out, "finished")) == 1
        # The job queued after the signal was not taken.
        assert rq_queue(redis_client, queue_name).job_ids == [f"{queue_name}-b"]
    finally:
        worker.kill()


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_second_sigterm_hands_the_job_back_and_exits_1(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path, fork: bool
) -> None:
    out, release = f"{queue_name}:out", f"{queue_name}:release"
    job_id = f"{queue_name}-x"
    enqueue(redis_client, queue_name, "hold", out, release, job_id=job_id)
    worker = graflow_worker(redis_url, queue_name, tmp_path, *(["--fork"] if fork else []))
    try:
        wait_until(lambda: events(redis_client, out, "started"), what="job start")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: _shutdown_requested(redis_client, f"{queue_name}-w"), what="warm stop")
        first = time.monotonic()  # the handler has run by now
        # rq ignores a repeat within 1 s (one Ctrl+C delivered twice); wait that out.
        wait_until(lambda: time.monotonic() - first > 1.05, what="rq's duplicate-signal window")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 1, worker.stderr
    finally:
        worker.kill()
    assert "Traceback" not in worker.stderr
    assert not events(redis_client, out, "finished")
    queue = rq_queue(redis_client, queue_name)
    assert queue.job_ids == [f"{job_id}-h1"]
    new = queue.fetch_job(f"{job_id}-h1")
    assert new.func_name == "jobfuncs.hold" and list(new.args) == [out, release]
    assert new.result_ttl == 0 and new.meta["graflow_handed_back_from"] == job_id
    assert queue.failed_job_registry.get_job_ids() == [job_id]
    old = queue.fetch_job(job_id)
    reason = f"abandoned: worker {queue_name}-w stopped by a second signal; handed back"
    assert old.latest_result().exc_string == reason
    assert not started_leases(redis_client, queue_name)


def test_unreachable_redis_exits_3_with_one_masked_line(tmp_path: Path) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    started = time.monotonic()
    worker = WorkerProcess(["-m", "graflow", "worker", "--url", url], tmp_path)
    assert worker.wait(30) == 3
    waited = time.monotonic() - started
    lines = _error_lines(worker.stderr)
    assert len(lines) == 1, worker.stderr
    assert lines[0].startswith(
        f"graflow: error: cannot reach Redis at redis://:***@127.0.0.1:{url.split(':')[3]}"
    )
    assert "s3cret-pw" not in worker.stderr + worker.stdout
    assert waited >= 9.5  # retried for 10 s first


def test_check_pings_redis(redis_url: str, tmp_path: Path) -> None:
    good = WorkerProcess(["-m", "graflow", "worker", "--check", "--url", redis_url], tmp_path)
    assert good.wait() == 0, good.stderr
    bad_url = f"redis://:pw-x9@127.0.0.1:{_free_port()}/0"
    bad = WorkerProcess(["-m", "graflow", "worker", "--check", "--url", bad_url], tmp_path)
    assert bad.wait() == 3
    lines = _error_lines(bad.stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "graflow: error: cannot reach Redis at redis://:***@"
    )
    assert "pw-x9" not in bad.stderr


def test_concurrency_2_runs_two_worker_processes(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path
) -> None:
    out, release = f"{queue_name}:out", f"{queue_name}:release"
    for i in (1, 2):
        enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-{i}")
    worker = graflow_worker(redis_url, queue_name, tmp_path, "--concurrency", "2")
    try:
        started = wait_until(
            lambda: len(s := events(redis_client, out, "started")) == 2 and s,
            what="both jobs running",
        )
        assert len({e["pid"] for e in started}) == 2
        assert worker.pid not in {e["pid"] for e in started}
        assert {e["worker"] for e in started} == {f"{queue_name}-w-1", f"{queue_name}-w-2"}
        redis_client.set(release, 1)
        wait_until(lambda: len(events(redis_client, out, "finished")) == 2, what="both jobs done")
        worker.signal(signal.SIGTERM)  # forwarded to both children
        assert worker.wait() == 0, worker.stderr
    finally:
        worker.kill()


def test_upstream_main_with_env(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path
) -> None:
    out = f"{queue_name}:out"
    enqueue(redis_client, queue_name, "record", out, "upstream", job_id=f"{queue_name}-1")
    env = env_for_worker(
        REDIS_URL=redis_url, REDIS_KEY_PREFIX=queue_name, WORKER_ID=f"{queue_name}-up"
    )
    worker = WorkerProcess(
        ["-m", "graflow.worker.main", "--burst", "--poll-interval", "0.5"], tmp_path, env
    )
    assert worker.wait() == 0, worker.stderr
    [entry] = entries(redis_client, out)
    assert entry["value"] == "upstream" and entry["ppid"] == worker.pid


def test_import_runs_before_jobs(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    worker = graflow_worker(
        redis_url, queue_name, tmp_path, "--burst", "--import", "import_marker",
        GRAFLOW_TEST_IMPORT_MARKER=str(marker),
    )  # fmt: skip
    assert worker.wait() == 0, worker.stderr
    assert marker.read_text() == str(worker.pid)
    bad = graflow_worker(redis_url, queue_name, tmp_path, "--burst", "--import", "no_such_module_x")
    assert bad.wait() == 2
    lines = _error_lines(bad.stderr)
    assert (
        len(lines) == 1
        and "no_such_module_x" in lines[0]
        and lines[0].startswith("graflow: error:")
    )


@pytest.mark.parametrize("burst", [True, False], ids=["burst", "scheduler-process"])
def test_delayed_jobs_run(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path, burst: bool
) -> None:
    out = f"{queue_name}:out"
    queue = rq_queue(redis_client, queue_name)
    # rq stores whole seconds: 2 s makes the job not yet due when the worker starts.
    queue.enqueue_in(
        timedelta(seconds=2), "jobfuncs.record", out, "delayed",
        job_id=f"{queue_name}-later", result_ttl=0, job_timeout=-1,
    )  # fmt: skip
    assert queue.scheduled_job_registry.get_job_ids() == [f"{queue_name}-later"]
    worker = graflow_worker(redis_url, queue_name, tmp_path, *(["--burst"] if burst else []))
    try:
        if burst:  # --burst waits for delayed jobs of its queues, then exits
            assert worker.wait() == 0, worker.stderr
        else:
            wait_until(lambda: entries(redis_client, out), what="the delayed job")
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0, worker.stderr
    finally:
        worker.kill()
    assert [e["value"] for e in entries(redis_client, out)] == ["delayed"]


def test_a_child_dying_on_its_own_is_restarted_under_its_name(
    redis_url: str, redis_client: Any, queue_name: str, tmp_path: Path
) -> None:
    import os

    out, release = f"{queue_name}:out", f"{queue_name}:release"
    enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-1")
    worker = graflow_worker(redis_url, queue_name, tmp_path, "--concurrency", "2")
    try:
        [started] = wait_until(lambda: events(redis_client, out, "started"), what="job start")
        os.kill(started["pid"], signal.SIGKILL)  # a worker process dies (OOM killer, say)
        wait_until(lambda: "restarting worker" in worker.stderr, what="the restart")
        # Both names serve again: the restarted one runs a job while the other holds one.
        enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-2")
        enqueue(redis_client, queue_name, "hold", out, release, job_id=f"{queue_name}-3")
        later = wait_until(lambda: len(events(redis_client, out, "started")) == 3
                           and events(redis_client, out, "started")[1:], what="two more starts")  # fmt: skip
        assert {e["worker"] for e in later} == {f"{queue_name}-w-1", f"{queue_name}-w-2"}
        assert started["pid"] not in {e["pid"] for e in later}
        redis_client.set(release, "1")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.stderr  # the death cost nothing but a restart
    finally:
        worker.kill()
    assert f"worker {started['worker']} died unexpectedly (signal 9)" in worker.stderr
