"""Bad payloads, lost graphs, unknown sessions and unreachable Redis."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import dist_flows as flows
import pytest
from conftest import DistPool, graflow, wait_until

from graflow import keys
from graflow.codec import sign
from graflow.distributed import WorkflowRun, submit
from graflow.distributed.dispatch import JOB_FUNCTION
from graflow.distributed.spec import decode, encode
from graflow.exceptions import (
    RedisUnavailableError,
    SessionNotFoundError,
    WorkflowFailedError,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

KEY_A = "worker-key-A-0123456789abcdef"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _idle_session(pool: DistPool, secret_key: str | None = None) -> tuple[WorkflowRun, dict[str, Any]]:
    """A queued session whose start job waits on a queue nobody serves; its spec as a dict."""
    run = submit(flows.e6(), pool.redis_url, queue=f"{pool.prefix}-idle", key_prefix=pool.prefix,
                 initial_channel={"x": 2}, secret_key=secret_key)  # fmt: skip
    [raw] = run.store.pending_specs()
    return run, json.loads(raw)


def _enqueue_raw(client: Any, pool: DistPool, payload: str, signature: str | None, session_id: str) -> str:
    """An rq job for ``execute_task_spec`` built by hand (JSON serializer, like graflow's)."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    job_id = f"gf-{session_id}-{uuid.uuid4().hex}-a1"
    Queue(pool.queue, connection=client, serializer=JSONSerializer).enqueue_call(
        JOB_FUNCTION, args=[payload, signature], job_id=job_id, result_ttl=0, failure_ttl=300, timeout=-1,
    )  # fmt: skip
    return job_id


def _failure(client: Any, pool: DistPool, job_id: str) -> str:
    """The exc_string of ``job_id`` once it is in the queue's failed registry."""
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    registry = Queue(pool.queue, connection=client, serializer=JSONSerializer).failed_job_registry
    wait_until(lambda: job_id in registry.get_job_ids(), timeout=15, what=f"{job_id} in the failed registry")
    result = Job.fetch(job_id, connection=client, serializer=JSONSerializer).latest_result()
    assert result is not None
    return str(result.exc_string)


def test_unknown_wire_version_is_rejected(pool: DistPool, client: Any) -> None:
    run, doc = _idle_session(pool)
    doc["v"] = 99
    job_id = _enqueue_raw(client, pool, json.dumps(doc), None, run.session_id)
    reason = _failure(client, pool, job_id)
    assert "PayloadError" in reason and "wire version 99" in reason
    status = wait_until(lambda: (s := run.status()).done and s, what="the session to fail")
    assert (status.state, status.stop_reason) == ("failed", "payload_rejected")
    assert status.error and "wire version 99" in status.error and "same graflow version" in status.error
    assert status.failed_task == "square"
    with pytest.raises(WorkflowFailedError, match="wire version 99"):
        run.wait(timeout=1)
    assert run.store.completed() == []


def test_rejected_payload_never_alters_a_finished_session(pool: DistPool, client: Any) -> None:
    run = submit(flows.e6(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, initial_channel={"x": 5})
    assert run.wait(timeout=20) == "25"
    before = run.status()
    doc = {"v": 99, "session_id": run.session_id, "task_id": "square", "graph_hash": "h",
           "spec_id": uuid.uuid4().hex, "queue": pool.queue, "key_prefix": pool.prefix}  # fmt: skip
    job_id = _enqueue_raw(client, pool, json.dumps(doc), None, run.session_id)
    assert "wire version 99" in _failure(client, pool, job_id)
    after = run.status()
    assert (after.state, after.stop_reason, after.error, after.failed_task) == ("completed", "drained", None, None)
    assert "error_type" not in after.extra and after.updated_at == before.updated_at
    assert run.wait(timeout=1) == "25"


def test_payload_that_is_not_a_task_spec_is_rejected(pool: DistPool, client: Any) -> None:
    run, doc = _idle_session(pool)
    del doc["task_id"]
    job_id = _enqueue_raw(client, pool, json.dumps(doc), None, run.session_id)
    assert "not a graflow TaskSpec" in _failure(client, pool, job_id)
    status = wait_until(lambda: (s := run.status()).done and s, what="the session to fail")
    assert (status.state, status.stop_reason) == ("failed", "payload_rejected")


def test_tampered_payload_is_rejected_by_a_keyed_worker(make_pool: Any, client: Any) -> None:
    pool = make_pool(1, GRAFLOW_SECRET_KEY=KEY_A)
    run, doc = _idle_session(pool, secret_key=KEY_A)
    payload = json.dumps(doc)
    signature = sign(payload.encode(), KEY_A)
    tampered = payload.replace('"square"', '"report"')
    assert tampered != payload
    job_id = _enqueue_raw(client, pool, tampered, signature, run.session_id)
    reason = _failure(client, pool, job_id)
    assert "PayloadSignatureError" in reason and job_id in reason
    status = wait_until(lambda: (s := run.status()).done and s, what="the session to fail")
    assert (status.state, status.stop_reason) == ("failed", "payload_rejected")
    assert status.error and status.error.startswith("PayloadSignatureError")
    assert status.extra.get("error_type") == "PayloadSignatureError"
    assert run.store.completed() == [] and run.get_result("report") is None

    # The untampered payload with the same signature would have been accepted.
    ok_run, ok_doc = _idle_session(pool, secret_key=KEY_A)
    ok_payload = json.dumps(ok_doc)
    _enqueue_raw(client, pool, ok_payload, sign(ok_payload.encode(), KEY_A), ok_run.session_id)
    ok_run.secret_key = KEY_A
    wait_until(lambda: ok_run.get_result("square") == 4, what="the signed job to run")


def test_unsigned_payload_is_rejected_by_a_keyed_worker(make_pool: Any, client: Any) -> None:
    pool = make_pool(1, GRAFLOW_SECRET_KEY=KEY_A)
    run, doc = _idle_session(pool, secret_key=KEY_A)
    job_id = _enqueue_raw(client, pool, json.dumps(doc), None, run.session_id)
    assert "PayloadSignatureError" in _failure(client, pool, job_id)
    status = wait_until(lambda: (s := run.status()).done and s, what="the session to fail")
    assert status.stop_reason == "payload_rejected"


def test_evicted_graph_fails_the_session(make_pool: Any, client: Any) -> None:
    pool = make_pool(1, start=False)
    run = submit(flows.e6(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix, initial_channel={"x": 2})
    graph_hash = run.status().extra["graph_hash"]
    assert client.delete(keys.graph(pool.prefix, graph_hash)) == 1
    pool.__enter__()
    with pytest.raises(WorkflowFailedError, match="expired or evicted"):
        run.wait(timeout=20)
    status = run.status()
    assert status.state == "failed" and status.error and graph_hash in status.error
    assert "expired or evicted" in status.error and "submit the workflow again" in status.error
    assert status.failed_task == "square" and status.stop_reason == "task_failed"
    assert run.store.completed() == []


def test_status_of_an_unknown_session_exits_4(pool: DistPool) -> None:
    unknown = uuid.uuid4().hex
    out = graflow("status", unknown, "--url", pool.redis_url, "--prefix", pool.prefix)
    assert out.returncode == 4
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graflow: error: ") and unknown in lines[0]
    assert out.stdout == ""


def test_attach_to_an_unknown_session(pool: DistPool) -> None:
    unknown = uuid.uuid4().hex
    with pytest.raises(SessionNotFoundError) as info:
        WorkflowRun.attach(unknown, redis_url=pool.redis_url, key_prefix=pool.prefix)
    assert isinstance(info.value, KeyError) and unknown in str(info.value)
    assert pool.prefix in str(info.value)


def test_unreachable_redis_everywhere_masks_the_password(tmp_path: Any) -> None:
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"

    with pytest.raises(RedisUnavailableError) as info:
        submit(flows.summing(), url, initial_channel={"n": 1})
    assert isinstance(info.value, ConnectionError)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(RedisUnavailableError) as attach_info:
        WorkflowRun.attach(uuid.uuid4().hex, redis_url=url)
    assert "s3cret" not in str(attach_info.value)

    cli = graflow("submit", "dist_flows:summing", "--url", url, "--set", "n=1")
    assert cli.returncode == 3, cli.stderr
    assert "s3cret" not in cli.stdout + cli.stderr and "***" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1 and cli.stderr.startswith("graflow: error: ")

    status = graflow("status", uuid.uuid4().hex, "--url", url)
    assert status.returncode == 3 and "s3cret" not in status.stdout + status.stderr

    worker = graflow("worker", "--url", url, "--queue", "gftest-unreachable", GRAFLOW_WORKER_REDIS_WAIT="0.5")
    assert worker.returncode == 3, worker.stderr
    assert "s3cret" not in worker.stdout + worker.stderr and "***" in worker.stderr


def test_submit_rejects_unpicklable_tasks_and_missing_start_nodes(redis_url: str, key_prefix: str,
                                                                  redis_client: Any) -> None:  # fmt: skip
    import threading

    from graflow import task, workflow
    from graflow.exceptions import GraphCompilationError, SerializationError

    lock = threading.Lock()
    with workflow("bad") as wf:

        @task
        def holds_a_lock() -> bool:
            return lock.locked()

    with pytest.raises(SerializationError, match="holds_a_lock"):
        wf.submit(redis_url, queue=key_prefix, key_prefix=key_prefix)
    with workflow("loop") as loop:

        @task
        def ping() -> None: ...

        @task
        def pong() -> None: ...

        ping >> pong >> ping
    with pytest.raises(GraphCompilationError, match="start"):
        loop.submit(redis_url, queue=key_prefix, key_prefix=key_prefix)
    with pytest.raises(GraphCompilationError, match="nope"):
        loop.submit(redis_url, queue=key_prefix, key_prefix=key_prefix, start_node="nope")
    assert not list(redis_client.scan_iter(match=f"{key_prefix}*"))  # nothing was written


def test_wire_spec_helpers_round_trip() -> None:
    from graflow.distributed import TaskSpec

    spec = TaskSpec(session_id="s" * 32, task_id="t", graph_hash="h", spec_id="x")
    assert decode(encode(spec)) == spec and spec.v == 1
    assert decode(b'{"session_id":"s","task_id":"t","graph_hash":"h","spec_id":"x","new_field":1}').task_id == "t"
