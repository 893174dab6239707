"""Checkpoints written on the pool and resumed on it or in-process (see docs/checkpoints.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dist_flows as flows
import pytest
from conftest import DistPool, graflow, release, wait_until

from graflow.distributed import WorkflowRun, submit
from graflow.exceptions import CheckpointError, GraflowRuntimeError, WorkflowFailedError

pytestmark = [pytest.mark.redis, pytest.mark.slow]

KEY_A = "worker-key-A-0123456789abcdef"
KEY_B = "producer-key-B-0123456789abcdef"


def _server(url: str) -> str:
    """``redis://host:port`` of a ``redis://host:port/db`` URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _db(url: str) -> str:
    return urlsplit(url).path.strip("/") or "0"


def _e8(pool: DistPool, ck: str | None, fail_key: str, *, immediate: bool = False) -> WorkflowRun:
    return submit(
        flows.e8(immediate), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
        initial_channel={"ck": ck, "fail_key": fail_key, "redis_url": pool.redis_url},
    )  # fmt: skip


def test_e8_small_checkpoint_list_and_graflow_resume(pool: DistPool, client: Any) -> None:
    root = f"{_server(pool.redis_url)}/{_db(pool.redis_url)}/{pool.prefix}/ck"
    ck = f"{root}/e8"
    fail_key = f"{pool.prefix}:e8:fail"
    client.set(fail_key, 1)
    run = _e8(pool, ck, fail_key)
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=30)
    assert info.value.task_id == "risky"
    status = run.status()
    assert (status.state, status.failed_task) == ("failed", "risky")
    assert status.last_checkpoint is not None and status.last_checkpoint.startswith(ck)
    assert len(run.channel.get("blob")) == 10 * 1024 * 1024

    pkl = f"{pool.prefix}/ck/e8.pkl"
    assert 0 < client.strlen(pkl) < 4096  # holds the session id, not the 10 MiB
    meta = json.loads(client.get(f"{pool.prefix}/ck/e8.meta.json"))
    state = json.loads(client.get(f"{pool.prefix}/ck/e8.state.json"))
    assert meta["session_id"] == run.session_id and meta["user_metadata"]["stage"] == "saved"
    assert state["completed_tasks"] == ["fill", "save"] and state["resuming_task_id"] is None
    assert [p["task_id"] for p in state["pending_tasks"]] == ["risky"]
    assert state["backend"] == {"channel": "redis", "queue": "redis", "storage": "redis"}
    # Written by the worker process that ran the requesting task.
    pid = meta["user_metadata"]["pid"]
    assert pid == run.channel.get("save_pid") and pid in pool.worker_pids()
    [started] = [e for e in run.store.events(100) if e["event"] == "started" and e["data"]["task_id"] == "save"]
    worker = started["data"]["worker"]  # the rq worker name; tests/workerpool names them <prefix>-w<i>
    command = pool.procs[int(worker.rsplit("-w", 1)[1])]  # that worker's command (its supervisor)
    with open(f"/proc/{command.pid}/task/{command.pid}/children") as f:
        assert pid in {int(x) for x in f.read().split()}

    listed = graflow("checkpoints", "list", root)
    assert listed.returncode == 0, listed.stderr
    [line] = [ln for ln in listed.stdout.splitlines() if ln.strip()]
    assert "e8" in line and f"session={run.session_id}" in line and "steps=2" in line
    assert meta["checkpoint_id"] in line

    client.delete(fail_key)
    resumed = graflow("resume", ck, "--wait", "--timeout", "30")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == [run.session_id, json.dumps("done-3")]
    # fill and save completed before the checkpoint and never ran again.
    assert run.channel.get("ran") == ["fill", "save", "risky", "risky", "final"]
    done = run.status()
    assert (done.state, done.stop_reason, done.steps) == ("completed", "drained", 4)
    assert run.store.completed() == ["fill", "save", "risky", "final"]


def test_local_directory_checkpoint_resumed_in_process(make_pool: Any, client: Any, tmp_path: Path) -> None:
    from graflow.core.checkpoint import CheckpointManager
    from graflow.core.engine import WorkflowEngine

    pool = make_pool(1, GRAFLOW_CHECKPOINT_DIR=str(tmp_path))
    fail_key = f"{pool.prefix}:local:fail"
    client.set(fail_key, 1)
    run = _e8(pool, None, fail_key)
    with pytest.raises(WorkflowFailedError):
        run.wait(timeout=30)
    base = tmp_path / f"session_{run.session_id}_step_2"
    for suffix in (".pkl", ".state.json", ".meta.json"):
        assert base.with_name(base.name + suffix).exists(), suffix
    assert base.with_name(base.name + ".pkl").stat().st_size < 4096
    assert run.status().last_checkpoint == str(base) + ".pkl"

    client.delete(fail_key)
    ctx, meta = CheckpointManager.resume_from_checkpoint(str(base) + ".pkl", redis_url=pool.redis_url)
    assert meta.session_id == run.session_id and meta.user_metadata["stage"] == "saved"
    assert ctx.session_id == run.session_id and ctx.completed_tasks == ["fill", "save"]
    assert WorkflowEngine().execute(ctx) == "done-3"
    assert run.channel.get("ran") == ["fill", "save", "risky", "risky", "final"]
    assert ctx.channel.get("risky.__result__") == 3


def test_immediate_checkpoint_and_resume_refuses_a_running_session(pool: DistPool, client: Any) -> None:
    ck = f"{_server(pool.redis_url)}/{_db(pool.redis_url)}/{pool.prefix}/ck/imm"
    fail_key = f"{pool.prefix}:imm:fail"  # never set: the run completes
    run = _e8(pool, ck, fail_key, immediate=True)
    try:
        wait_until(lambda: run.channel.get("ck_written"), timeout=20, what="the immediate checkpoint")
        state = json.loads(client.get(f"{pool.prefix}/ck/imm.state.json"))
        meta = json.loads(client.get(f"{pool.prefix}/ck/imm.meta.json"))
        assert state["resuming_task_id"] == "save"
        assert state["completed_tasks"] == ["fill"]  # the requester is not completed
        assert [p["task_id"] for p in state["pending_tasks"]] == []  # nor its successors queued
        assert meta["user_metadata"]["mode"] == "immediate" and meta["steps"] == 1
        assert run.status().state == "running"
        with pytest.raises(CheckpointError, match="still running"):
            WorkflowRun.resume(ck, pool.redis_url)
        assert run.status().state == "running"
    finally:
        release(run)
    assert run.wait(timeout=20) == "done-3"
    assert run.channel.get("ran") == ["fill", "save", "risky", "final"]


def test_signed_pool_checkpoint_needs_the_key_to_resume(make_pool: Any, client: Any) -> None:
    pool = make_pool(2, GRAFLOW_SECRET_KEY=KEY_A)
    ck = f"{_server(pool.redis_url)}/{_db(pool.redis_url)}/{pool.prefix}/ck/signed"
    fail_key = f"{pool.prefix}:signed:fail"
    client.set(fail_key, 1)
    run = submit(flows.e8(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, secret_key=KEY_A,
                 initial_channel={"ck": ck, "fail_key": fail_key, "redis_url": pool.redis_url})  # fmt: skip
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=30)
    assert isinstance(info.value.cause, GraflowRuntimeError)  # the signed error loads with the key
    assert json.loads(client.get(f"{pool.prefix}/ck/signed.meta.json"))["signed"] is True
    client.delete(fail_key)
    unkeyed = graflow("resume", ck, "--wait", "--timeout", "20")
    assert unkeyed.returncode == 2 and "GRAFLOW_SECRET_KEY" in unkeyed.stderr
    assert run.status().state == "failed"  # nothing was re-queued
    keyed = graflow("resume", ck, "--wait", "--timeout", "20", GRAFLOW_SECRET_KEY=KEY_A)
    assert keyed.returncode == 0, keyed.stderr
    assert keyed.stdout.split() == [run.session_id, json.dumps("done-3")]
    assert run.channel.get("ran") == ["fill", "save", "risky", "risky", "final"]


def test_wrong_key_on_the_producer_fails_the_run_payload_rejected(make_pool: Any) -> None:
    pool = make_pool(1, GRAFLOW_SECRET_KEY=KEY_A)
    run = submit(flows.e6(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
                 initial_channel={"x": 3}, secret_key=KEY_B)  # fmt: skip
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=20)
    assert info.value.error_type == "PayloadSignatureError"
    status = run.status()
    assert (status.state, status.stop_reason) == ("failed", "payload_rejected")
    assert status.error and "PayloadSignatureError" in status.error
    assert run.store.completed() == [] and run.get_result("square") is None  # nothing ran

    shown = graflow("status", run.session_id, "--url", pool.redis_url, "--prefix", pool.prefix)
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout and "payload_rejected" in shown.stdout
    assert "PayloadSignatureError" in shown.stdout


def test_final_checkpoint_exists_when_wait_returns_and_resumes_to_done(pool: DistPool, client: Any) -> None:
    ck = f"{_server(pool.redis_url)}/{_db(pool.redis_url)}/{pool.prefix}/ck/final"
    run = submit(flows.checkpoint_at("last"), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
                 initial_channel={"ck": ck})  # fmt: skip
    assert run.wait(timeout=20) == "last-done"
    # The step that ended the run asked for the checkpoint: wait() returns once it exists.
    assert client.exists(f"{pool.prefix}/ck/final.meta.json")
    assert run.status().last_checkpoint == ck + ".pkl"
    state = json.loads(client.get(f"{pool.prefix}/ck/final.state.json"))
    assert state["completed_tasks"] == ["first", "last"] and state["pending_tasks"] == []
    # Nothing is pending: resuming ends the run at once (as in-process), with the same result.
    again = WorkflowRun.resume(ck, pool.redis_url)
    status = again.status()
    assert (status.state, status.stop_reason, status.steps) == ("completed", "drained", 2)
    assert again.wait(timeout=5) == "last-done"
    assert run.channel.get("ran") == ["first", "last"]


@pytest.mark.parametrize("which", ["first", "last"])
def test_failed_checkpoint_write_fails_the_run(pool: DistPool, which: str) -> None:
    run = submit(flows.checkpoint_at(which), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
                 initial_channel={"ck": "/dev/null/not-a-dir/ck"})  # fmt: skip
    with pytest.raises(WorkflowFailedError) as info:
        run.wait(timeout=20)
    assert info.value.task_id == which and info.value.error_type == "CheckpointError"
    assert isinstance(info.value.cause, CheckpointError) and "/dev/null/not-a-dir" in str(info.value.cause)
    status = run.status()
    assert (status.state, status.stop_reason, status.failed_task) == ("failed", "task_failed", which)
    # A failed write: the task stays completed; its successors stay queued and never run.
    completed = ["first"] if which == "first" else ["first", "last"]
    assert run.store.completed() == completed and run.channel.get("ran") == completed
    assert status.pending == (1 if which == "first" else 0)
    assert run.get_result(which) == f"{which}-done"


def test_memory_checkpoint_cannot_be_resumed_on_the_pool(tmp_path: Path) -> None:
    from graflow import task, workflow

    ck = str(tmp_path / "mem")
    with workflow("mem") as wf:

        @task(inject_context=True)
        def only(ctx: Any) -> str:
            ctx.checkpoint(path=ck)
            return "ok"

        assert wf.execute() == "ok"
    with pytest.raises(CheckpointError, match="--local"):
        WorkflowRun.resume(ck)
    out = graflow("resume", ck)
    assert out.returncode == 2 and "--local" in out.stderr and out.stdout == ""



def test_a_checkpoint_noted_after_the_session_expired_leaves_no_key(client: Any) -> None:
    """A worker that finishes writing a checkpoint after its run's keys expired records
    nothing: a recreated session hash would have no TTL and never go away."""
    import uuid

    from graflow.distributed.session import SessionStore

    prefix = f"gfnote{uuid.uuid4().hex[:8]}"
    gone = SessionStore(client, prefix, "s-gone")
    assert gone.note_checkpoint("ck/a", ("checkpointing",)) is False
    assert not client.exists(gone.keys.root)
    live = SessionStore(client, prefix, "s-live")
    client.hset(live.keys.root, mapping={"state": "running", "checkpointing": "1"})
    client.expire(live.keys.root, 30)
    try:
        assert live.note_checkpoint("ck/b", ("checkpointing",)) is True
        assert client.hgetall(live.keys.root) == {b"state": b"running", b"last_checkpoint": b"ck/b"}
        assert 0 < client.ttl(live.keys.root) <= 30
    finally:
        client.delete(live.keys.root)


@pytest.mark.parametrize("ck", [None, "rel/ck"])
def test_relative_checkpoint_location_is_recorded_absolute(make_pool: Any, tmp_path: Path, ck: str | None) -> None:
    """A worker in its own directory writes to ./checkpoints (GRAFLOW_CHECKPOINT_DIR unset)
    or a relative ``path=``; the session records (and ``graflow status``, run elsewhere,
    shows) the absolute path, and a `checkpoint` event names it."""
    workdir = tmp_path / "worker"
    workdir.mkdir()
    pool = make_pool(1, cwd=str(workdir))
    run = submit(flows.checkpoint_at("first"), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix,
                 initial_channel={"ck": ck})  # fmt: skip
    assert run.wait(timeout=20) == "last-done"
    expected = str(workdir / (ck or f"checkpoints/session_{run.session_id}_step_1")) + ".pkl"
    assert run.status().last_checkpoint == expected and Path(expected).exists()
    [event] = [e for e in run.store.events(100) if e["event"] == "checkpoint"]
    assert event["data"] == {"location": expected}
    shown = graflow("status", run.session_id, "--url", pool.redis_url, "--prefix", pool.prefix)
    assert shown.returncode == 0, shown.stderr
    assert f"checkpoint  {expected}" in shown.stdout.splitlines()
