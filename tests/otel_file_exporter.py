"""Worker set-up for the tracing tests: ``graflow worker --import tests.otel_file_exporter``.

Installs an OpenTelemetry SDK ``TracerProvider`` that writes every ended span, as one JSON
line, to the file named by ``GRAFLOW_TEST_SPANS_FILE`` (each process of the pool appends
to it; one ``write`` per line with ``O_APPEND``, so lines of several processes never mix).
A ``SimpleSpanProcessor`` exports when the span ends: the file is complete once the run is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

ENV = "GRAFLOW_TEST_SPANS_FILE"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "start": span.start_time,
        "end": span.end_time,
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for span in spans:
                os.write(fd, (json.dumps(span_record(span)) + "\n").encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


def read_spans(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


if os.environ.get(ENV):
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ[ENV])))
    trace.set_tracer_provider(_provider)
