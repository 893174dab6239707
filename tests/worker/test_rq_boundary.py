"""rq behind one boundary (``graflow.distributed.rqapi``, docs/rq.md).

Only that package imports rq; every private use it lists names tests that fail when rq
changes what graflow relies on. The tests here pin those uses against the installed rq
(2.12 or 3.x): signatures, attributes, and rq's Redis layout as rq itself writes it.
"""

from __future__ import annotations

import ast
import inspect
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import enqueue, rq_queue

REPO = Path(__file__).resolve().parents[2]
BOUNDARY = REPO / "graflow" / "distributed" / "rqapi"


def _rq_imports(path: Path) -> list[str]:
    """``import rq…``/``from rq… import`` statements in ``path`` (any depth, any scope)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"{path}:{node.lineno}" for a in node.names if a.name.split(".")[0] == "rq"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "rq":
            found.append(f"{path}:{node.lineno}")
    return found


def test_only_the_boundary_imports_rq() -> None:
    offenders = []
    for path in sorted((REPO / "graflow").rglob("*.py")):
        if BOUNDARY not in path.parents:
            offenders += _rq_imports(path)
    assert offenders == [], "import rq names from graflow.distributed.rqapi instead"
    assert _rq_imports(BOUNDARY / "__init__.py")  # the check itself sees imports


def test_every_private_use_names_tests_that_exist() -> None:
    from graflow.distributed.rqapi.private import PRIVATE_USES

    missing = []
    for use in PRIVATE_USES:
        assert use.why and use.where and use.tests, use.name
        for ref in use.tests:
            path, _, name = ref.partition("::")
            tree = ast.parse((REPO / path).read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            if name not in names:
                missing.append(ref)
    assert missing == []


def _params(fn: Any) -> str:
    out = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        star = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        out.append(star + p.name + ("" if p.default is p.empty else "=" + repr(p.default)))
    return ", ".join(out)


def test_rq_method_signatures_are_the_pinned_ones() -> None:
    """Every rq method graflow overrides or calls still takes what graflow passes."""
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi.private import SIGNATURES, SIGNATURES_BY_MAJOR

    pinned = {**SIGNATURES, **SIGNATURES_BY_MAJOR[rqapi.RQ_MAJOR]}
    owners = {"Worker": rqapi.Worker, "RQScheduler": rqapi.RQScheduler, "Queue": rqapi.Queue,
              "UnixSignalDeathPenalty": rqapi.UnixSignalDeathPenalty}  # fmt: skip
    actual = {}
    for name in pinned:
        owner, _, method = name.partition(".")
        actual[name] = _params(getattr(owners[owner], method))
    assert actual == pinned


def test_private_worker_attributes_exist(redis_client: Any, queue_name: str) -> None:
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import compat

    worker = rqapi.Worker([queue_name], name=f"{queue_name}-w", connection=redis_client)
    for attr in ("_state", "_stop_requested", "_shutdown_requested_date", "_ordered_queues", "scheduler"):
        assert hasattr(worker, attr), attr
    assert worker._ordered_queues[0].name == queue_name
    if rqapi.RQ_MAJOR >= 3:
        assert worker.executions == {}  # compat.current_execution reads this dict ...
        assert isinstance(type(worker).__dict__.get("execution") or rqapi.Worker.execution, property)
    else:
        assert worker.execution is None  # ... or rq 2's attribute
    assert compat.current_execution(worker) is None
    scheduler = rqapi.RQScheduler([queue_name], connection=redis_client)
    for attr in ("_stop_requested", "_process", "acquired_locks"):
        assert hasattr(scheduler, attr), attr
    penalty = rqapi.UnixSignalDeathPenalty(1.5, Exception)
    assert penalty._timeout == 1.5


def test_job_perform_persists_as_compat_assumes() -> None:
    """rq 2's ``Job.perform`` PERSISTs (``LeanJob`` skips that); rq 3's doesn't, its
    ``prepare_job_execution`` does (the lean start step replaces it)."""
    import rq.job

    from graflow.distributed import rqapi

    perform = inspect.getsource(rqapi.Job.perform)
    prepare = inspect.getsource(rqapi.Worker.prepare_job_execution)
    if rqapi.RQ_MAJOR >= 3:
        assert "persist" not in perform and "persist(job.key)" in prepare
    else:
        assert "self.connection.persist(self.key)" in perform and "persist" not in prepare
        stack = rq.job._job_stack  # type: ignore[attr-defined]
        assert callable(stack.push) and callable(stack.pop)
        assert "self._result = self._execute()" in perform


def test_execution_layout_is_rqs(redis_client: Any, queue_name: str) -> None:
    """rq's own ``prepare_execution`` writes the keys ``layout`` names."""
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import layout

    job = enqueue(redis_client, queue_name, "record", f"{queue_name}:out", job_id=f"{queue_name}-e")
    worker = rqapi.SimpleWorker([queue_name], name=f"{queue_name}-w", connection=redis_client,
                                serializer=rqapi.JSONSerializer)  # fmt: skip
    execution = worker.prepare_execution(job)
    composite = f"{job.id}:{execution.id}"
    assert execution.composite_key == composite
    assert execution.key == layout.EXECUTION_PREFIX + composite
    assert redis_client.exists(execution.key)
    assert redis_client.zscore(layout.executions_key(job.id), execution.id) is not None
    index = layout.worker_executions_key(worker.name)
    if index is None:
        assert rqapi.RQ_MAJOR == 2
        # rq 2 records the started entry in prepare_job_execution (the horse's side).
        worker.prepare_job_execution(job)
        assert redis_client.hget(worker.key, "current_job") == job.id.encode()
    else:
        assert redis_client.smembers(index) == {composite.encode()}
        assert redis_client.hget(execution.key, "job_id") == job.id.encode()
    assert redis_client.zscore(layout.started_key(queue_name), composite) is not None


def test_rqs_dequeue_parks_the_id_on_the_intermediate_list(redis_client: Any, queue_name: str) -> None:
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import layout

    job = enqueue(redis_client, queue_name, "record", f"{queue_name}:out", job_id=f"{queue_name}-i")
    queue = rq_queue(redis_client, queue_name)
    assert queue.key == layout.QUEUE_PREFIX + queue_name
    found = rqapi.Queue.dequeue_any([queue], 1, connection=redis_client, serializer=rqapi.JSONSerializer)
    assert found is not None and found[0].id == job.id
    assert redis_client.lrange(layout.intermediate_key(queue_name), 0, -1) == [job.id.encode()]
    assert layout.intermediate_key(queue_name).removesuffix(":intermediate") == queue.key  # failover
    fields = redis_client.hgetall(job.key)  # read by the TAKE script and the stuck-job sweep
    assert fields[b"status"].decode() == rqapi.JobStatus.QUEUED.value
    assert fields[b"origin"].decode() == queue_name
    assert b"data" in fields and job.key == layout.JOB_PREFIX + job.id


def test_worker_registration_layout(redis_client: Any, queue_name: str) -> None:
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import layout
    from graflow.worker import takeover

    worker = rqapi.Worker([queue_name], name=f"{queue_name}-w", connection=redis_client)
    worker.register_birth()
    try:
        assert worker.key == layout.worker_key(worker.name)
        assert redis_client.sismember(layout.WORKERS_SET, worker.key)
        assert redis_client.sismember(layout.workers_by_queue_key(queue_name), worker.key)
        found = takeover.read_registration(redis_client, worker.name)
        assert found is not None and found.pid == worker.pid and found.queues == [queue_name]
        assert found.finished_jobs == 0 and found.dead_because(10.0) == f"its pid {worker.pid} is now this process"
        assert "birth" in found.fields and "hostname" in found.fields
        if rqapi.RQ_MAJOR >= 3:
            assert worker.executions_key == layout.worker_executions_key(worker.name)
    finally:
        worker.register_death()
    found = takeover.read_registration(redis_client, worker.name)
    assert found is not None and found.dead_because(10.0) == "it registered its death"
    takeover.drop_registration(redis_client, worker.name, [queue_name])
    assert not redis_client.exists(worker.key)
    assert not redis_client.sismember(layout.WORKERS_SET, worker.key)


def test_suspension_flag_is_the_one_rq_suspend_sets(redis_client: Any) -> None:
    """rq's ``suspend`` sets ``layout.WORKERS_SUSPENDED`` (queued on a pipeline, never sent:
    the flag is global)."""
    import rq.suspension

    from graflow.distributed.rqapi import layout

    pipe = redis_client.pipeline()
    rq.suspension.suspend(pipe)
    assert [args[:2] for args, _ in pipe.command_stack] == [("SET", layout.WORKERS_SUSPENDED)]
    pipe.reset()


def test_timestamps_are_in_rqs_format(redis_client: Any, queue_name: str) -> None:
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import layout

    moment = layout.now()
    assert layout.utcparse(layout.utcformat(moment)) == moment
    worker = rqapi.Worker([queue_name], name=f"{queue_name}-w", connection=redis_client)
    worker.register_birth()
    try:
        birth = redis_client.hget(worker.key, "birth").decode()
        assert layout.utcformat(layout.utcparse(birth)) == birth
    finally:
        worker.register_death()


def test_queue_keys_are_rqs(redis_client: Any, queue_name: str) -> None:
    from graflow.distributed import rqapi
    from graflow.distributed.rqapi import layout
    from graflow.worker.runner import register_queues

    queue = rq_queue(redis_client, queue_name)
    register_queues(redis_client, [queue])
    assert queue_name in [q.name for q in rqapi.Queue.all(connection=redis_client)]
    job = enqueue(redis_client, queue_name, "record", f"{queue_name}:out", job_id=f"{queue_name}-q")
    assert redis_client.lpop(queue.key) == job.id.encode()  # queue/distributed.py's LPOP
    assert rqapi.Job.key_for(job.id) == job.key == layout.JOB_PREFIX + job.id  # then deleted
    assert rqapi.Job.dependents_key_for(job.id) == job.dependents_key
    assert queue.redis_queues_keys == layout.QUEUES_SET


# ----------------------------------------------------------- rq info's view


def rq_view(out: str) -> None:
    """Job function: what ``rq info`` and rq-dashboard read about this running job."""
    from rq import Worker, get_current_job

    job = get_current_job()
    assert job is not None
    conn = job.connection
    workers = {w.name: w for w in Worker.all(connection=conn)}
    worker = workers.get(job.worker_name or "")
    fetched = type(job).fetch(job.id, connection=conn, serializer=job.serializer)
    view = {
        "listed": worker is not None,
        "state": worker.get_state() if worker else None,
        "current_job": worker.get_current_job_id() if worker else None,
        "status": fetched.get_status(),
        "in_started_registry": job.id in job.started_job_registry.get_job_ids(),
        "executions": len(fetched.get_executions()),
    }
    conn.set(out, json.dumps(view).replace(job.id, "<job>"))


@pytest.fixture
def keep_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("fork", [False, True], ids=["take", "fork+prepare"])
def test_rq_info_sees_a_lean_job_as_rq_would(
    redis_client: Any, queue_name: str, keep_signals: None, fork: bool
) -> None:
    """While a job runs, rq's own readers (``Worker.all``, the worker's current job, the
    job's status, the started registry) see the same through graflow's lean start as
    through rq's own."""
    from graflow.distributed import rqapi
    from graflow.worker.rq_worker import GraflowWorker

    seen = {}
    for kind in ("rq", "graflow"):
        queue = f"{queue_name}-{kind}"
        rq_queue(redis_client, queue).enqueue_call(
            f"{__name__}.rq_view", args=[f"{queue}:view"], result_ttl=0, timeout=-1, job_id=f"{queue}-j"
        )
        worker: Any
        if kind == "rq":
            worker = rqapi.SimpleWorker([queue], name=f"{queue}-w", connection=redis_client,
                                        serializer=rqapi.JSONSerializer)  # fmt: skip
        else:
            worker = GraflowWorker([queue], name=f"{queue}-w", connection=redis_client, heartbeat=10.0, fork=fork)
        worker.work(burst=True, logging_level="WARNING")
        seen[kind] = json.loads(redis_client.get(f"{queue}:view"))
    assert seen["graflow"] == seen["rq"]
    assert seen["rq"] == {"listed": True, "state": "busy", "current_job": "<job>", "status": "started",
                          "in_started_registry": True, "executions": 1}  # fmt: skip


def test_dispatch_costs_one_round_trip_per_batch(redis_client: Any, queue_name: str) -> None:
    """Handing activations to rq is one pipeline: no transaction of rq's per job."""
    from graflow.distributed import dispatch
    from graflow.wire import TaskSpec

    def calls() -> dict[str, int]:
        return {k: v["calls"] for k, v in redis_client.info("commandstats").items()}

    specs = [TaskSpec(session_id="0" * 32, task_id=f"t{i}", graph_hash="h", spec_id=f"{i:032x}",
                      queue=queue_name, key_prefix=queue_name) for i in range(3)]  # fmt: skip
    dispatch.rq_queue(redis_client, queue_name)  # the cached Queue, as a worker has it
    before = calls()
    ids = dispatch.enqueue(redis_client, specs)
    after = calls()
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert len(ids) == 3 and redis_client.llen(f"rq:queue:{queue_name}") == 3
    assert "cmdstat_multi" not in grew and "cmdstat_exec" not in grew, grew
