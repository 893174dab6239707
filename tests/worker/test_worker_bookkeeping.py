"""rq's bookkeeping of graflow jobs (``graflow.worker.bookkeeping``): lean, and what rq leaves.

A graflow job keeps no result in rq (``result_ttl=0``). After it succeeds, only its hash
(status finished) is left, in rq's FinishedJobRegistry, for ``GRAFLOW_FINISHED_JOB_TTL``
seconds (0: nothing is left: no job hash, leases or executions); a failed one must be in
the FailedJobRegistry with its reason, as rq records it. Workers run in this process, in
burst mode, so the tests can count the Redis round trips of each job.
"""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from worker_helpers import enqueue, entries, rq_queue, started_leases

pytestmark = pytest.mark.redis


def suspend_workers(key: str) -> None:
    """Job function: ``rq suspend`` (on the test's private suspension key)."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.set(key, 1)


def snapshot_started(out: str) -> None:
    """Job function: record rq's keys of this running job (names, types, hash fields)."""
    import json

    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    conn = job.connection
    worker = f"rq:worker:{job.worker_name}"
    # rq 3 also indexes a worker's running executions (``rq info`` reads it).
    names = [job.key, f"rq:wip:{job.origin}", f"rq:executions:{job.id}", worker, f"{worker}:executions"]
    names += [k.decode() for k in conn.scan_iter(match=f"rq:execution:{job.id}:*")]
    state: dict[str, Any] = {}
    for name in names:
        kind = conn.type(name).decode()
        entry: dict[str, Any] = {"type": kind}
        if kind == "hash":
            fields = {k.decode(): v for k, v in conn.hgetall(name).items()}
            entry["fields"] = sorted(fields)
            for field in ("status", "worker_name", "origin", "state", "current_job"):
                if field in fields:
                    entry[field] = fields[field].decode()
        elif kind == "zset":
            entry["members"] = sorted(m.decode() for m in conn.zrange(name, 0, -1))
        elif kind == "set":
            entry["members"] = sorted(m.decode() for m in conn.smembers(name))
        label = name.replace(job.id, "<job>").replace(job.origin, "<queue>")
        label = label.replace(job.worker_name or "", "<worker>")
        state[label] = entry
    text = json.dumps(state, sort_keys=True).replace(job.id, "<job>")
    text = text.replace(job.worker_name or "", "<worker>").replace(job.origin, "<queue>")
    for execution in job.get_executions():
        text = text.replace(execution.id, "<execution>")
    conn.set(out, text)


@pytest.fixture
def keep_signals() -> Iterator[None]:
    """rq installs SIGINT/SIGTERM handlers in ``work()``; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def run_burst(client: Any, queue: str, *, fork: bool = False, finished_job_ttl: int | None = None) -> Any:
    from graflow.worker.rq_worker import GraflowWorker

    worker = GraflowWorker([queue], name=f"{queue}-w", connection=client, heartbeat=10.0, fork=fork,
                           finished_job_ttl=finished_job_ttl)  # fmt: skip
    worker.work(burst=True, logging_level="WARNING")
    return worker


def leftovers(client: Any, job_id: str) -> list[bytes]:
    """Every key rq keeps for one job: its hash, dependents, dependencies, executions."""
    found: list[bytes] = []
    for pattern in (
        f"rq:job:{job_id}*",
        f"rq:job::{job_id}*",
        f"rq:execution:{job_id}:*",
        f"rq:executions:{job_id}",
    ):
        found += list(client.scan_iter(match=pattern, count=1000))
    return found


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_success_leaves_nothing_and_failure_is_in_the_failed_registry(
    redis_client: Any, queue_name: str, keep_signals: None, fork: bool
) -> None:
    out = f"{queue_name}:out"
    ok_id, bad_id = f"{queue_name}-ok", f"{queue_name}-bad"
    enqueue(redis_client, queue_name, "record", out, "one", job_id=ok_id)
    enqueue(redis_client, queue_name, "boom", out, job_id=bad_id)
    worker = run_burst(redis_client, queue_name, fork=fork, finished_job_ttl=0)

    assert [e["value"] for e in entries(redis_client, out)] == ["one", "boom"]
    # success (result_ttl=0, GRAFLOW_FINISHED_JOB_TTL=0): no job hash, no lease, no execution keys behind
    assert leftovers(redis_client, ok_id) == []
    assert redis_client.zcard(f"rq:finished:{queue_name}") == 0
    assert not started_leases(redis_client, queue_name)
    assert redis_client.llen(f"rq:queue:{queue_name}:intermediate") == 0
    # failure: in the FailedJobRegistry with its reason, as rq records it
    q = rq_queue(redis_client, queue_name)
    assert q.failed_job_registry.get_job_ids() == [bad_id]
    failed = q.fetch_job(bad_id)
    assert failed.get_status() == "failed"
    assert "boom from jobfuncs" in failed.latest_result().exc_string
    assert redis_client.keys(f"rq:execution:{bad_id}:*") == []
    # the worker's statistics (rq info, dashboards)
    stats = redis_client.hgetall(worker.key)
    assert stats[b"successful_job_count"] == b"1" and stats[b"failed_job_count"] == b"1"
    assert float(stats[b"total_working_time"]) > 0
    assert b"current_job" not in stats


def test_queues_are_served_in_priority_order(
    redis_client: Any, queue_name: str, keep_signals: None
) -> None:
    from graflow.worker.rq_worker import GraflowWorker

    out = f"{queue_name}:out"
    high, low = f"{queue_name}-high", f"{queue_name}-low"
    enqueue(redis_client, low, "record", out, "low", job_id=f"{queue_name}-l")
    enqueue(redis_client, high, "record", out, "high", job_id=f"{queue_name}-h")
    worker = GraflowWorker([high, low], name=f"{queue_name}-w", connection=redis_client)
    worker.work(burst=True, logging_level="WARNING")
    assert [e["value"] for e in entries(redis_client, out)] == ["high", "low"]
    assert not started_leases(redis_client, high) and not started_leases(redis_client, low)


def test_a_job_with_dependents_takes_rqs_own_path(
    redis_client: Any, queue_name: str, keep_signals: None
) -> None:
    out = f"{queue_name}:out"
    parent = enqueue(redis_client, queue_name, "record", out, "parent", job_id=f"{queue_name}-p")
    rq_queue(redis_client, queue_name).enqueue_call(
        "jobfuncs.record",
        args=[out, "child"],
        result_ttl=0,
        depends_on=parent,
        job_id=f"{queue_name}-c",
    )
    run_burst(redis_client, queue_name, finished_job_ttl=0)  # the child's lean path keeps nothing either
    assert [e["value"] for e in entries(redis_client, out)] == ["parent", "child"]
    assert (
        leftovers(redis_client, parent.id) == []
        and leftovers(redis_client, f"{queue_name}-c") == []
    )
    assert not started_leases(redis_client, queue_name)


def test_suspension_read_by_the_success_step_stops_a_burst_worker(
    redis_client: Any, queue_name: str, keep_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rq.suspension

    from graflow.worker import bookkeeping

    key = f"{queue_name}:suspended"  # rq's flag is global: never set the real one here
    monkeypatch.setattr(rq.suspension, "WORKERS_SUSPENDED", key)
    monkeypatch.setattr(bookkeeping, "WORKERS_SUSPENDED", key)
    out = f"{queue_name}:out"
    rq_queue(redis_client, queue_name).enqueue_call(
        f"{__name__}.suspend_workers", args=[key], result_ttl=0, job_id=f"{queue_name}-s"
    )
    enqueue(redis_client, queue_name, "record", out, "after", job_id=f"{queue_name}-r")
    run_burst(redis_client, queue_name)
    assert entries(redis_client, out) == []  # suspended: the second job was not taken
    assert rq_queue(redis_client, queue_name).job_ids == [f"{queue_name}-r"]


def test_round_trips_per_job(
    redis_client: Any, queue_name: str, keep_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """take (dequeue + start) and success: 2 round trips of rq's (rq 2.12 as-is: about 21), plus
    the job's own RPUSH."""
    from redis.connection import AbstractConnection
    from rq.job import Job

    main = threading.main_thread()
    trips = [0]
    starts: list[int] = []
    send = AbstractConnection.send_packed_command
    execute = Job._execute

    def counting_send(self: Any, command: Any, check_health: bool = True) -> Any:
        if threading.current_thread() is main:
            trips[0] += 1
        return send(self, command, check_health)

    def marking_execute(self: Any) -> Any:
        starts.append(trips[0])
        return execute(self)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    monkeypatch.setattr(Job, "_execute", marking_execute)
    out = f"{queue_name}:out"
    for i in range(10):
        enqueue(redis_client, queue_name, "record", out, str(i), job_id=f"{queue_name}-{i}")
    run_burst(redis_client, queue_name)
    assert len(entries(redis_client, out)) == 10
    per_job = [b - a for a, b in itertools.pairwise(starts)]
    assert len(per_job) == 9 and max(per_job) <= 3, per_job


@pytest.mark.parametrize("fork", [False, True], ids=["take", "fork+prepare"])
def test_a_started_job_looks_as_rq_would_leave_it(
    redis_client: Any, queue_name: str, keep_signals: None, fork: bool
) -> None:
    """The start step writes rq's keys and fields (rq-dashboard, rq info, the reaper)."""
    import json

    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    seen = {}
    for kind in ("rq", "graflow"):
        queue = f"{queue_name}-{kind}"
        rq_queue(redis_client, queue).enqueue_call(
            f"{__name__}.snapshot_started", args=[f"{queue}:snap"], result_ttl=0, timeout=-1,
            job_id=f"{queue}-j",
        )  # fmt: skip
        if kind == "rq":
            plain = SimpleWorker(
                [queue], name=f"{queue}-w", connection=redis_client, serializer=JSONSerializer
            )
            plain.work(burst=True, logging_level="WARNING")
        else:
            run_burst(redis_client, queue, fork=fork)
        seen[kind] = json.loads(redis_client.get(f"{queue}:snap"))
    assert seen["graflow"] == seen["rq"]
    assert seen["rq"]["rq:job:<job>"]["status"] == "started"
    assert seen["rq"]["rq:wip:<queue>"]["members"] == ["<job>:<execution>"]


def test_a_stalled_worker_does_not_run_a_job_put_back_and_started_elsewhere(
    redis_client: Any, queue_name: str
) -> None:
    """rq's dequeue parks the job id on the intermediate list; a worker that stalls there
    looks lost, so the reaper puts the job back and another worker starts it. When the
    stalled worker wakes up, its start step finds the job started and runs nothing."""
    from rq.queue import Queue
    from workerpool import wait_until

    from graflow.worker import bookkeeping
    from graflow.worker.failover import Reaper
    from graflow.worker.rq_worker import GraflowWorker

    out, job_id = f"{queue_name}:out", f"gf-{queue_name}-j"  # gf-: the reaper sweeps its own
    enqueue(redis_client, queue_name, "record", out, job_id=job_id)
    stalled, other = (
        GraflowWorker([queue_name], name=f"{queue_name}-{n}", connection=redis_client, heartbeat=0.75)
        for n in ("stalled", "other")
    )  # fmt: skip
    reaper = Reaper(redis_client, [queue_name], heartbeat=0.75, max_redeliveries=3, name="reaper", prefix=queue_name)
    for worker in (stalled, other):
        worker.register_birth()
    try:
        job, queue = Queue.dequeue_any(stalled.queues, None, connection=redis_client, serializer=stalled.serializer)
        wait_until(lambda: reaper.run_once() == 1, 5, "the reaper to put the job back")
        assert rq_queue(redis_client, queue_name).job_ids == [job_id]
        taken = bookkeeping.take(other)
        assert taken is not None and taken[0].id == job_id
        assert stalled.execute_job(job, queue) is True
        assert entries(redis_client, out) == []  # the stalled worker ran nothing ...
        assert redis_client.hget(job.key, "worker_name") == other.name.encode()  # ... nor wrote
        assert list(started_leases(redis_client, queue_name)) == [job_id]  # one lease: other's
        assert stalled.get_state() != "busy"
    finally:
        for worker in (stalled, other):
            worker.register_death()
        from graflow import keys

        redis_client.delete(keys.intermediate_seen(queue_name), keys.lease_clock(queue_name), keys.leases(queue_name))


def _finished_state(client: Any, queue: str, job_id: str) -> dict[str, Any]:
    """What rq info and rq-dashboard read of a finished job, and what rq leaves of it."""
    from graflow.distributed.rqapi import FinishedJobRegistry

    registry = FinishedJobRegistry(queue, connection=client)
    job = rq_queue(client, queue).fetch_job(job_id)  # the dashboard's read (needs the job's data)
    return {
        "listed": registry.get_job_ids(),
        "count": registry.count,
        "score": client.zscore(registry.key, job_id),
        "status": job.get_status(),
        "ended_at": job.ended_at is not None,
        "description": job.description,
        "fields": sorted(k.decode() for k in client.hkeys(f"rq:job:{job_id}")),
        "ttl": client.ttl(f"rq:job:{job_id}"),
        "executions": client.keys(f"rq:execution:{job_id}:*") + client.keys(f"rq:executions:{job_id}"),
    }


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_a_finished_job_is_kept_as_rq_keeps_one(
    redis_client: Any, queue_name: str, keep_signals: None, fork: bool
) -> None:
    """GRAFLOW_FINISHED_JOB_TTL: the lean success step leaves what rq's own success path
    leaves for a job with that result_ttl (minus the result, which graflow keeps itself)."""
    import time

    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    ttl = 120
    seen = {}
    for kind in ("rq", "graflow"):
        queue = f"{queue_name}-{kind}"
        out = f"{queue}:out"
        job_id = f"{queue}-j"
        rq_queue(redis_client, queue).enqueue_call(
            "jobfuncs.record", args=[out, kind], result_ttl=ttl if kind == "rq" else 0, timeout=-1,
            job_id=job_id, description="the job",
        )  # fmt: skip
        before = int(time.time())
        if kind == "rq":
            plain = SimpleWorker([queue], name=f"{queue}-w", connection=redis_client, serializer=JSONSerializer)
            plain.work(burst=True, logging_level="WARNING")
        else:
            run_burst(redis_client, queue, fork=fork, finished_job_ttl=ttl)
        after = int(time.time())
        assert [e["value"] for e in entries(redis_client, out)] == [kind]
        state = _finished_state(redis_client, queue, job_id)
        assert before + ttl <= state.pop("score") <= after + ttl  # FinishedJobRegistry.add's score
        assert 0 < state.pop("ttl") <= ttl
        state["listed"] = [j.replace(kind, "<kind>") for j in state["listed"]]
        seen[kind] = state
    rq_fields, graflow_fields = set(seen["rq"].pop("fields")), set(seen["graflow"].pop("fields"))
    assert rq_fields <= graflow_fields | {"result"}, rq_fields - graflow_fields  # rq 2 may keep a result field
    assert seen["graflow"] == seen["rq"]
    assert seen["rq"] == {"listed": [f"{queue_name}-<kind>-j"], "count": 1, "status": "finished",
                          "ended_at": True, "description": "the job", "executions": []}  # fmt: skip
    assert not started_leases(redis_client, f"{queue_name}-graflow")
    assert redis_client.hget(f"rq:worker:{queue_name}-graflow-w", "successful_job_count") == b"1"
