"""Bad checkpoints and failed writes (see docs/checkpoints.md).

Every bad input raises a typed error from graflow.exceptions whose message names the
file and the fix, and a failed or interrupted write leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from ckutil import (
    arm,
    bases,
    calls,
    load_json,
    maybe_fail,
    meta,
    record,
    refresh_hash,
    state,
    write_json,
)

from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow
from graflow.crash import CRASH_EXIT_CODE
from graflow.exceptions import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSignatureError,
    CheckpointVersionError,
    GraflowWarning,
    GraphChangedError,
    GraphChangedWarning,
    PayloadSignatureError,
)

HERE = Path(__file__).resolve().parent
resume = CheckpointManager.resume_from_checkpoint


def build(path: str | None = "ck/x", extra: bool = False, b_checkpoints: bool = False) -> Any:
    """``a >> b`` (>> c); ``a`` (and ``b``) checkpoint at ``path`` (auto-named when None)."""
    with workflow("errors") as wf:
        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> str:
            record("a")
            ctx.checkpoint(path=path, metadata={"stage": "a"})
            return "A"

        @task(inject_context=True)
        def b(ctx: TaskExecutionContext) -> str:
            record("b")
            maybe_fail("b")
            if b_checkpoints:
                ctx.checkpoint(path=path, metadata={"stage": "b"})
            return "B"

        chain = a >> b
        if extra:
            @task
            def c() -> str:
                return "C"

            chain >> c
    return wf


def checkpoint(path: str = "ck/x", **kwargs: Any) -> str:
    build(path).execute(**kwargs)
    return path


def test_an_intact_checkpoint_resumes() -> None:
    base = checkpoint()
    ctx, info = resume(base)
    assert ctx.completed_tasks == ["a"] and info.user_metadata["stage"] == "a"
    assert WorkflowEngine().execute(ctx) == "B"


@pytest.mark.parametrize("part", ["pkl", "state.json", "meta.json"])
def test_a_missing_artefact(part: str) -> None:
    base = checkpoint()
    os.remove(f"{base}.{part}")
    with pytest.raises(CheckpointNotFoundError) as caught:
        resume(base)
    assert isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    assert f"x.{part}" in message
    if part == "meta.json":
        assert "writer was interrupted" in message and "earlier checkpoint" in message
    else:
        assert "copy all three artefacts" in message


def test_no_checkpoint_at_all() -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at nowhere/x\.meta\.json"):
        resume("nowhere/x.pkl")
    assert not os.path.exists("nowhere")


def _corrupt(message: str, caught: Any, fix: str = "use another") -> None:
    """A CheckpointCorruptError (also every builtin it stands for) naming file and fix."""
    exc = caught.value
    assert isinstance(exc, json.JSONDecodeError) and isinstance(exc, ValueError)
    assert isinstance(exc, pickle.UnpicklingError)
    assert message in str(exc) and fix in str(exc)


def test_a_truncated_pkl() -> None:
    base = checkpoint()
    with open(base + ".pkl", "r+b") as fh:
        fh.truncate(64)
    with pytest.raises(CheckpointCorruptError) as caught:
        resume(base)
    _corrupt("x.pkl does not match its meta.json", caught)


@pytest.mark.parametrize("part", ["state.json", "meta.json"])
def test_invalid_json(part: str) -> None:
    base = checkpoint()
    Path(f"{base}.{part}").write_text('{"checkpoint_id": ')
    with pytest.raises(CheckpointCorruptError) as caught:
        resume(base)
    _corrupt(f"x.{part} is not valid JSON", caught)


def test_a_hash_mismatch() -> None:
    base = checkpoint()
    doc = state(base)
    doc["steps"] = 99  # still valid JSON, still the same checkpoint id
    write_json(base + ".state.json", doc)
    with pytest.raises(CheckpointCorruptError) as caught:
        resume(base)
    _corrupt("x.state.json does not match its meta.json", caught)


def test_files_of_two_checkpoints_mixed() -> None:
    checkpoint("ck/x")
    checkpoint("ck/y")
    shutil.copy("ck/y.state.json", "ck/x.state.json")
    with pytest.raises(CheckpointCorruptError) as caught:
        resume("ck/x")
    _corrupt("x.state.json belongs to checkpoint", caught, "copy the three artefacts")
    shutil.copy("ck/y.meta.json", "ck/x.meta.json")  # now only the .pkl is foreign
    with pytest.raises(CheckpointCorruptError) as caught:
        resume("ck/x")
    _corrupt("x.pkl does not match its meta.json", caught)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("3.0", "newer than this graflow reads (2.x); upgrade graflow"),
        ("1.0", "written by upstream Graflow"),
        (None, "written by upstream Graflow"),
    ],
)
def test_schema_versions(version: str | None, expected: str) -> None:
    base = checkpoint()
    doc = meta(base)
    if version is None:
        del doc["schema_version"]
    else:
        doc["schema_version"] = version
    write_json(base + ".meta.json", doc)
    with pytest.raises(CheckpointVersionError, match=r"x\.meta\.json") as caught:
        resume(base)
    assert expected in str(caught.value)
    assert "upgrade" in str(caught.value) or "re-run the workflow" in str(caught.value)


def test_an_upstream_checkpoint() -> None:
    """Upstream's meta.json has no schema_version; its state.json says "1.0"."""
    base = checkpoint()
    upstream = {k: meta(base)[k] for k in ("checkpoint_id", "session_id", "created_at", "steps")}
    write_json(base + ".meta.json", upstream)
    write_json(base + ".state.json", {"schema_version": "1.0", "completed_tasks": ["a"]})
    with pytest.raises(CheckpointVersionError, match=r"x\.state\.json has schema_version '1\.0'"):
        resume(base)


KEY, NEW_KEY = "old-secret-key-0123456789", "new-secret-key-0123456789"


def test_a_tampered_pkl_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY)
    base = checkpoint()
    assert meta(base)["signed"] is True
    data = bytearray(Path(base + ".pkl").read_bytes())
    data[-10] ^= 0xFF
    Path(base + ".pkl").write_bytes(bytes(data))
    refresh_hash(base, "pkl")  # whoever can write the .pkl can write meta.json too
    with pytest.raises(CheckpointSignatureError, match=r"x\.pkl .*tampered") as caught:
        resume(base)
    assert isinstance(caught.value, PayloadSignatureError)
    assert "GRAFLOW_SECRET_KEY" in str(caught.value)


def test_signed_without_a_key_and_unsigned_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY)
    signed = checkpoint("ck/signed")
    monkeypatch.delenv("GRAFLOW_SECRET_KEY")
    with pytest.raises(CheckpointSignatureError, match=r"signed\.pkl is signed but no key"):
        resume(signed)
    unsigned = checkpoint("ck/unsigned")
    assert meta(unsigned)["signed"] is False
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY)
    with pytest.raises(CheckpointSignatureError, match=r"unsigned\.pkl is unsigned"):
        resume(unsigned)


def test_key_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY)
    old = checkpoint("ck/old")
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{NEW_KEY},{KEY}")
    ctx, _ = resume(old)  # the old key still verifies
    assert WorkflowEngine().execute(ctx) == "B"
    new = checkpoint("ck/new")  # the first key signs
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", KEY)
    with pytest.raises(CheckpointSignatureError):
        resume(new)
    assert resume(new, secret_key=NEW_KEY)[0].completed_tasks == ["a"]


def test_a_key_in_the_run_config_signs_and_is_never_stored() -> None:
    base = checkpoint(config={"secret_key": KEY})
    assert meta(base)["signed"] is True
    assert KEY.encode() not in Path(base + ".pkl").read_bytes()
    with pytest.raises(CheckpointSignatureError, match="no key is set"):
        resume(base)
    assert resume(base, secret_key=KEY)[0].config.get("secret_key") is None


def test_an_unwritable_location_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    ctx = ExecutionContext.create(build("afile/sub/x").graph)
    with pytest.raises(CheckpointError, match=r"afile/sub/x\.pkl: Not a directory") as caught:
        WorkflowEngine().execute(ctx)
    assert "writable" in str(caught.value)
    assert ctx.completed_tasks == ["a"] and ctx.task_queue.peek_next_node() == "b"
    # A write that fails half-way (state.json cannot be renamed into place) removes
    # what it had already placed, and its temporary files.
    os.makedirs("ck/x.state.json")
    ctx = ExecutionContext.create(build("ck/x").graph)
    with pytest.raises(CheckpointError, match=r"ck/x\.pkl: Is a directory"):
        WorkflowEngine().execute(ctx)
    assert os.listdir("ck") == ["x.state.json"] and os.listdir("ck/x.state.json") == []


def test_an_unknown_pending_task() -> None:
    base = checkpoint()
    doc = state(base)
    doc["pending_tasks"][0]["task_id"] = "ghost"
    doc["resuming_task_id"] = "phantom"
    write_json(base + ".state.json", doc)
    refresh_hash(base, "state")
    with pytest.raises(CheckpointError, match=r"x\.state\.json names tasks") as caught:
        resume(base)
    assert "['ghost', 'phantom']" in str(caught.value) and "graph=" in str(caught.value)


def test_a_changed_graph(caplog: pytest.LogCaptureFixture) -> None:
    base = checkpoint()
    changed = build(extra=True).graph
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx, _ = resume(base, graph=changed)
    assert [w.category for w in caught] == [GraphChangedWarning]
    assert "x.pkl" in str(caught[0].message) and "graph differs" in caplog.text
    assert WorkflowEngine().execute(ctx) == "C"
    with pytest.raises(GraphChangedError, match=r"x\.pkl .*resume with the original workflow"):
        resume(base, graph=changed, strict_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resume(base, graph=build().graph, strict_graph=True)  # the same graph: silent


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::graflow.exceptions.UnsignedPayloadWarning")
def test_a_graph_evicted_from_redis(redis_client: Any, redis_url: str, key_prefix: str) -> None:
    wf = build()
    arm("b")
    with pytest.raises(Exception, match="injected failure"):
        wf.execute(channel_backend="redis", config={"url": redis_url, "key_prefix": key_prefix})
    graph_key = f"{key_prefix}:graph:{meta('ck/x')['graph_hash']}"
    assert redis_client.delete(graph_key) == 1
    with pytest.raises(CheckpointError, match=r"is no longer in Redis") as caught:
        resume("ck/x")
    assert "graph=" in str(caught.value) and "--workflow" in str(caught.value)
    assert "ck/x.pkl" in str(caught.value)
    ctx, _ = resume("ck/x", graph=wf.graph)
    assert WorkflowEngine().execute(ctx) == "B"
    assert redis_client.exists(f"{key_prefix}:graph:{ctx.graph_hash}")  # uploaded


def test_a_writer_killed_in_the_middle(workdir: Path) -> None:
    """A process resumes a run and dies right after placing the .pkl of its second
    (auto-named) checkpoint: the first stays valid, the torn one is reported."""
    arm("b")
    with pytest.raises(Exception, match="injected failure"):
        build(None, b_checkpoints=True).execute()
    [first] = bases()
    assert first.endswith("_step_1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFLOW_")}
    env.update(GRAFLOW_CRASH_AT="checkpoint.after_pkl", PYTHONPATH=str(HERE))
    done = subprocess.run(
        [sys.executable, "-m", "graflow", "resume", first, "--local"], cwd=workdir, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == CRASH_EXIT_CODE, done.stderr
    torn = first.replace("_step_1", "_step_2")
    assert os.path.exists(torn + ".pkl") and not os.path.exists(torn + ".meta.json")
    with pytest.raises(CheckpointNotFoundError, match=r"step_2\.meta\.json is missing: the writer was interrupted"):
        resume(torn)
    with pytest.warns(GraflowWarning, match=r"step_2\.meta\.json.*interrupted"):
        listed = CheckpointManager.list_checkpoints()
    assert [loc for loc, _ in listed] == [first + ".pkl"]
    assert load_json(first + ".meta.json")["steps"] == 1
    ctx, _ = resume(first)  # the previous checkpoint is intact and resumable
    assert WorkflowEngine().execute(ctx) == "B"
    assert calls() == ["a", "b", "b", "b"]


@pytest.mark.parametrize("kind", ["local", pytest.param("redis", marks=pytest.mark.redis), "memory"])
def test_torn_checkpoints_are_listed_with_a_warning(kind: str, request: Any) -> None:
    """Any store: a base with artefacts but no meta.json is skipped with a warning."""
    if kind == "redis":
        request.getfixturevalue("redis_client")
        root = f"{request.getfixturevalue('redis_url')}/{request.getfixturevalue('key_prefix')}/ck"
    else:
        root = "ck" if kind == "local" else f"memory://gftest-{os.getpid()}-{id(request)}/ck"
    checkpoint(f"{root}/good")
    checkpoint(f"{root}/torn")
    from graflow.storage import open_location

    store, base = open_location(f"{root}/torn")
    if kind == "local":
        os.remove(f"{root}/torn.meta.json")
    elif kind == "redis":
        store._client().delete(base + ".meta.json")  # type: ignore[attr-defined]
    else:
        store.fs.rm_file(store._path(base, "meta"))  # type: ignore[attr-defined]
    assert store.list_torn() == [base]
    with pytest.warns(GraflowWarning, match=r"torn\.meta\.json.*interrupted"):
        listed = CheckpointManager.list_checkpoints(root)
    assert [loc for loc, _ in listed] == [f"{root}/good.pkl"]
    if kind == "memory":
        store.fs.rm(root.split("/")[2], recursive=True)  # type: ignore[attr-defined]
