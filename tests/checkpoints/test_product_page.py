"""The Checkpoints product page (shared/seed/checkpoints.md), run as written.

One test per heading of the page; the headings of the page's "Idempotency",
"Common Patterns" and "Best Practices" sections are in test_product_page_patterns.py
(the two files would exceed the size limit as one). Each page snippet is copied
verbatim, imports included, between ``# --- page`` and ``# --- end`` markers; the
helpers the page leaves undefined are the recording stubs of page_stubs. Rows marked
(R) take the ``backend`` fixture and so also run with ``channel_backend="redis"``.
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from ckutil import (
    ISO_UTC,
    META_KEYS,
    PENDING_KEYS,
    STATE_KEYS,
    arm,
    assert_trio,
    base_of,
    calls,
    maybe_fail,
    meta,
    only_checkpoint,
    record,
    state,
    trio,
)
from page_stubs import (
    FLOWS,
    RESUME,
    expensive_computation,
    process_batch,
    step_1,
    step_2,
    train_model,
)

from graflow.codec import Purpose, loads
from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.task import chain
from graflow.core.workflow import workflow
from graflow.exceptions import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError


# -- one test per heading ---------------------------------------------------------------
def test_checkpoints_intro() -> None:
    with workflow("intro") as wf:
        # --- page: Checkpoints (Overview)
        from graflow.core.context import TaskExecutionContext

        @task(inject_context=True)
        def expensive_task(ctx: TaskExecutionContext):
            # Perform expensive computation
            result = train_model()

            # Request checkpoint after expensive work
            ctx.checkpoint(metadata={"stage": "training_complete"})

            return result
        # --- end
        assert wf.execute() == "model"
    user = meta(only_checkpoint())["user_metadata"]
    assert user["stage"] == "training_complete"
    assert (user["task_id"], user["cycle_count"], user["mode"]) == ("expensive_task", 1, "deferred")
    assert isinstance(user["elapsed_time"], float)


def test_basic_checkpoint(backend: Any) -> None:
    # --- page: Basic Checkpoint
    from graflow.core.context import TaskExecutionContext
    from graflow.core.decorators import task
    from graflow.core.workflow import workflow

    with workflow("checkpoint_demo") as wf:

        @task(inject_context=True)
        def process_data(ctx: TaskExecutionContext):
            # Do important work
            result = expensive_computation()

            # Request checkpoint
            ctx.checkpoint(metadata={"records_processed": 1000})

            return result

        wf.execute("process_data")
    # --- end
    ctx = backend.ctx
    assert ctx.get_result("process_data") == 42
    base = f"checkpoints/session_{ctx.session_id}_step_1"
    assert only_checkpoint() == base
    assert meta(base)["user_metadata"]["records_processed"] == 1000
    assert meta(base)["backend"]["channel"] == backend.name
    restored, _ = CheckpointManager.resume_from_checkpoint(base)
    assert restored.completed_tasks == ["process_data"] and restored.get_result("process_data") == 42


def test_checkpoint_with_custom_path(tmp_path: Any) -> None:
    existed = os.path.exists("/checkpoints")
    try:
        with workflow("custom_path") as wf:
            # --- page: Checkpoint with Custom Path
            @task(inject_context=True)
            def save_progress(ctx: TaskExecutionContext):
                process_batch()

                # Save to specific location
                ctx.checkpoint(
                    path="/checkpoints/batch_1",
                    metadata={"batch_id": 1}
                )
            # --- end
            wf.execute()
        assert_trio("/checkpoints/batch_1")
        assert meta("/checkpoints/batch_1")["user_metadata"]["batch_id"] == 1
        ctx, _ = CheckpointManager.resume_from_checkpoint("/checkpoints/batch_1.pkl")
        assert ctx.completed_tasks == ["save_progress"]
    finally:
        if existed:
            for path in trio("/checkpoints/batch_1"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        else:
            shutil.rmtree("/checkpoints", ignore_errors=True)
    # Anywhere unwritable (here: under a regular file) a CheckpointError names the path;
    # the task stays completed and its successors stay queued.
    (tmp_path / "blocker").write_text("a file, not a directory")
    target = str(tmp_path / "blocker" / "batch_1")
    with workflow("custom_path_blocked") as wf:
        @task(inject_context=True)
        def save_blocked(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=target, metadata={"batch_id": 1})

        @task
        def after() -> None: ...

        save_blocked >> after
    ctx = ExecutionContext.create(wf.graph)
    with pytest.raises(CheckpointError, match=re.escape(target)) as caught:
        WorkflowEngine().execute(ctx)
    assert isinstance(caught.value.cause, OSError) and caught.value.cause.strerror in str(caught.value)
    assert ctx.completed_tasks == ["save_blocked"] and ctx.task_queue.peek_next_node() == "after"


def test_deferred_checkpoint_execution() -> None:
    with workflow("deferred") as wf:
        # --- page: Deferred Checkpoint Execution
        @task(inject_context=True)
        def example_task(ctx: TaskExecutionContext):
            step_1()
            ctx.checkpoint()  # Sets flag, doesn't create checkpoint yet
            step_2()          # Task continues
            return "done"     # Checkpoint created HERE by engine
        # --- end
        assert wf.execute() == "done"
    assert calls() == ["step_1", "step_2 False"]  # no checkpoint files while the task ran
    doc = state(only_checkpoint())
    assert doc["completed_tasks"] == ["example_task"] and doc["resuming_task_id"] is None


def test_resuming_from_checkpoints(backend: Any, capsys: Any) -> None:
    with workflow("resume_demo") as wf:
        @task(inject_context=True)
        def first(ctx: TaskExecutionContext) -> str:
            record("first")
            ctx.checkpoint(path="checkpoints/my_checkpoint")
            return "A"

        @task
        def second() -> str: record("second"); maybe_fail("second"); return "B"  # noqa: E702

        @task
        def third(second: str) -> str: record("third"); return second + "C"  # noqa: E702

        first >> second >> third
        arm("second")
        with pytest.raises(Exception, match="injected failure"):
            wf.execute()
    capsys.readouterr()
    # --- page: Resuming from Checkpoints
    from graflow.core.checkpoint import CheckpointManager
    from graflow.core.engine import WorkflowEngine

    # Resume from checkpoint
    context, metadata = CheckpointManager.resume_from_checkpoint(
        "checkpoints/my_checkpoint.pkl"
    )

    print(f"Resuming from step {metadata.steps}")
    print(f"Completed tasks: {context.completed_tasks}")

    # Continue execution
    engine = WorkflowEngine()
    result = engine.execute(context)
    # --- end
    assert capsys.readouterr().out == "Resuming from step 1\nCompleted tasks: ['first']\n"
    assert result == "BC"
    assert calls() == ["first", "second", "second", "third"]  # only the pending tasks ran


def test_metadata_access(capsys: Any) -> None:
    with workflow("meta") as wf:
        @task(inject_context=True)
        def work(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(metadata={"stage": "done"})

        _, ran = wf.execute(ret_context=True)
    checkpoint_path = ran.last_checkpoint_path
    capsys.readouterr()
    # --- page: Metadata Access
    context, metadata = CheckpointManager.resume_from_checkpoint(checkpoint_path)

    print(metadata.session_id)      # Workflow session ID
    print(metadata.steps)           # Steps executed at checkpoint
    print(metadata.created_at)      # ISO 8601 timestamp
    print(metadata.user_metadata)   # Your custom metadata
    # --- end
    assert context.session_id == metadata.session_id
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [ran.session_id, "1"] and re.match(ISO_UTC, out[2])
    assert metadata.user_metadata["stage"] == "done" and out[3] == str(metadata.user_metadata)


def test_checkpoint_files() -> None:
    with workflow("files") as wf:
        def make(i: int) -> Any:
            @task(f"t{i}", inject_context=True)
            def step(ctx: TaskExecutionContext) -> None:
                if i == 10:
                    ctx.checkpoint()
            return step

        chain(*(make(i) for i in range(1, 11)))
    ctx = ExecutionContext.create(wf.graph, session_id="12345")
    WorkflowEngine().execute(ctx)
    assert sorted(os.listdir("checkpoints")) == [
        "session_12345_step_10.meta.json", "session_12345_step_10.pkl",
        "session_12345_step_10.state.json",
    ]  # fmt: skip


def test_what_gets_saved(backend: Any) -> None:
    blob = b"x" * (10 * 1024 * 1024 if backend.name == "redis" else 1024)
    with workflow("saved") as wf:
        @task(inject_context=True)
        def load(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().set("blob", blob)
            return "loaded"

        @task(inject_context=True, max_cycles=5)
        def refine(ctx: TaskExecutionContext, data: int | None = None) -> int:
            n = (data or 0) + 1
            if n < 3:
                ctx.next_iteration(n)
            else:
                ctx.checkpoint(path="checkpoints/saved")
            return n

        @task
        def publish(refine: int) -> str: return f"v{refine}"

        load >> refine >> publish
        assert wf.execute() == "v3"
    base = "checkpoints/saved"
    doc, info = state(base), meta(base)
    assert set(doc) == STATE_KEYS and set(info) == META_KEYS
    assert doc["completed_tasks"][:2] == ["load", "refine"] and len(doc["completed_tasks"]) == 4
    assert [p["task_id"] for p in doc["pending_tasks"]] == ["publish"]
    assert all(set(p) == PENDING_KEYS for p in doc["pending_tasks"])
    assert doc["pending_tasks"][0]["status"] == "ready"
    assert doc["cycle_counts"] == {"load": 1, "refine": 3} and len(doc["known_dynamic"]) == 2
    with open(base + ".pkl", "rb") as fh:
        raw = fh.read()
    assert info["files"]["pkl"]["bytes"] == len(raw)
    if backend.name == "memory":
        saved = loads(raw, Purpose.CHECKPOINT)
        assert isinstance(saved, ExecutionContext)
        assert saved.channel.get("load.__result__") == "loaded" and saved.channel.get("blob") == blob
        assert saved.channel.get("refine.__result__") == 3
        assert {"load", "refine", "publish"} <= set(saved.graph.nodes)
    else:
        assert len(raw) < 4096 and b"xxxxxxxx" not in raw and b"loaded" not in raw
        assert len(backend.ctx.channel.get("blob")) == len(blob)  # the data stayed in Redis
    ctx, _ = CheckpointManager.resume_from_checkpoint(base)
    assert WorkflowEngine().execute(ctx) == "v3"


@pytest.mark.redis
def test_backend_support(workdir: Any, redis_client: Any, redis_url: str, key_prefix: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (workdir / "flows.py").write_text(textwrap.dedent(FLOWS))
    monkeypatch.syspath_prepend(str(workdir))
    import flows

    monkeypatch.setenv("FLOWS_FAIL", "1")
    with pytest.raises(Exception, match="worker lost"):
        flows.build().execute(channel_backend="redis", config={"url": redis_url, "key_prefix": key_prefix})
    [(location, info)] = CheckpointManager.list_checkpoints()
    assert info.backend["channel"] == "redis" and os.path.getsize(location) < 4096
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFLOW_", "FLOWS_"))}
    for argv in ([sys.executable, "-m", "graflow", "resume", os.path.abspath(location), "--local"],
                 [sys.executable, "-c", RESUME, base_of(os.path.abspath(location))]):  # fmt: skip
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "42"  # the payload came from Redis, in another process
    assert calls() == ["produce", "consume", "consume", "consume"]


def test_troubleshooting() -> None:
    with workflow("fails") as wf:
        @task(inject_context=True)
        def fragile(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint()
            raise ValueError("bad input")

        with pytest.raises(Exception, match="bad input"):
            wf.execute()
    assert not os.path.exists("checkpoints")  # a failing task leaves no files
    with pytest.raises(CheckpointNotFoundError):
        CheckpointManager.resume_from_checkpoint("checkpoints/nothing_here")
    with workflow("immediate") as wf:
        @task(inject_context=True)
        def careful(ctx: TaskExecutionContext) -> str:
            record("careful")
            ctx.checkpoint(path="checkpoints/mid", deferred=False)
            return "ok"

        wf.execute()
    ctx, _ = CheckpointManager.resume_from_checkpoint("checkpoints/mid")
    assert WorkflowEngine().execute(ctx) == "ok"
    assert calls() == ["careful", "careful"]  # re-run after an immediate checkpoint: expected
    with open("checkpoints/mid.pkl", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CheckpointCorruptError, match=r"mid\.pkl"):
        CheckpointManager.resume_from_checkpoint("checkpoints/mid")
    os.remove("checkpoints/mid.state.json")
    with pytest.raises(CheckpointNotFoundError, match=r"mid\.state\.json is missing"):
        CheckpointManager.resume_from_checkpoint("checkpoints/mid")
