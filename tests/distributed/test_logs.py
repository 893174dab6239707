"""Per-attempt output capture on real workers and ``graflow logs`` (graflow.worker.capture,
graflow.distributed.run_logs, graflow.cli.logs)."""

from __future__ import annotations

import json
import select
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import log_flows
import pytest
from conftest import (
    SESSION_TTL,
    DistPool,
    graflow,
    graflow_popen,
    release,
    session_keys,
    wait_until,
)
from workerpool import Pool

from graflow import keys
from graflow.cli import main
from graflow.distributed import WorkflowRun, submit
from graflow.distributed.run_logs import LogEntry
from graflow.distributed.run_output import append_output
from graflow.distributed.session import SessionStore
from graflow.settings import Settings, using

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: The capture budget of the module's pool: the chatty task (about 12 KB) overflows it.
BUDGET = 4096


@pytest.fixture(scope="module")
def pool(redis_url: str) -> Iterator[DistPool]:
    with DistPool(redis_url, 2, GRAFLOW_LOG_CAPTURE_BYTES=str(BUDGET)) as p:
        yield p


def _submit(pool: DistPool, wf: Any) -> WorkflowRun:
    return submit(wf, pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)


def _ended(run: WorkflowRun, task_id: str) -> list[LogEntry]:
    """The run's output once ``task_id``'s last attempt has written its end entry (the last
    attempt of a run flushes after the step that ended the run)."""
    return wait_until(lambda: (lambda e: e if any(x.is_end and x.task_id == task_id for x in e) else None)(run.logs()),
                      20, f"the end entry of {task_id}")  # fmt: skip


def _cli(capsys: pytest.CaptureFixture[str], pool: DistPool, *args: str) -> tuple[int, list[str]]:
    code = main(["logs", *args, "--url", pool.redis_url, "--prefix", pool.prefix])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture(scope="module")
def talked(pool: DistPool) -> WorkflowRun:
    """One run of ``log_flows.talking``, finished and with all of its output written."""
    run = _submit(pool, log_flows.talking())
    assert run.wait(timeout=30) == "done"
    _ended(run, "last")
    return run


def _workers(pool: DistPool) -> set[str]:
    return {f"{pool.prefix}-w{i}" for i in range(pool.size)}


def test_each_line_is_labelled_with_task_attempt_worker_and_stream(
    pool: DistPool, talked: WorkflowRun, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _cli(capsys, pool, talked.session_id)
    assert code == 0
    by_text = {line.split("| ", 1)[1]: line.split("| ", 1)[0] for line in lines if "| " in line}
    expected = {
        "hello from speak": ("speak", 1, "stdout"),
        "to stderr": ("speak", 1, "stderr"),
        "WARNING myapp: a warning from myapp": ("speak", 1, "log"),
        "from a thread of speak": ("speak", 1, "stdout"),  # a thread the task started
        "flaky attempt 1": ("flaky", 1, "stdout"),
        "flaky attempt 2": ("flaky", 2, "stdout"),
        "the last word": ("last", 1, "stdout"),
    }
    for text, (task, attempt, stream) in expected.items():
        task_, attempt_, worker, stream_ = by_text[text].split(" ")
        assert (task_, attempt_, stream_) == (task, f"#{attempt}", stream), by_text[text]
        assert worker in _workers(pool)
    # The machinery's own log and graflow's warnings are not the task's output.
    assert not any("machinery" in line or "UnsignedPayloadWarning" in line for line in lines), lines
    # Each attempt that wrote something ends with its outcome; a quiet task has no lines.
    ends = [[*line.split(" ")[0:2], line.rsplit("| ", 1)[1]] for line in lines if " end| " in line]
    assert ends == [["speak", "#1", "completed"], ["flaky", "#1", "retried"], ["flaky", "#2", "completed"],
                    ["last", "#1", "completed"]]  # fmt: skip
    assert not any(line.startswith("quiet ") for line in lines)


def test_task_filter_and_json(pool: DistPool, talked: WorkflowRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _cli(capsys, pool, talked.session_id, "--task", "flaky", "--json")
    assert code == 0
    docs = [json.loads(line) for line in lines]
    assert {d["task_id"] for d in docs} == {"flaky"}
    assert [(d["attempt"], d["stream"], d.get("text") or d.get("outcome")) for d in docs] == [
        (1, "stdout", "flaky attempt 1"), (1, "end", "retried"), (2, "stdout", "flaky attempt 2"),
        (2, "end", "completed"),
    ]  # fmt: skip
    assert all(d["worker"] in _workers(pool) and d["spec_id"] for d in docs)
    assert [e.text for e in talked.logs("flaky") if not e.is_end] == ["flaky attempt 1\n", "flaky attempt 2\n"]


def test_the_workers_own_log_still_has_the_output(pool: DistPool, talked: WorkflowRun) -> None:
    text = "".join(Path(path).read_text(errors="replace") for path in pool.logs)
    for needle in ("hello from speak", "to stderr", "a warning from myapp", "from a thread of speak", "the last word"):
        assert needle in text


def test_output_stream_has_the_run_ttl(pool: DistPool, talked: WorkflowRun, client: Any) -> None:
    ttl = client.pttl(keys.SessionKeys(pool.prefix, talked.session_id).output)
    assert 0 < ttl <= SESSION_TTL * 1000


def test_output_past_the_budget_keeps_head_marker_and_tail(pool: DistPool) -> None:
    run = _submit(pool, log_flows.chatty())
    assert run.wait(timeout=30) == log_flows.CHATTY_LINES
    entries = _ended(run, "chatter")
    written = "".join(f"line {i:04d} " + "x" * 20 + "\n" for i in range(log_flows.CHATTY_LINES))
    [marker] = [e for e in entries if e.stream == "omitted"]
    [end] = [e for e in entries if e.is_end]
    head = "".join(e.text for e in entries[: entries.index(marker)])
    tail = "".join(e.text for e in entries[entries.index(marker) + 1 : entries.index(end)])
    assert marker.text == f"[… {end.dropped} bytes omitted …]\n"
    assert len(head) == BUDGET // 2 and len(tail) == BUDGET // 2
    assert written.startswith(head) and written.endswith(tail)
    assert len(head) + end.dropped + len(tail) == len(written)
    assert end.outcome == "completed"


def test_follow_prints_as_it_comes_and_exits_with_the_run_code(pool: DistPool) -> None:
    run = _submit(pool, log_flows.gated_talker())
    proc = graflow_popen("logs", run.session_id, "--follow", "--url", pool.redis_url, "--prefix", pool.prefix)
    try:
        assert proc.stdout is not None
        # The first line arrives while the task is still waiting at its gate.
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no output while the task runs"
        first = proc.stdout.readline()
        assert first.startswith("waiter #1 ") and first.endswith("stdout| before the gate\n"), first
        assert run.status().state == "running"
        release(run)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        release(run)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr  # the run failed
    assert "stdout| after the gate" in rest and rest.rstrip().endswith("end| failed"), rest


def test_ttl_when_only_the_final_task_printed(pool: DistPool, client: Any) -> None:
    run = _submit(pool, log_flows.final_printer())
    run.wait(timeout=30)
    entries = _ended(run, "closing")
    assert [e.text for e in entries if not e.is_end] == ["closing words\n"]
    assert entries[-1].run == "completed"  # written after the run had ended
    for name in session_keys(client, pool.prefix, run.session_id):
        assert 0 < client.pttl(name) <= SESSION_TTL * 1000, name


@pytest.mark.parametrize(("capture", "flow"), [("0", log_flows.final_printer), ("65536", log_flows.silent)],
                         ids=["capture-off", "attempts-that-write-nothing"])  # fmt: skip
def test_nothing_is_written_when_capture_is_off_or_a_run_is_silent(
    make_pool: Any, client: Any, capture: str, flow: Any
) -> None:
    pool = make_pool(1, GRAFLOW_LOG_CAPTURE_BYTES=capture)
    first = _submit(pool, flow())
    first.wait(timeout=30)
    # One worker runs jobs one after another: once a second run is over, the first run's
    # last attempt has long returned (a flush would have come before it did).
    second = _submit(pool, log_flows.final_printer())
    second.wait(timeout=30)
    assert not client.exists(keys.SessionKeys(pool.prefix, first.session_id).output)
    assert first.logs() == []
    if capture == "0":
        assert "closing words" in pool.log_text(0)  # printed all the same


def test_follow_of_a_finished_run_prints_it_and_exits_with_its_code(pool: DistPool, talked: WorkflowRun) -> None:
    out = graflow("logs", talked.session_id, "--follow", "--url", pool.redis_url, "--prefix", pool.prefix)
    assert out.returncode == 0, out.stderr
    assert "last #1 " in out.stdout and out.stdout.rstrip().endswith("end| completed")


def test_unknown_session_exits_4_and_unreachable_redis_3(pool: DistPool) -> None:
    out = graflow("logs", "0" * 32, "--url", pool.redis_url, "--prefix", pool.prefix)
    assert out.returncode == 4 and out.stderr.startswith("graflow: error: ") and " — " in out.stderr
    out = graflow("logs", "0" * 32, "--url", "redis://127.0.0.1:1/0")
    assert out.returncode == 3 and out.stderr.startswith("graflow: error: "), out.stderr


def test_append_writes_nothing_for_a_missing_session_and_takes_a_finished_runs_ttl(
    redis_client: Any, key_prefix: str
) -> None:
    labels = ("t", "spec", "1", "w")
    k = keys.SessionKeys(key_prefix, "s1")
    assert append_output(redis_client, key_prefix, "s1", labels, [("stdout", "x\n")]) == -1
    assert not redis_client.exists(k.output)
    store = SessionStore(redis_client, key_prefix, "s1")
    store.create({"queue": key_prefix}, {})
    assert append_output(redis_client, key_prefix, "s1", labels, [("stdout", "live\n")]) == 1
    assert redis_client.pttl(k.output) == -1  # a live run's keys have no TTL
    with using(Settings(session_ttl=60)):
        store.end_run("completed", "drained")
    assert 0 < redis_client.pttl(k.output) <= 60_000  # finish gave it the run's TTL
    redis_client.persist(k.output)
    end = {"outcome": "completed", "dropped": 0}
    assert append_output(redis_client, key_prefix, "s1", labels, [("stderr", "late\n")], end) == 2
    assert 0 < redis_client.pttl(k.output) <= 60_000
    run = WorkflowRun("s1", client=redis_client, key_prefix=key_prefix)
    assert [(e.stream, e.text, e.run) for e in run.logs()] == [
        ("stdout", "live\n", ""), ("stderr", "late\n", ""), ("end", "", "completed")]  # fmt: skip
    assert [e.stream for e in run.follow_logs()] == ["stdout", "stderr", "end"]
    assert store.purge() > 0 and not redis_client.exists(k.output)


def test_the_in_process_task_worker_captures_too(redis_url: str, key_prefix: str) -> None:
    import redis

    from graflow.distributed.task_queue import DistributedTaskQueue
    from graflow.worker.worker import TaskWorker

    client = redis.Redis.from_url(redis_url)
    worker = TaskWorker(DistributedTaskQueue(redis_client=client, key_prefix=key_prefix), f"{key_prefix}-tw",
                        max_concurrent_tasks=1, poll_interval=0.02)  # fmt: skip
    worker.start()
    try:
        run = submit(log_flows.final_printer(), redis_url, queue=key_prefix, key_prefix=key_prefix)
        run.wait(timeout=30)
        entries = _ended(run, "closing")
    finally:
        worker.stop(timeout=5)
        Pool(redis_url, 0, prefix=key_prefix).cleanup()
        client.close()
    assert [(e.task_id, e.worker, e.stream, e.text) for e in entries if not e.is_end] == [
        ("closing", f"{key_prefix}-tw-t1", "stdout", "closing words\n")]  # fmt: skip
