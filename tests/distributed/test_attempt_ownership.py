"""One owner's effects only: the session's steps of an attempt that lost its activation
(a worker that stalled past its lease while the task was redelivered) are refused.

Driven through ``SessionStore`` against real Redis, the way workers call it: START of a
stale job, COMMIT and FAIL of a superseded attempt record nothing, and the current owner's
steps go through. The channel side of the same rule is in tests/failover/test_fenced_writes.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graflow.distributed.session import SessionStore

pytestmark = pytest.mark.redis


def _store(redis_client: Any, key_prefix: str) -> SessionStore:
    store = SessionStore(redis_client, key_prefix, f"s{uuid.uuid4().hex[:12]}")
    store.create({"max_steps": 100}, {"spec": b'{"attempt": 1}', "other": b'{"attempt": 1}'})
    return store


def _commit(store: SessionStore, attempt: int) -> dict[str, Any]:
    control = {"spec_id": "spec", "attempt": attempt, "task_id": "t", "pred": "t", "record": True,
               "verdict": "complete", "message": "", "cancel_task": "t", "results": [], "offers": [],
               "dynamic": [], "branch": None, "finalize": None, "request": None, "snapshot": False}  # fmt: skip
    return store.commit(control, [])


def _fail(store: SessionStore, attempt: int) -> dict[str, Any]:
    control = {"spec_id": "spec", "attempt": attempt, "task_id": "t", "base_id": "t", "mode": "fail",
               "retry": None, "retry_id": None, "error": {"message": "late"}, "branch": None, "finalize": None}  # fmt: skip
    return store.fail(control)


def _owner(store: SessionStore) -> int | None:
    import json

    raw = store.client.hget(store.keys.running, "spec")
    return None if raw is None else int(json.loads(raw)["attempt"])


def _redelivered(store: SessionStore) -> None:
    assert store.start("spec", "w1", 1, "t", False)["status"] == "ok"
    assert store.redeliver("spec", 1, b'{"attempt": 2}', "w1")["status"] == "ok"


def test_a_late_commit_records_nothing_and_the_redelivered_attempt_completes(redis_client: Any, key_prefix: str) -> None:
    store = _store(redis_client, key_prefix)
    _redelivered(store)
    assert _commit(store, 1)["status"] == "superseded"  # attempt 2 waits to run: it owns the task
    assert store.completed() == [] and not redis_client.hexists(store.keys.done, "spec")
    assert store.pending_specs() and store.status_snapshot()[2] == 2  # "spec" (attempt 2) and "other"
    assert store.start("spec", "w2", 2, "t", False)["status"] == "ok"
    assert _commit(store, 1)["status"] == "superseded"  # attempt 2 runs now
    assert _commit(store, 2)["status"] == "ok" and store.completed() == ["t"]


def test_a_late_failure_leaves_the_owner_alone(redis_client: Any, key_prefix: str) -> None:
    store = _store(redis_client, key_prefix)
    _redelivered(store)
    assert store.start("spec", "w2", 2, "t", False)["status"] == "ok"
    assert _fail(store, 1)["status"] == "superseded"
    assert _owner(store) == 2 and store.meta()["state"] == "running"
    assert [e["event"] for e in store.events(20)].count("failed") == 0


def test_a_stale_job_started_after_its_redelivery_is_refused(redis_client: Any, key_prefix: str) -> None:
    """A worker that dequeued attempt 1, stalled, and starts it after the redelivery."""
    store = _store(redis_client, key_prefix)
    _redelivered(store)
    assert store.start("spec", "w1", 1, "t", False)["status"] == "superseded"  # attempt 2 is pending
    assert _owner(store) is None
    assert store.start("spec", "w2", 2, "t", False)["status"] == "ok"
    assert store.start("spec", "w1", 1, "t", False)["status"] == "superseded"  # attempt 2 runs
    assert _owner(store) == 2


def test_a_redelivery_of_a_completed_activation_is_dropped_when_it_starts(redis_client: Any, key_prefix: str) -> None:
    """Left behind by an earlier graflow (its late completions were accepted): the start of
    the redelivered attempt finds the activation done and drops it, so the run can end."""
    store = _store(redis_client, key_prefix)
    assert store.start("spec", "w1", 1, "t", False)["status"] == "ok"
    assert _commit(store, 1)["status"] == "ok"
    redis_client.hset(store.keys.pending, "spec", b'{"attempt": 2}')
    assert store.start("spec", "w2", 2, "t", False)["status"] == "dup"
    assert not redis_client.hexists(store.keys.pending, "spec")
