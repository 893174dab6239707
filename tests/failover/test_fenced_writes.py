"""Channel writes of a pooled attempt count only while that attempt owns its task.

Direct tests drive ``FencedRedisChannel`` against real Redis, with the ownership set up
through the session store's own steps (start, redelivery, commit, end of run). The
worker tests pause a real ``graflow worker`` with SIGSTOP between two channel writes
of its task, let another worker re-run the task, continue the paused one with SIGCONT,
and check that none of the late attempt's writes landed.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import uuid
from pathlib import Path
from typing import Any

import fenceflows as flows
import pytest
from fohelpers import FoPool, channel_state, store_of, wait_until

from graflow import task, workflow
from graflow.channels import _redis_scripts as lua
from graflow.channels.fenced import FencedRedisChannel
from graflow.channels.redis_channel import RedisChannel
from graflow.distributed.session import FINAL_STATES, SessionStore
from graflow.exceptions import AttemptSupersededError

pytestmark = pytest.mark.redis

# -- direct: the fence against real Redis, ownership set by the session's own steps ------


class Run:
    """A session with one started activation (``spec``, attempt 1) and one still pending
    (so that completing ``spec`` does not end the run)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.sid = f"s{uuid.uuid4().hex[:12]}"
        self.store = SessionStore(client, prefix, self.sid)
        self.store.create({"max_steps": 100}, {"other": b'{"task_id": "other"}'})
        assert self.store.start("spec", "w1", 1, "t", False)["status"] == "ok"

    def channel(self, attempt: int) -> FencedRedisChannel:
        return FencedRedisChannel(self.sid, self.client, key_prefix=self.prefix, spec_id="spec",
                                  attempt=attempt, task_id="t")  # fmt: skip

    def entry(self) -> bytes | None:
        raw: bytes | None = self.client.hget(self.store.keys.running, "spec")
        return raw

    def data(self) -> dict[bytes, bytes]:
        """Every channel key and lock of the run, as DUMP (byte for byte), with its TTL set or not."""
        names = self.store.channel_keys()
        return {n: (self.client.dump(n), self.client.pttl(n) > 0) for n in names}

    def supersede(self, how: str) -> None:
        """Take the activation away from attempt 1, the way the pool does."""
        if how in ("redelivered", "next_attempt"):
            assert self.store.redeliver("spec", 1, b'{"attempt": 2}', "w1")["status"] == "ok"
            if how == "next_attempt":
                assert self.store.start("spec", "w2", 2, "t", False)["status"] == "ok"
        elif how == "completed":  # redelivered, and attempt 2 completed it
            assert self.store.redeliver("spec", 1, b'{"attempt": 2}', "w1")["status"] == "ok"
            assert self.store.start("spec", "w2", 2, "t", False)["status"] == "ok"
            control = {"spec_id": "spec", "attempt": 2, "task_id": "t", "pred": "t", "record": True,
                       "verdict": "complete", "message": "", "cancel_task": "t", "results": [], "offers": [],
                       "dynamic": [], "branch": None, "finalize": None, "request": None, "snapshot": False}  # fmt: skip
            assert self.store.commit(control, [])["status"] == "ok"  # "other" is pending: the run goes on
        elif how == "run_ended":
            assert self.store.end_run("canceled", "cancel_workflow", "canceled by the test")["status"] == "finished"
            assert self.entry() is not None  # the entry outlives the run: the state must fence it
        else:
            raise AssertionError(how)


def _seed(ch: RedisChannel) -> None:
    ch.set("v", {"x": 1})
    ch.set("gone", "still here")
    ch.append("l", "a")
    ch.atomic_add("n", 5)


# write -> (the call, the key the refusal names)
WRITES = {
    "set": (lambda ch: ch.set("v", "late"), "v"),
    "set_new": (lambda ch: ch.set("new", "late", ttl=30), "new"),
    "delete": (lambda ch: ch.delete("gone"), "gone"),
    "append": (lambda ch: ch.append("l", "late"), "l"),
    "prepend": (lambda ch: ch.prepend("l", "late"), "l"),
    "atomic_add": (lambda ch: ch.atomic_add("n", 1), "n"),
    "clear": (lambda ch: ch.clear(), "*"),
    "lock": (lambda ch: ch.lock("res").__enter__(), "res"),
}


@pytest.mark.parametrize("how", ["redelivered", "next_attempt", "completed", "run_ended"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_superseded_attempt_changes_nothing(redis_client: Any, key_prefix: str, how: str, write: str) -> None:
    run = Run(redis_client, key_prefix)
    late = run.channel(1)
    _seed(late)  # attempt 1 owns the task: its writes land
    run.supersede(how)
    before = run.data()
    with pytest.raises(AttemptSupersededError) as refused:
        WRITES[write][0](late)
    assert run.data() == before
    error = refused.value
    assert (error.attempt, error.task_id, error.key, error.session_id) == (1, "t", WRITES[write][1], run.sid)
    if how == "run_ended":  # the attempt still owns its task: its session step clears it
        assert error.reason == "ended" and not late.superseded and "its run has ended" in str(error)
    else:  # another attempt's: the worker drops this one
        assert error.reason == "lost" and late.superseded and "no longer owns the task" in str(error)
    assert late.get("v") == {"x": 1} and late.get("l") == ["a"]  # reads are not fenced
    assert not redis_client.exists(late._lock_key("res"))


def test_the_owner_writes_everything_and_the_next_attempt_takes_over(redis_client: Any, key_prefix: str) -> None:
    run = Run(redis_client, key_prefix)
    first = run.channel(1)
    first.set("v", [1, 2])  # a list stored by set(): append converts it (compare-and-set retry)
    assert first.append("v", 3) == 3 and first.prepend("v", 0) == 4
    first.set("n", 2**62)
    assert first.atomic_add("n", 1) == 2**62 + 1 and first.atomic_add("f", 0.5) == 0.5
    first.set("t", "x", ttl=30)
    assert 0 < redis_client.pttl(first._k("t")) <= 30000
    with first.lock("res"):
        assert redis_client.exists(first._lock_key("res"))
    assert not redis_client.exists(first._lock_key("res"))  # released by redis-py's own release
    assert first.delete("t") and not first.delete("t")
    run.supersede("next_attempt")
    second = run.channel(2)
    second.set("v", "mine")
    assert second.atomic_add("n", 1) == 2**62 + 2 and second.get("v") == "mine"
    with pytest.raises(AttemptSupersededError):
        first.set("v", "late")
    second.clear()
    assert second.keys() == [] and not second.superseded


def test_the_refusal_is_logged_once_per_attempt(
    redis_client: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(redis_client, key_prefix)
    late = run.channel(1)
    run.supersede("redelivered")
    with caplog.at_level(logging.DEBUG, logger="graflow.channels"):
        for key in ("a", "b", "c"):
            with pytest.raises(AttemptSupersededError):
                late.set(key, 1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert "task t" in message and "attempt 1" in message and "'a'" in message and run.sid in message


def test_a_pickled_fenced_channel_stays_fenced(redis_client: Any, key_prefix: str, redis_url: str) -> None:
    run = Run(redis_client, key_prefix)
    run.supersede("redelivered")
    copy = pickle.loads(pickle.dumps(run.channel(1)))
    assert isinstance(copy, FencedRedisChannel) and (copy.spec_id, copy.attempt) == ("spec", 1)
    with pytest.raises(AttemptSupersededError):
        copy.set("v", 1)
    copy.close()


def test_the_fence_knows_the_same_final_states_as_the_session() -> None:
    assert set(lua.FINAL_STATES) == set(FINAL_STATES)


def test_in_process_engine_writes_through_a_plain_channel(redis_url: str, key_prefix: str) -> None:
    """wf.execute with a Redis channel: no session, no fence; every write lands."""
    seen: list[type] = []
    with workflow("in-process-redis") as wf:

        @task(inject_context=True)
        def one(ctx: Any) -> int:
            ch = ctx.get_channel()
            seen.append(type(ch))
            ch.set("a", 1)
            ch.append("l", "x")
            ch.atomic_add("n", 2)
            with ch.lock("k"):
                ch.delete("a")
            return 1

        @task(inject_context=True)
        def two(ctx: Any, one: int) -> int:
            return int(ctx.get_channel().get("n")) + one

        one >> two
        result, ctx = wf.execute(channel_backend="redis", config={"url": redis_url, "key_prefix": key_prefix},
                                 ret_context=True)  # fmt: skip
    assert result == 3 and seen == [RedisChannel]
    assert ctx.channel.get("l") == ["x"] and not ctx.channel.exists("a")
    ctx.channel.clear()


# -- workers: a real worker stopped between two writes, continued late ------------------


def _started(fence_dir: Path, attempt: int, timeout: float = 20.0) -> int:
    """The pid of the worker process running ``attempt`` (from its marker file)."""
    marker = fence_dir / f"started-{attempt}"
    wait_until(marker.exists, timeout, f"attempt {attempt} to start")
    return int(marker.read_text())


def _wait_superseded(pool: FoPool, attempt: int) -> None:
    """Until the worker log says the attempt ended superseded (the worker's last word on it)."""
    try:
        wait_until(lambda: f"attempt {attempt}) was superseded" in pool.full_logs(), 20, f"attempt {attempt} to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pool.full_logs()}") from None


@pytest.mark.slow
def test_a_late_attempt_after_the_run_ended_changes_nothing(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "go").touch()  # attempt 2 runs straight through
    (tmp_path / "ride-out").touch()  # attempt 1 ignores its worker's stop: only the fence can drop its writes
    with FoPool(redis_url, 2, args=["--heartbeat", "1.0"], FENCE_DIR=str(tmp_path)) as pool:
        run = pool.submit(flows.late_writer())
        group = os.getpgid(_started(tmp_path, 1))
        os.killpg(group, signal.SIGSTOP)  # between the task's first writes and the rest
        try:
            assert run.wait(timeout=30) == "A2", pool.logs_text()
            store = store_of(run)
            snapshot = {n: run.client.dump(n) for n in store.channel_keys()}
            meta = store.meta()
        finally:
            os.killpg(group, signal.SIGCONT)
        _wait_superseded(pool, 1)
        assert {n: run.client.dump(n) for n in store.channel_keys()} == snapshot
        assert store.meta() == meta and run.status().state == "completed"
        logs = pool.full_logs()
        assert f"(run {run.session_id}, attempt 1) is superseded: its write to channel key 'count' was dropped" in logs, logs
        assert "AttemptSupersededError" not in logs, logs  # dropped, never a failed job
        assert channel_state(run) == _attempt_data("a2")
        assert all(p.poll() is None for p in pool.procs), pool.logs_text()


@pytest.mark.slow
def test_a_late_attempt_while_the_next_one_runs_is_dropped(redis_url: str, tmp_path: Path) -> None:
    with FoPool(redis_url, 2, args=["--heartbeat", "1.0"], FENCE_DIR=str(tmp_path)) as pool:
        run = pool.submit(flows.late_writer())
        group = os.getpgid(_started(tmp_path, 1))
        os.killpg(group, signal.SIGSTOP)
        try:
            _started(tmp_path, 2)  # attempt 2 holds the task, waiting for the go file
        finally:
            os.killpg(group, signal.SIGCONT)
        _wait_superseded(pool, 1)
        refused = f"(run {run.session_id}, attempt 1) is superseded: its write to channel key 'count' was dropped"
        assert refused in pool.full_logs(), pool.full_logs()
        assert run.channel.get("count") is None and run.channel.get("first") == "a2"  # nothing of attempt 1 after the stop
        (tmp_path / "go").touch()
        assert run.wait(timeout=30) == "A2", pool.logs_text()
        assert channel_state(run) == _attempt_data("a2")
        assert "AttemptSupersededError" not in pool.full_logs()
        events = [e["event"] for e in store_of(run).events(100)]
        assert "failed" not in events and "retried" not in events and events.count("completed") == 2, events


def _attempt_data(me: str) -> dict[str, Any]:
    """The channel as one attempt of ``late_writer``'s ``write`` leaves it."""
    return {"after.__result__": me.upper(), "count": 1, "first": me, "locked": me,
            "log": [f"{me}-head", me], "second": me, "write.__result__": me}  # fmt: skip
