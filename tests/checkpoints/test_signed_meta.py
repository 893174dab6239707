"""Signed checkpoints are signed whole: meta.json's HMAC covers every artefact.

With ``GRAFLOW_SECRET_KEY`` set, meta.json carries an HMAC over its content, and through
the hashes it records over state.json and the ``.pkl``. Editing state.json (marking a
task completed) and recomputing its hash in meta.json used to be accepted and the task
skipped on resume; now any edit is refused with ``CheckpointSignatureError``, as a
tampered pickle is. Unsigned checkpoints are what they were (no ``signature`` field).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from ckutil import META_KEYS, calls, meta, record, refresh_hash, state, write_json

from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow
from graflow.exceptions import CheckpointSignatureError, PayloadSignatureError

resume = CheckpointManager.resume_from_checkpoint
OLD, NEW = "old-secret-key-0123456789", "new-secret-key-0123456789"


def checkpoint(path: str = "ck/x") -> str:
    """``a >> b``; ``a`` checkpoints (deferred) at ``path``: a completed, b pending."""
    with workflow("signed") as wf:

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> str:
            record("a")
            ctx.checkpoint(path=path, metadata={"stage": "a", "owner": "alice"})
            return "A"

        @task
        def b() -> str:
            record("b")
            return "B"

        a >> b
    wf.execute()
    return path


def mark_b_completed(base: str) -> None:
    """What an attacker with write access does: b completed, nothing pending, hashes fixed."""
    doc = state(base)
    doc["completed_tasks"] = ["a", "b"]
    doc["pending_tasks"] = []
    write_json(base + ".state.json", doc)
    refresh_hash(base, "state")


def graflow_resume(base: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFLOW_")}
    if key:
        env["GRAFLOW_SECRET_KEY"] = key
    return subprocess.run([sys.executable, "-m", "graflow", "resume", base, "--local"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_an_edited_state_json_with_recomputed_hashes_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    base = checkpoint()
    assert set(meta(base)) == META_KEYS | {"signature"} and meta(base)["signed"] is True
    mark_b_completed(base)
    with pytest.raises(CheckpointSignatureError, match=r"ck/x\.pkl is unsigned/tampered") as caught:
        resume(base)
    assert isinstance(caught.value, PayloadSignatureError)
    assert "ck/x.meta.json does not match its signature" in str(caught.value)
    assert "GRAFLOW_SECRET_KEY" in str(caught.value)
    done = graflow_resume(base, OLD)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert (
        line.startswith("graflow: error: ck/x.pkl is unsigned/tampered")
        and " — set the same" in line
    ), line
    assert calls() == ["a", "b"]  # the original run only: nothing was resumed


def test_an_edited_user_metadata_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    base = checkpoint()
    doc = meta(base)
    doc["user_metadata"]["owner"] = "mallory"
    write_json(base + ".meta.json", doc)
    with pytest.raises(CheckpointSignatureError, match="does not match its signature"):
        resume(base)
    doc["user_metadata"]["owner"] = "alice"  # the original content, written another way: fine
    write_json(base + ".meta.json", doc)
    ctx, info = resume(base)
    assert info.user_metadata["owner"] == "alice" and WorkflowEngine().execute(ctx) == "B"


def test_a_stripped_or_foreign_signature_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    base = checkpoint()
    doc = meta(base)
    signature = doc.pop("signature")
    write_json(base + ".meta.json", doc)
    with pytest.raises(CheckpointSignatureError, match=r"x\.meta\.json has no signature"):
        resume(base)
    doc["signature"] = signature
    write_json(base + ".meta.json", doc)
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", NEW)  # another key only
    with pytest.raises(CheckpointSignatureError, match="does not match its signature"):
        resume(base)
    monkeypatch.delenv("GRAFLOW_SECRET_KEY")
    with pytest.raises(CheckpointSignatureError, match=r"x\.pkl is signed but no key is set"):
        resume(base)


def test_rotation_verifies_a_checkpoint_signed_with_the_old_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    base = checkpoint()
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", f"{NEW},{OLD}")
    ctx, _ = resume(base)
    assert ctx.completed_tasks == ["a"] and WorkflowEngine().execute(ctx) == "B"
    mark_b_completed(base)  # rotation does not loosen the check
    with pytest.raises(CheckpointSignatureError):
        resume(base)


def test_unsigned_checkpoints_are_unchanged_and_load_without_a_key() -> None:
    base = checkpoint()
    info = meta(base)
    assert set(info) == META_KEYS and info["signed"] is False  # no signature field
    ctx, _ = resume(base)
    assert WorkflowEngine().execute(ctx) == "B"
    assert calls() == ["a", "b", "b"]  # the run, then the resumed b


@pytest.mark.redis
def test_a_checkpoint_in_redis_is_signed_whole(
    monkeypatch: pytest.MonkeyPatch, redis_client: Any, redis_url: str, key_prefix: str
) -> None:
    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    location = f"{redis_url}/{key_prefix}/ck/x"
    checkpoint(location)
    key = f"{key_prefix}/ck/x"
    doc = json.loads(redis_client.get(key + ".state.json"))
    doc["completed_tasks"], doc["pending_tasks"] = ["a", "b"], []
    edited = json.dumps(doc).encode()
    info = json.loads(redis_client.get(key + ".meta.json"))
    info["files"]["state"] = {"bytes": len(edited), "sha256": hashlib.sha256(edited).hexdigest()}
    redis_client.set(key + ".state.json", edited)
    redis_client.set(key + ".meta.json", json.dumps(info).encode())
    with pytest.raises(CheckpointSignatureError, match="does not match its signature"):
        resume(location)


def test_the_signature_is_checked_before_the_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited state.json WITHOUT a fixed hash is a signature error too only if meta.json
    was touched; untouched meta.json + edited state.json stays a plain hash mismatch."""
    from graflow.exceptions import CheckpointCorruptError

    monkeypatch.setenv("GRAFLOW_SECRET_KEY", OLD)
    base = checkpoint()
    doc = state(base)
    doc["completed_tasks"] = ["a", "b"]
    write_json(base + ".state.json", doc)
    with pytest.raises(
        CheckpointCorruptError, match=r"x\.state\.json does not match its meta\.json"
    ):
        resume(base)
