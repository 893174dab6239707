"""OpenTelemetry tracing of pooled runs: producer span, one span per attempt, one trace per run.

Workers run with ``--import tests.otel_file_exporter`` (their spans: JSON lines in a file);
this process has an SDK provider with an in-memory exporter for the producer's spans.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trace_flows as flows
from conftest import DistPool, child_env, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_file_exporter import ENV, read_spans

from graflow.distributed import submit
from graflow.distributed.otel import otel_trace_id
from graflow.distributed.session import SessionStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ATTRIBUTES = {"graflow.session_id", "graflow.workflow", "graflow.task_id", "graflow.attempt", "graflow.worker",
              "graflow.queue", "graflow.spec_id", "graflow.outcome"}  # fmt: skip


@pytest.fixture(scope="module")
def producer_spans() -> Iterator[InMemorySpanExporter]:
    """This process's provider, for this module only: the OTel API lets a process set its
    provider once, so the teardown restores the unset globals (as OTel's own test helper
    ``reset_trace_globals`` does) and later modules run untraced."""
    from opentelemetry.util._once import Once

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("otel") / "spans.jsonl"


@pytest.fixture(scope="module")
def traced_pool(redis_url: str, spans_file: Path) -> Iterator[DistPool]:
    pool = DistPool(redis_url, 2, **{ENV: str(spans_file)})
    pool.args = ["--import", "tests.otel_file_exporter"]
    with pool as p:
        yield p


def _attempt_spans(path: Path, session_id: str, count: int) -> list[dict[str, Any]]:
    """The attempt spans of one run, once ``count`` of them are in the file (a span is
    exported when its attempt ends, after the run's last step was written)."""

    def ready() -> list[dict[str, Any]] | None:
        mine = [s for s in read_spans(str(path)) if s["attributes"].get("graflow.session_id") == session_id]
        return mine if len(mine) >= count else None

    return sorted(wait_until(ready, timeout=20, what=f"{count} attempt spans"),
                  key=lambda s: (s["start"], s["attributes"]["graflow.attempt"]))  # fmt: skip


def _by_task(spans: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(s["attributes"]["graflow.task_id"], s["attributes"].get("graflow.phase", "run"),
             s["attributes"]["graflow.attempt"]): s for s in spans}  # fmt: skip


def test_attempt_spans_join_the_producers_trace(
    producer_spans: InMemorySpanExporter, traced_pool: DistPool, spans_file: Path, client: Any
) -> None:
    tracer = trace.get_tracer("graflow-tests")
    with tracer.start_as_current_span("caller") as caller:
        run = submit(flows.fan_out_in(), traced_pool.redis_url, queue=traced_pool.queue,
                     key_prefix=traced_pool.prefix)  # fmt: skip
    assert run.wait(timeout=30) == "done"
    trace_hex = format(caller.get_span_context().trace_id, "032x")

    (submitted,) = [s for s in producer_spans.get_finished_spans() if s.name == "graflow.submit traced"]
    assert submitted.kind is trace.SpanKind.PRODUCER
    assert submitted.parent is not None and submitted.parent.span_id == caller.get_span_context().span_id
    assert submitted.attributes is not None and submitted.attributes["graflow.session_id"] == run.session_id
    submit_span_id = format(submitted.context.span_id, "016x")
    meta = SessionStore(client, traced_pool.prefix, run.session_id).meta()
    assert meta["trace_id"] == run.session_id  # the run's trace_id stays its session id
    assert meta["traceparent"].split("-")[:3] == ["00", trace_hex, submit_span_id]

    # source, the group (start and finish), steady, flaky twice, sink: 7 attempts.
    spans = _attempt_spans(spans_file, run.session_id, 7)
    assert len(spans) == 7
    for s in spans:
        assert s["trace_id"] == trace_hex and s["parent_span_id"] == submit_span_id
        assert s["kind"] == "CONSUMER" and s["name"] == f"graflow.task {s['attributes']['graflow.task_id']}"
        assert set(s["attributes"]) >= ATTRIBUTES, s
        assert s["attributes"]["graflow.workflow"] == "traced"
        assert s["attributes"]["graflow.queue"] == traced_pool.queue
        assert s["attributes"]["graflow.worker"].startswith(traced_pool.prefix)
    by_task = _by_task(spans)
    first, second = by_task["flaky", "run", 1], by_task["flaky", "run", 2]
    assert first["attributes"]["graflow.outcome"] == "retried"
    assert first["status"] == "ERROR" and first["attributes"]["error.type"] == "Flaky"
    assert second["attributes"]["graflow.outcome"] == "completed" and second["status"] == "UNSET"
    assert first["attributes"]["graflow.spec_id"] == second["attributes"]["graflow.spec_id"]  # one activation
    group = [k for k in by_task if k[1] == "finish"]
    assert len(group) == 1
    for key in [("source", "run", 1), ("steady", "run", 1), ("sink", "run", 1), (group[0][0], "run", 1)]:
        assert by_task[key]["attributes"]["graflow.outcome"] == "completed", key
    assert len({s["span_id"] for s in spans}) == 7


def test_run_without_a_current_span_is_one_trace_named_by_its_trace_id(
    producer_spans: InMemorySpanExporter, traced_pool: DistPool, spans_file: Path, client: Any
) -> None:
    run = submit(flows.chain(), traced_pool.redis_url, queue=traced_pool.queue, key_prefix=traced_pool.prefix)
    assert run.wait(timeout=30) == 2
    meta = SessionStore(client, traced_pool.prefix, run.session_id).meta()
    assert meta["trace_id"] == run.session_id  # a uuid4 hex session id is the trace id
    spans = _attempt_spans(spans_file, run.session_id, 2)
    assert {s["trace_id"] for s in spans} == {meta["trace_id"]}
    (submitted,) = [s for s in producer_spans.get_finished_spans() if s.name == "graflow.submit traced_chain"
                    and s.attributes is not None and s.attributes["graflow.session_id"] == run.session_id]  # fmt: skip
    assert format(submitted.context.trace_id, "032x") == meta["trace_id"]
    assert {s["parent_span_id"] for s in spans} == {format(submitted.context.span_id, "016x")}


def test_a_chosen_session_id_gets_a_derived_trace_id(
    producer_spans: InMemorySpanExporter, traced_pool: DistPool, spans_file: Path, client: Any
) -> None:
    run = submit(flows.chain(), traced_pool.redis_url, queue=traced_pool.queue, key_prefix=traced_pool.prefix,
                 session_id="nightly-report-7")  # fmt: skip
    assert run.wait(timeout=30) == 2
    meta = SessionStore(client, traced_pool.prefix, run.session_id).meta()
    assert meta["trace_id"] == "nightly-report-7"
    spans = _attempt_spans(spans_file, run.session_id, 2)
    assert {s["trace_id"] for s in spans} == {format(otel_trace_id("nightly-report-7"), "032x")}


def test_resume_stays_in_the_runs_trace_and_links_the_caller(
    producer_spans: InMemorySpanExporter, traced_pool: DistPool, spans_file: Path, client: Any
) -> None:
    import dist_flows

    from graflow.distributed import WorkflowRun

    ck = f"{traced_pool.redis_url.rsplit('/', 1)[0]}/0/{traced_pool.prefix}/ck/traced"
    run = submit(dist_flows.checkpoint_at("first"), traced_pool.redis_url, queue=traced_pool.queue,
                 key_prefix=traced_pool.prefix, initial_channel={"ck": ck})  # fmt: skip
    assert run.wait(timeout=30) == "last-done"
    trace_hex = SessionStore(client, traced_pool.prefix, run.session_id).meta()["traceparent"].split("-")[1]
    with trace.get_tracer("graflow-tests").start_as_current_span("operator") as operator:
        again = WorkflowRun.resume(ck, traced_pool.redis_url)
    assert again.wait(timeout=30) == "last-done"
    (resumed,) = [s for s in producer_spans.get_finished_spans() if s.name == "graflow.resume checkpoint_at"]
    assert format(resumed.context.trace_id, "032x") == trace_hex
    assert [link.context.span_id for link in resumed.links] == [operator.get_span_context().span_id]
    meta = SessionStore(client, traced_pool.prefix, run.session_id).meta()
    assert meta["trace_id"] == run.session_id
    assert meta["traceparent"].split("-")[2] == format(resumed.context.span_id, "016x")
    # first, last; then last again after the resume (its attempt span is the resume span's child).
    spans = _attempt_spans(spans_file, run.session_id, 3)
    assert {s["trace_id"] for s in spans} == {trace_hex}
    assert spans[-1]["attributes"]["graflow.task_id"] == "last"
    assert spans[-1]["parent_span_id"] == format(resumed.context.span_id, "016x")


def test_workers_trace_a_run_whose_producer_does_not(traced_pool: DistPool, spans_file: Path) -> None:
    """A producer without tracing (a subprocess, no provider): the attempts still share one
    trace, the one named by the run's trace id (the session id)."""
    code = ("import sys, trace_flows as flows\n"
            "run = flows.chain().submit(sys.argv[1], queue=sys.argv[2], key_prefix=sys.argv[2])\n"
            "print(run.session_id)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, traced_pool.redis_url, traced_pool.prefix],
                         env=child_env(), capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    session_id = out.stdout.strip()
    spans = _attempt_spans(spans_file, session_id, 2)
    assert {s["trace_id"] for s in spans} == {session_id}
    assert len({s["parent_span_id"] for s in spans}) == 1  # the run's (virtual) root


def test_no_provider_no_observer() -> None:
    """Without a configured provider a worker registers nothing (the attempt path is the
    untraced one); with one it registers exactly one observer."""
    code = (
        "import sys\n"
        "from graflow.worker import observe, tracing\n"
        "if sys.argv[1] == 'sdk':\n"
        "    from opentelemetry import trace\n"
        "    from opentelemetry.sdk.trace import TracerProvider\n"
        "    trace.set_tracer_provider(TracerProvider())\n"
        "on = tracing.install(); tracing.install()\n"
        "print(on, len(observe.observers()))\n"
    )
    for mode, expected in (("none", "False 0"), ("sdk", "True 1")):
        out = subprocess.run([sys.executable, "-c", code, mode], env=child_env(), capture_output=True,
                             text=True, timeout=30, check=True)  # fmt: skip
        assert out.stdout.strip() == expected, out.stderr


def test_untraced_pool_runs_and_exports_nothing(make_pool: Any, tmp_path: Path) -> None:
    """Workers with the variable set but no ``--import``: no provider, no spans, same results."""
    path = tmp_path / "spans.jsonl"
    pool = make_pool(1, **{ENV: str(path)})
    run = submit(flows.fan_out_in(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
    assert run.wait(timeout=30) == "done"
    assert read_spans(str(path)) == []



def _log_with_spans(path: str, session_id: str, count: int) -> str | None:
    log = Path(path).read_text(errors="replace")
    return log if log.count(f'"graflow.session_id": "{session_id}"') >= count else None


@pytest.mark.parametrize(("fork", "delay_ms"), [(False, "100"), (True, "600000")])
def test_example_worker_setup_exports_attempt_spans(redis_url: str, fork: bool, delay_ms: str) -> None:
    """``examples/otel_worker_setup.py`` (a ``BatchSpanProcessor`` and the console exporter)
    on a real worker. With ``--fork`` the work horse leaves with ``os._exit`` and the batch
    delay is 10 minutes: its spans are in the log only because graflow flushes them at the
    end of the attempt."""
    from workerpool import ROOT, Pool

    args = ["--import", "otel_worker_setup", *(["--fork"] if fork else [])]
    with Pool(redis_url, 1, extra_paths=[str(ROOT / "examples")], args=args, OTEL_BSP_SCHEDULE_DELAY=delay_ms) as pool:
        run = submit(flows.chain(), pool.redis_url, queue=pool.queue, key_prefix=pool.prefix)
        assert run.wait(timeout=30) == 2
        log = wait_until(lambda: _log_with_spans(pool.logs[0], run.session_id, 2), timeout=20,
                         what="both attempt spans in the worker's log")  # fmt: skip
    for task_id in ("first", "second"):
        assert f'"name": "graflow.task {task_id}"' in log


def test_flush_exports_batched_spans_before_os_exit(tmp_path: Path) -> None:
    """A supervisor's worker process ends with ``os._exit`` (no atexit export): ``run_worker``
    calls ``tracing.flush``, which exports what a ``BatchSpanProcessor`` still holds."""
    path = tmp_path / "spans.jsonl"
    code = (
        "import os, sys\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import BatchSpanProcessor\n"
        "from tests.otel_file_exporter import JsonLinesExporter\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(sys.argv[1]), schedule_delay_millis=600000))\n"
        "trace.set_tracer_provider(provider)\n"
        "from graflow.distributed.attempt_info import AttemptInfo\n"
        "from graflow.distributed.spec import TaskSpec\n"
        "from graflow.worker import observe, tracing\n"
        "assert tracing.install()\n"
        "info = AttemptInfo(TaskSpec(session_id='s1', task_id='t', graph_hash='h', spec_id='x'), 'w1')\n"
        "with observe.observed(info):\n"
        "    info.started({'workflow_name': 'wf'})\n"
        "    info.outcome = 'completed'\n"
        "tracing.flush()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env=child_env(), check=True, timeout=30)
    (span,) = read_spans(str(path))
    assert span["name"] == "graflow.task t" and span["attributes"]["graflow.outcome"] == "completed"
    assert span["trace_id"] == format(otel_trace_id("s1"), "032x")  # no traceparent: the run's own trace
