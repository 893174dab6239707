"""When checkpoints are written, what they capture, and where they go (see docs/checkpoints.md)."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import ckutil
import pytest
from ckutil import ISO_UTC, arm, bases, calls, maybe_fail, meta, only_checkpoint, record, state

from graflow.core.checkpoint import CheckpointManager, CheckpointMetadata
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.task import parallel
from graflow.core.workflow import workflow
from graflow.exceptions import CheckpointCorruptError, UnsupportedCheckpointLocationError

AUTO = {"task_id", "cycle_count", "elapsed_time", "mode"}
resume = CheckpointManager.resume_from_checkpoint


def three(make_middle: Any) -> Any:
    """``first >> middle >> last``; ``make_middle()`` defines the middle task."""
    with workflow("three") as wf:
        @task
        def first() -> str:
            record("first")
            return "1"

        middle = make_middle()

        @task
        def last() -> str:
            record("last")
            return "3"

        first >> middle >> last
    return wf


def test_immediate_checkpoint_inside_the_body() -> None:
    seen: list[Any] = []

    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> str:
            record("middle")
            seen.append(ctx.checkpoint(path="ck/now", metadata={"at": "middle"}, deferred=False))
            seen.append(sorted(os.listdir("ck")))  # written now; the body carries on
            return "2"
        return middle

    assert three(make).execute() == "3"
    location, info = seen[0]
    assert location == "ck/now.pkl" and isinstance(info, CheckpointMetadata)
    assert info.user_metadata["mode"] == "immediate" and info.user_metadata["task_id"] == "middle"
    assert seen[1] == ["now.meta.json", "now.pkl", "now.state.json"]
    doc = state("ck/now")
    assert doc["resuming_task_id"] == "middle" and doc["completed_tasks"] == ["first"]
    assert doc["pending_tasks"] == []  # the requester's successors are not queued
    ctx, _ = resume("ck/now")
    assert [s.task_id for s in ctx.task_queue.get_pending_task_specs()] == ["middle"]
    assert WorkflowEngine().execute(ctx) == "3"
    assert calls() == ["first", "middle", "last", "middle", "last"]  # first never re-ran


def test_deferred_checkpoint_after_the_task() -> None:
    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> str:
            assert ctx.checkpoint(path="ck/later") is None
            assert not os.path.exists("ck")
            return "2"
        return middle

    three(make).execute()
    doc = state("ck/later")
    assert doc["resuming_task_id"] is None and doc["completed_tasks"] == ["first", "middle"]
    assert [p["task_id"] for p in doc["pending_tasks"]] == ["last"]
    assert meta("ck/later")["user_metadata"]["mode"] == "deferred"


def test_several_requests_make_one_checkpoint_the_last_wins() -> None:
    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path="ck/one", metadata={"n": 1, "only_first": True})
            ctx.checkpoint(path="ck/two", metadata={"n": 2})
            ctx.checkpoint(metadata={"n": 3})  # no path: the automatic name
        return middle

    _, ctx = three(make).execute(ret_context=True)
    assert not os.path.exists("ck")
    user = meta(only_checkpoint())["user_metadata"]
    assert user["n"] == 3 and "only_first" not in user
    assert ctx.last_checkpoint_path == only_checkpoint() + ".pkl"


def test_auto_metadata_unless_supplied() -> None:
    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path="ck/auto", metadata={"k": "v"})
            ctx.checkpoint(path="ck/user", metadata={"mode": "mine", "task_id": "me", "k": "v"})
        return middle

    three(make).execute()
    user = meta("ck/user")["user_metadata"]
    assert set(user) == AUTO | {"k"}
    assert (user["mode"], user["task_id"], user["cycle_count"]) == ("mine", "me", 1)
    assert isinstance(user["elapsed_time"], float) and user["elapsed_time"] >= 0


def test_create_checkpoint_stores_metadata_as_given() -> None:
    with workflow("direct") as wf:
        @task
        def only() -> None: ...
    ctx = ExecutionContext.create(wf.graph)
    location, info = CheckpointManager.create_checkpoint(ctx, metadata={"k": 1})
    assert info.user_metadata == {"k": 1} and location.endswith("_step_0.pkl")
    assert ctx.checkpoint_metadata == info.to_dict() and ctx.last_checkpoint_path == location
    again, _ = CheckpointManager.create_checkpoint(ctx, resuming_task_id="only")
    assert again == location.replace("_step_0.pkl", "_step_0_1.pkl")  # the base existed
    assert state(again[: -len(".pkl")])["resuming_task_id"] == "only"
    assert [s.task_id for s in ctx.task_queue.get_pending_task_specs()] == ["only"]


def test_a_failing_task_writes_none_and_its_request_is_cleared() -> None:
    with workflow("fails") as wf:
        @task(inject_context=True)
        def flaky(ctx: TaskExecutionContext) -> str:
            attempt = ctx.attempt
            if attempt == 1:
                ctx.checkpoint(path="ck/first_attempt")
                maybe_fail("flaky")
            return f"attempt {attempt}"

        arm("flaky")
        result, ctx = wf.execute(ret_context=True, default_max_retries=1)
    assert result == "attempt 2" and not os.path.exists("ck")
    assert ctx.checkpoint_requested is False and ctx.checkpoint_request_metadata is None


def test_terminate_with_a_checkpoint() -> None:
    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path="ck/stop", metadata={"why": "terminate"})
            ctx.terminate_workflow("enough")
            return "2"
        return middle

    _, ctx = three(make).execute(ret_context=True)
    assert ctx.stop_reason == "terminate_workflow" and calls() == ["first"]
    doc = state("ck/stop")
    assert doc["completed_tasks"] == ["first", "middle"] and doc["resuming_task_id"] is None


def group_flow(deferred: bool) -> Any:
    with workflow("group") as wf:
        @task
        def start() -> None:
            record("start")

        @task(inject_context=True)
        def m1(ctx: TaskExecutionContext) -> None:
            record("m1")
            ctx.checkpoint(path="ck/group", metadata={"x": 1, "who": "m1"}, deferred=deferred)

        @task(inject_context=True)
        def m2(ctx: TaskExecutionContext) -> None:
            record("m2", os.path.exists("ck"))
            if deferred:
                ctx.checkpoint(metadata={"y": 2, "who": "m2"})

        @task
        def end() -> str:
            record("end")
            return "E"

        group = (m1 | m2).set_group_name("G").with_execution(backend="direct")
        start >> group >> end
    return wf


def test_checkpoint_in_a_parallel_member_waits_for_the_group() -> None:
    assert group_flow(deferred=True).execute() == "E"
    assert calls()[:3] == ["start", "m1", "m2 False"]  # not written while the group ran
    doc, user = state("ck/group"), meta("ck/group")["user_metadata"]
    assert doc["completed_tasks"] == ["start", "m1", "m2", "G"] and doc["resuming_task_id"] is None
    assert [p["task_id"] for p in doc["pending_tasks"]] == ["end"]
    assert user["task_id"] == "G" and user["requested_by"] == ["m1", "m2"]
    assert (user["x"], user["y"], user["who"]) == (1, 2, "m2")  # merged; the last wins
    ctx, _ = resume("ck/group")
    assert WorkflowEngine().execute(ctx) == "E" and calls()[-1] == "end"


def test_immediate_checkpoint_in_a_member_resumes_the_group() -> None:
    group_flow(deferred=False).execute()
    doc = state("ck/group")
    assert doc["resuming_task_id"] == "G" and doc["completed_tasks"] == ["start"]
    ctx, _ = resume("ck/group")
    assert WorkflowEngine().execute(ctx) == "E"
    assert calls()[4:] == ["m1", "m2 True", "end"]  # the whole group ran again


def test_members_checkpointing_at_once_get_distinct_names() -> None:
    ckutil.shared["barrier"] = threading.Barrier(4)
    with workflow("race") as wf:
        def member(i: int) -> Any:
            @task(f"m{i}", inject_context=True)
            def body(ctx: TaskExecutionContext) -> None:
                ckutil.shared["barrier"].wait(10)
                ctx.checkpoint(metadata={"who": i}, deferred=False)
                ckutil.shared["barrier"].wait(10)  # nobody completes (steps + 1) before all wrote
            return body

        parallel(*(member(i) for i in range(4))).with_execution("threading", {"thread_count": 4})
        _, ctx = wf.execute(ret_context=True)
    found = CheckpointManager.list_checkpoints()
    assert sorted(m.user_metadata["who"] for _, m in found) == [0, 1, 2, 3]
    stem = f"checkpoints/session_{ctx.session_id}_step_0"
    assert sorted(loc for loc, _ in found) == [f"{stem}{n}.pkl" for n in ("", "_1", "_2", "_3")]
    assert all(resume(loc)[0].session_id == ctx.session_id for loc, _ in found)


def test_list_checkpoints_oldest_first() -> None:
    def make() -> Any:
        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> None:
            for name in ("zz", "mm", "aa"):
                ctx.checkpoint(path=f"ck/{name}", metadata={"name": name}, deferred=False)
        return middle

    three(make).execute()
    found = CheckpointManager.list_checkpoints("ck")
    assert [loc for loc, _ in found] == ["ck/zz.pkl", "ck/mm.pkl", "ck/aa.pkl"]
    assert [m.user_metadata["name"] for _, m in found] == ["zz", "mm", "aa"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_checkpoint_dir_from_the_environment(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = "elsewhere/ck" if where == "local" else f"memory://gftest-{uuid.uuid4().hex[:8]}/ck"
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", directory)
    with workflow("env_dir") as wf:
        @task(inject_context=True)
        def only(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint()
            return "done"

        _, ctx = wf.execute(ret_context=True)
    assert ctx.last_checkpoint_path == f"{directory}/session_{ctx.session_id}_step_1.pkl"
    assert not os.path.exists("checkpoints")
    [(location, info)] = CheckpointManager.list_checkpoints(directory)
    assert location == ctx.last_checkpoint_path and info.backend["storage"] == (
        "file" if where == "local" else "fsspec"
    )
    restored, _ = resume(location)
    assert restored.get_result("only") == "done"
    if where == "memory":
        import fsspec

        fsspec.filesystem("memory").rm(directory.split("/")[2], recursive=True)


@pytest.mark.redis
def test_redis_locations(redis_client: Any, redis_url: str, key_prefix: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import redis.client

    transactions: list[tuple[bool, list[str]]] = []
    execute = redis.client.Pipeline.execute

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        keys = [str(c[0][1]) for c in self.command_stack if c[0][0] == "SET"]
        transactions.append((self.transaction, keys))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy)
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_TTL", "3600")
    location = f"{redis_url}/{key_prefix}/ck/run_1"
    with workflow("redis_location") as wf:
        @task(inject_context=True)
        def only(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path=location, metadata={"where": "redis"})
            return "done"

        wf.execute()
    key = f"{key_prefix}/ck/run_1"
    names = [key + s for s in (".pkl", ".state.json", ".meta.json")]
    assert (True, names) in transactions  # one MULTI/EXEC with the three keys
    assert all(0 < redis_client.ttl(name) <= 3600 for name in names)
    [(listed, info)] = CheckpointManager.list_checkpoints(f"{redis_url}/{key_prefix}/ck")
    assert listed == location + ".pkl" and info.user_metadata["where"] == "redis"
    ctx, _ = resume(location)
    assert ctx.get_result("only") == "done"
    monkeypatch.delenv("GRAFLOW_CHECKPOINT_TTL")
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", f"{redis_url}/{key_prefix}/auto")
    with workflow("redis_directory") as wf:
        @task(inject_context=True)
        def auto(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint()

        _, ctx = wf.execute(ret_context=True)  # automatic names under a redis:// directory
    auto = f"{key_prefix}/auto/session_{ctx.session_id}_step_1.meta.json"
    assert redis_client.ttl(auto) == -1  # no TTL unless GRAFLOW_CHECKPOINT_TTL is set


@pytest.mark.parametrize("location", ["bogus://bucket/ck", "redis://localhost:6379"])
def test_unsupported_locations(location: str) -> None:
    with workflow("bad_location") as wf:
        @task(inject_context=True)
        def only(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=location)

    with pytest.raises(UnsupportedCheckpointLocationError) as caught:
        wf.execute()
    assert isinstance(caught.value, NotImplementedError)
    scheme = location.split(":")[0]
    assert scheme in str(caught.value) and "use " in str(caught.value)


def test_resume_with_dynamic_tasks(backend: Any) -> None:
    with workflow("dynamic") as wf:
        @task(inject_context=True, max_cycles=5)
        def grow(ctx: TaskExecutionContext, data: int | None = None) -> int:
            n = (data or 0) + 1
            record(f"grow {n}")
            if n < 3:
                ctx.next_iteration(n)
            else:
                @task(inject_context=True)
                def extra(ctx: TaskExecutionContext) -> str:
                    record("extra")
                    ctx.checkpoint(path="ck/dynamic")
                    return "X"

                ctx.next_task(extra)
            return n

        @task
        def after(grow: int) -> str:
            record("after")
            maybe_fail("after")
            return f"after {grow}"

        grow >> after
        arm("after")
        with pytest.raises(Exception, match="injected failure"):
            wf.execute()
    doc = state("ck/dynamic")
    assert len(doc["known_dynamic"]) == 3 and "extra" in doc["known_dynamic"]
    assert [p["task_id"] for p in doc["pending_tasks"]] == ["after"]
    ctx, _ = resume("ck/dynamic")
    assert WorkflowEngine().execute(ctx) == "after 3"
    assert calls() == ["grow 1", "grow 2", "grow 3", "extra", "after", "after"]


def test_metadata_create_and_from_dict() -> None:
    info = CheckpointMetadata.create("id", "sess", 3, "a", {"channel": "memory"}, {"k": 1})
    assert re.match(ISO_UTC, info.created_at)
    stamped = dt.datetime.fromisoformat(info.created_at.replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - stamped).total_seconds()) < 5
    assert set(info.to_dict()) == set(CheckpointMetadata.__dataclass_fields__)
    minimal = {"checkpoint_id": "id", "session_id": "s", "created_at": "t", "steps": 2}
    loaded = CheckpointMetadata.from_dict({**minimal, "unknown": True})
    assert (loaded.user_metadata, loaded.graph_hash, loaded.graph_fingerprint) == ({}, None, None)
    assert CheckpointMetadata.from_dict(info.to_dict()) == info
    with pytest.raises(CheckpointCorruptError, match=r"lacks required field\(s\) \['steps'\]"):
        CheckpointMetadata.from_dict({k: v for k, v in minimal.items() if k != "steps"})
    with pytest.raises(CheckpointCorruptError, match="wrong type"):
        CheckpointMetadata.from_dict({**minimal, "steps": "many"})


def test_nothing_is_written_without_a_request(workdir: Path) -> None:
    three(_quiet).execute()
    assert sorted(os.listdir(workdir)) == ["calls.log"] and bases() == []


def _quiet() -> Any:
    @task
    def quiet() -> None: ...

    return quiet


def test_large_memory_channel_checkpoint_round_trips_with_its_hash() -> None:
    """Megabytes of channel data: the ``.pkl`` is written from the pickler's buffers and
    hashed beside the write; meta.json's sha256 and size are the file's."""
    import hashlib

    big, mutable = os.urandom(3 << 20), bytearray(os.urandom(1 << 20))
    with workflow("big") as wf:
        @task(inject_context=True)
        def fill(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("big", big)
            ctx.get_channel().set("mutable", mutable)
            ctx.checkpoint(path="ck/big")

        @task(inject_context=True)
        def read(ctx: TaskExecutionContext) -> int:
            return len(ctx.get_channel().get("big")) + len(ctx.get_channel().get("mutable"))

        fill >> read
    assert wf.execute() == 4 << 20
    with open("ck/big.pkl", "rb") as fh:
        raw = fh.read()
    files = meta("ck/big")["files"]["pkl"]
    assert files == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    ctx, _ = resume("ck/big")
    assert ctx.channel.get("big") == big and ctx.channel.get("mutable") == mutable
    assert WorkflowEngine().execute(ctx) == 4 << 20
