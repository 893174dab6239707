"""Operating a pool from a terminal: ``runs``, ``cancel``, ``result``, ``status`` (live).

Every test drives real ``graflow worker`` processes and the real ``graflow`` command.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from conftest import DistPool, child_env, graflow, graflow_popen, release, wait_until

from graflow import keys
from graflow.distributed import WorkflowRun
from graflow.distributed.run_view import list_runs

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _at(pool: DistPool) -> list[str]:
    return ["--url", pool.redis_url, "--prefix", pool.prefix]


def _submit(pool: DistPool, target: str, *extra: str) -> str:
    out = graflow("submit", target, *_at(pool), "--queue", pool.queue, *extra)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.splitlines()[0]


def _attach(pool: DistPool, session_id: str) -> WorkflowRun:
    return WorkflowRun.attach(session_id, redis_url=pool.redis_url, key_prefix=pool.prefix)


def _error(out: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("graflow: error: ")]
    assert len(lines) == 1 and " — " in lines[0], out.stderr
    return lines[0]


def _gated(pool: DistPool) -> tuple[str, WorkflowRun]:
    """A run of ``slow_cli`` whose second task waits at its gate."""
    session_id = _submit(pool, "dist_flows:slow_cli")
    run = _attach(pool, session_id)
    wait_until(lambda: run.running_attempts(), what="the waiter to run")
    return session_id, run


def test_runs_lists_newest_first_with_state_workflow_and_limit(pool: DistPool) -> None:
    done = _submit(pool, "dist_flows:summing", "--set", "n=3", "--wait", "--timeout", "20")
    failed = _submit(pool, "dist_flows:failing_plain", "--wait", "--timeout", "20")
    running, run = _gated(pool)
    try:
        out = graflow("runs", *_at(pool))
        assert out.returncode == 0, out.stderr
        header, *rows = out.stdout.splitlines()
        assert header.split() == ["SESSION", "WORKFLOW", "STATE", "PROGRESS", "AGE", "DURATION", "WORKERS"]
        order = [r.split()[0] for r in rows]
        assert order.index(running) < order.index(failed) < order.index(done)  # newest first
        line = {r.split()[0]: r for r in rows}
        assert re.search(r"summing +completed +\d+/\d+ ", line[done])
        assert "failed: explode" in line[failed]
        assert "running" in line[running] and "(1 running)" in line[running]
        assert pool.prefix in line[done]  # the worker that ran it (named after the prefix)

        only_failed = graflow("runs", *_at(pool), "--state", "failed", "--json")
        docs = json.loads(only_failed.stdout)
        assert failed in [d["session_id"] for d in docs] and {d["state"] for d in docs} == {"failed"}
        doc = next(d for d in docs if d["session_id"] == failed)
        assert (doc["failed_task"], doc["workflow"]) == ("explode", "failing")
        assert doc["workers"] and all(n >= 1 for n in doc["workers"].values())

        by_name = json.loads(graflow("runs", *_at(pool), "--workflow", "summing", "--json").stdout)
        assert done in [d["session_id"] for d in by_name] and {d["workflow"] for d in by_name} == {"summing"}
        newest = json.loads(graflow("runs", *_at(pool), "--limit", "1", "--json").stdout)
        assert [d["session_id"] for d in newest] == [running]
        recent = json.loads(graflow("runs", *_at(pool), "--since", "1h", "--state", "running,completed", "--json").stdout)
        assert {running, done} <= {d["session_id"] for d in recent} and failed not in {d["session_id"] for d in recent}

        assert "unknown state 'done'" in _error(graflow("runs", *_at(pool), "--state", "done"))
        bad = graflow("runs", *_at(pool), "--since", "yesterday")
        assert bad.returncode == 2 and "bad duration 'yesterday'" in _error(bad)
    finally:
        release(run)
    assert run.wait(timeout=20) == "finally"


def test_run_index_expires_with_the_runs(make_pool, client) -> None:  # type: ignore[no-untyped-def]
    pool = make_pool(1, GRAFLOW_SESSION_TTL="1")
    session_id = _submit(pool, "dist_flows:summing", "--set", "n=2", "--wait", "--timeout", "20")
    index = keys.run_index(pool.prefix)
    assert client.zscore(index, session_id) is not None
    assert client.zscore(keys.run_expiry(pool.prefix), session_id) is not None  # its end was noted
    # Its keys expire a second after its end; the next listing drops it from the index.
    wait_until(lambda: not client.exists(keys.SessionKeys(pool.prefix, session_id).meta), what="the session's TTL")
    assert session_id not in [r.session_id for r in list_runs(client, pool.prefix)]
    assert client.zscore(index, session_id) is None and client.zscore(keys.run_expiry(pool.prefix), session_id) is None

    purged = _submit(pool, "dist_flows:summing", "--set", "n=2", "--wait", "--timeout", "20")
    _attach(pool, purged).purge()
    assert client.zscore(index, purged) is None  # a purge takes it out at once


def test_cancel_stops_the_running_attempt_then_refuses_an_ended_run(pool: DistPool) -> None:
    session_id, run = _gated(pool)
    try:
        out = graflow("cancel", session_id, *_at(pool), "--wait", "--timeout", "20")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"canceled {session_id}", f"no attempt of {session_id} is running"]
        status = run.status()
        assert (status.state, status.stop_reason, status.error) == ("canceled", "run_canceled", "canceled by operator")
        assert run.running_attempts() == [] and "waiter" not in run.store.completed()

        again = graflow("cancel", session_id, *_at(pool))
        assert again.returncode == 7 and "had already ended (canceled)" in _error(again)
        unknown = graflow("cancel", "nosuchsession", *_at(pool))
        assert unknown.returncode == 4 and "no graflow session 'nosuchsession'" in _error(unknown)
    finally:
        release(run)


def test_result_and_status_json_for_each_outcome(pool: DistPool) -> None:
    done = _submit(pool, "dist_flows:summing", "--set", "n=4", "--wait", "--timeout", "20")
    out = graflow("result", done, *_at(pool))
    assert (out.returncode, json.loads(out.stdout)) == (0, 6)
    assert json.loads(graflow("result", done, *_at(pool), "--task", "numbers").stdout) == [0, 1, 2, 3]
    doc = json.loads(graflow("result", done, *_at(pool), "--json").stdout)
    assert (doc["state"], doc["task"], doc["result"]) == ("completed", "total", 6)
    missing = graflow("result", done, *_at(pool), "--task", "nope")
    assert missing.returncode == 4 and "no result for task 'nope'" in _error(missing)
    status = json.loads(graflow("status", done, *_at(pool), "--json").stdout)
    assert (status["result"], status["result_task"], status["running_attempts"]) == (6, "total", [])

    failed = _submit(pool, "dist_flows:failing_plain", "--wait", "--timeout", "20")
    out = graflow("result", failed, *_at(pool))
    assert out.returncode == 1 and "failed in task 'explode': GraflowRuntimeError" in _error(out)
    doc = json.loads(graflow("result", failed, *_at(pool), "--json").stdout)
    assert doc["error"]["task"] == "explode" and doc["error"]["type"] == "GraflowRuntimeError"
    status = json.loads(graflow("status", failed, *_at(pool), "--json").stdout)
    assert (status["failed_task"], status["error_type"]) == ("explode", "GraflowRuntimeError")
    assert "boom" in status["error"] and "result" not in status

    running, run = _gated(pool)
    try:
        out = graflow("result", running, *_at(pool))
        assert out.returncode == 6 and "has not finished (running" in _error(out)
        run.cancel()
        out = graflow("result", running, *_at(pool))
        assert out.returncode == 5 and "was canceled" in _error(out)
    finally:
        release(run)
    assert graflow("result", "nosuchsession", *_at(pool)).returncode == 4


def test_watch_names_tasks_marks_a_lost_worker_and_exits_with_the_run_code(make_pool) -> None:  # type: ignore[no-untyped-def]
    # One worker: once it is killed nobody reaps its lease, so the lost state lasts until
    # a second worker starts, and the watcher is sure to see it.
    pool = make_pool(1)
    session_id, run = _gated(pool)
    watch = graflow_popen("status", session_id, *_at(pool), "--watch")
    seen: list[str] = []

    def line_with(needle: str) -> str:
        assert watch.stdout is not None
        while True:
            line = watch.stdout.readline()
            assert line, f"watch ended before {needle!r}: {seen} {watch.stderr.read() if watch.stderr else ''}"
            seen.append(line.rstrip("\n"))
            if needle in line:
                return line

    try:
        line_with("started       waiter")
        os.killpg(pool.procs[0].pid, signal.SIGKILL)  # the whole worker, as on host loss
        lost = line_with("worker lost, waiting for redelivery")
        assert f"waiter #1 on {pool.prefix}-w0" in lost
        pool.start_worker()
        line_with("redelivered   waiter")
        line_with("started       waiter")
        release(run)
        assert watch.wait(timeout=20) == 0
        rest = watch.stdout.read() if watch.stdout else ""
    finally:
        release(run)
        if watch.poll() is None:
            watch.kill()
        watch.communicate()
    lines = seen + rest.splitlines()
    assert lines[0] == f"session {session_id} (slow): running"
    events = [ln for ln in lines[1:] if re.match(r"\d\d:\d\d:\d\d\.\d{3}  (started|completed|redelivered) ", ln)]
    assert events and all(re.match(r"\S+  \S+ +(first|waiter)  ", ln) for ln in events), events
    assert "completed (drained)" in lines[-1]
    # One line per change, never the whole block again.
    assert sum(1 for ln in lines if ln.startswith("session ")) == 1

    failed = _submit(pool, "dist_flows:failing_plain", "--wait", "--timeout", "20")
    assert graflow("status", failed, *_at(pool), "--watch").returncode == 1


def _run_in_pty(args: list[str], timeout: float = 30.0, stdout_tty: bool = True) -> tuple[int, str, str]:
    """Run ``python -m graflow ARGS`` with a terminal as its stdout (or stderr); returns
    (exit code, what the terminal got, the other stream)."""
    leader, follower = pty.openpty()
    streams = {"stdout": follower, "stderr": subprocess.PIPE} if stdout_tty else {"stdout": subprocess.PIPE, "stderr": follower}
    proc = subprocess.Popen([sys.executable, "-m", "graflow", *args], env=child_env(COLUMNS="120"), **streams)  # type: ignore[call-overload]
    os.close(follower)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the command has exited
                    break
                if not chunk:
                    break
                got += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        pipe = proc.stderr if stdout_tty else proc.stdout
        assert pipe is not None
        with pipe:
            other = pipe.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return code, got.decode(errors="replace"), other.decode(errors="replace")


def test_watch_on_a_terminal_redraws_in_place(pool: DistPool) -> None:
    session_id, run = _gated(pool)
    try:
        opener = subprocess.Popen([sys.executable, "-c", (
            "import time, redis; from graflow.distributed import WorkflowRun; "
            f"r = WorkflowRun.attach({session_id!r}, {pool.redis_url!r}, key_prefix={pool.prefix!r}); "
            "time.sleep(1.5); r.channel.set('go', True)")], env=child_env())  # fmt: skip
        code, screen, _ = _run_in_pty(["status", session_id, *_at(pool), "--watch"])
        opener.wait(10)
    finally:
        release(run)
    assert code == 0, screen
    assert "\x1b[1A" in screen and "\x1b[2K" in screen  # cursor up + erase line: redrawn in place
    assert "completed (drained)" in screen and "2/2 tasks done" in screen and "waiter" in screen


def test_submit_wait_shows_progress_on_a_terminal_and_keeps_stdout_for_the_result(pool: DistPool) -> None:
    code, terminal, stdout = _run_in_pty(
        ["submit", "dist_flows:summing", *_at(pool), "--queue", pool.queue, "--set", "n=3", "--wait", "--timeout", "20"],
        stdout_tty=False,
    )
    assert code == 0, terminal
    session_id, result = stdout.splitlines()
    assert json.loads(result) == 3 and "tasks done" in terminal and "completed" in terminal
    assert _attach(pool, session_id).status().state == "completed"
