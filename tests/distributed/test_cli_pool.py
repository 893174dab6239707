"""``graflow submit`` and ``graflow status`` against a real pool."""

from __future__ import annotations

import json
import re

import pytest
from conftest import DistPool, graflow, graflow_popen, wait_until

from graflow.distributed import WorkflowRun

pytestmark = [pytest.mark.redis, pytest.mark.slow]
UNSIGNED = "loaded an unsigned pickle from Redis"


def _where(pool: DistPool) -> list[str]:
    return ["--url", pool.redis_url, "--prefix", pool.prefix, "--queue", pool.queue]


def _attach(pool: DistPool, session_id: str) -> WorkflowRun:
    return WorkflowRun.attach(session_id, redis_url=pool.redis_url, key_prefix=pool.prefix)


def _one_error_line(stderr: str) -> str:
    """The error: one line, the last one (warnings logged before it are allowed)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("graflow: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert " — " in errors[0], errors[0]  # <what> — <fix>
    return errors[0]


def test_submit_wait_prints_session_then_result(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:summing", *_where(pool), "--set", "n=5", "--wait", "--timeout", "20")
    assert out.returncode == 0, out.stderr
    session_id, result = out.stdout.splitlines()
    assert len(session_id) == 32 and json.loads(result) == 10
    run = _attach(pool, session_id)
    assert run.status().state == "completed" and run.get_result("numbers") == [0, 1, 2, 3, 4]


def test_submit_without_wait_returns_at_once(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:e6", *_where(pool), "--set", "x=4")
    assert out.returncode == 0, out.stderr
    [session_id] = out.stdout.split()
    assert _attach(pool, session_id).wait(timeout=20) == "16"


def test_submit_start_node_and_max_steps(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:looping", *_where(pool), "--start-node", "agent", "--max-steps", "3",
                  "--wait", "--timeout", "20")  # fmt: skip
    assert out.returncode == 0, out.stderr  # a terminated run exits 0
    session_id, result = out.stdout.splitlines()
    assert json.loads(result) == 1
    status = _attach(pool, session_id).status()
    assert (status.state, status.stop_reason, status.steps) == ("terminated", "max_steps", 3)


def test_failing_workflow_exits_1(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:failing_plain", *_where(pool), "--wait", "--timeout", "20")
    assert out.returncode == 1, out.stderr
    [session_id] = out.stdout.split()
    line = _one_error_line(out.stderr)
    assert session_id in line and "explode" in line and "FlowError: ('boom', 42)" in line
    assert line.count("boom") == 2  # the run's error once, its cause once: no repetition
    assert _attach(pool, session_id).status().state == "failed"
    # Loading the pickled cause warns (no GRAFLOW_SECRET_KEY): one log line, not also the
    # warnings module's copy of it; the same in each worker's log.
    assert out.stderr.count(UNSIGNED) == 1, out.stderr
    for index in range(len(pool.logs)):
        log = pool.log_text(index)
        assert "UnsignedPayloadWarning:" not in log and log.count(UNSIGNED) <= 1, log


def test_timeout_exits_124(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:slow_cli", *_where(pool), "--wait", "--timeout", "0.5")
    assert out.returncode == 124, out.stderr
    [session_id] = out.stdout.split()
    assert "0.5" in _one_error_line(out.stderr)
    run = _attach(pool, session_id)
    assert run.status().state == "running"
    run.channel.set("go", True)
    assert run.wait(timeout=20) == "finally"


def test_canceled_run_exits_5(pool: DistPool) -> None:
    out = graflow("submit", "dist_flows:canceling", *_where(pool), "--wait", "--timeout", "20")
    assert out.returncode == 5, out.stderr
    [session_id] = out.stdout.split()
    assert "not today" in _one_error_line(out.stderr)
    status = _attach(pool, session_id).status()
    assert (status.state, status.stop_reason) == ("canceled", "cancel_workflow")


def test_run_canceled_by_another_process_exits_5(pool: DistPool) -> None:
    proc = graflow_popen("submit", "dist_flows:slow_cli", *_where(pool), "--wait", "--timeout", "20")
    try:
        assert proc.stdout is not None
        session_id = proc.stdout.readline().strip()
        run = _attach(pool, session_id)
        wait_until(lambda: run.channel.get("waiting"), what="the task at its gate")
        assert run.cancel("stopped by the test")
        stdout, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 5, stderr
        assert "stopped by the test" in _one_error_line(stderr) and stdout == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        run.channel.set("go", True)


@pytest.mark.parametrize(
    ("target", "extra", "needle"),
    [
        ("no_such_module_xyz:wf", [], "no_such_module_xyz"),
        ("dist_flows:no_such_attr", [], "no_such_attr"),
        ("dist_flows", [], "module:attr"),
        ("dist_flows:not_a_workflow", [], "not a workflow"),
        ("dist_flows:summing", ["--set", "n"], "KEY=JSON"),
        ("dist_flows:summing", ["--set", "n={bad"], "not JSON"),
        ("dist_flows:summing", ["--start-node", "nope"], "nope"),
    ],
)
def test_bad_module_or_arguments_exit_2(pool: DistPool, target: str, extra: list[str], needle: str) -> None:
    out = graflow("submit", target, *_where(pool), *extra)
    assert out.returncode == 2, out.stderr
    assert needle in _one_error_line(out.stderr)
    assert out.stdout == ""


def test_status_shows_progress_and_events(pool: DistPool) -> None:
    proc = graflow("submit", "dist_flows:slow_cli", *_where(pool))
    [session_id] = proc.stdout.split()
    run = _attach(pool, session_id)
    try:
        wait_until(lambda: run.channel.get("waiting"), what="the task at its gate")
        out = graflow("status", session_id, "--url", pool.redis_url, "--prefix", pool.prefix)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert f"session     {session_id}" in text and "state       running" in text
        assert "1/2 tasks done, 1 running, 0 pending; steps 1/10000" in text
        assert re.search(rf"running\n  waiter #1 on {pool.prefix}-w\d for ", text)
        assert "events" in text
        events = text.split("events", 1)[1]
        assert re.search(r"started +first ", events) and re.search(r"completed +first ", events)
        assert re.search(r"started +waiter ", events)

        js = graflow("status", session_id, "--url", pool.redis_url, "--prefix", pool.prefix, "--json")
        assert js.returncode == 0, js.stderr
        doc = json.loads(js.stdout)
        assert (doc["session_id"], doc["state"], doc["done"]) == (session_id, "running", False)
        assert [(a["task_id"], a["attempt"], a["lost"]) for a in doc["running_attempts"]] == [("waiter", 1, False)]
        assert (doc["completed"], doc["pending"], doc["running"], doc["steps"]) == (1, 0, 1, 1)
        assert doc["created_at"] <= doc["updated_at"] and doc["max_steps_reached"] is False

        watch = graflow_popen("status", session_id, "--url", pool.redis_url, "--prefix", pool.prefix, "--watch")
        try:
            assert watch.stdout is not None
            assert watch.stdout.readline() == f"session {session_id} (slow): running\n"
            assert watch.poll() is None  # still watching a running run
            run.channel.set("go", True)
            stdout, stderr = watch.communicate(timeout=15)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.communicate()
        assert watch.returncode == 0, stderr
        assert stdout.splitlines()[-1].endswith("completed (drained): 2/2 tasks done, 0 running, 0 pending; steps 2/10000")
    finally:
        run.channel.set("go", True)
    assert run.wait(timeout=10) == "finally"


def test_status_json_watch_prints_one_document_per_refresh(pool: DistPool) -> None:
    proc = graflow("submit", "dist_flows:summing", *_where(pool), "--set", "n=3", "--wait", "--timeout", "20")
    session_id = proc.stdout.splitlines()[0]
    out = graflow("status", session_id, "--url", pool.redis_url, "--prefix", pool.prefix, "--json", "--watch")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == 1 and docs[0]["state"] == "completed" and docs[0]["done"] is True
