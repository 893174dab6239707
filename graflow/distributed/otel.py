"""OpenTelemetry for pooled runs, when the process has it (``graflow[otel]``).

Tracing is on in a process only when a real ``TracerProvider`` is set (an SDK's, by code,
``--import`` or ``opentelemetry-instrument``); otherwise ``tracer_provider`` answers "off"
for the price of a dict lookup. Nothing here imports opentelemetry before it is on, so
graflow runs without it and never loads it on its own account.

One run is one trace. The run's ``trace_id`` stays its session id (the API's rule); the
OTel trace is:

* the producer's current trace, when ``submit`` runs inside a span (the run joins the
  caller's trace; the session's ``traceparent`` names it);
* else the run's own, from its ``trace_id``: the session id itself when it is 32 hex
  digits (a default uuid4 session id), else a hash of it (``otel_trace_id``).

In the second case the producer's span needs a parent carrying that trace id, and the
SDK takes a new trace's id only from its IdGenerator; so the parent is a *virtual root*:
a remote, sampled span context whose span id is derived from the trace id and which is
never exported. Workers use the same virtual root when the session has no
``traceparent`` (a producer without tracing), so the run is still one trace.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_HEX32 = re.compile(r"[0-9a-f]{32}")


def tracer_provider() -> Any | None:
    """This process's configured ``TracerProvider``, or None.

    Setting a provider (by code, ``--import`` or ``opentelemetry-instrument``) imports
    ``opentelemetry.trace``; until something has, tracing is off, and asking costs a dict
    lookup, not the 20 ms import of the API (which may not even be installed)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def tracer(provider: Any) -> Any:
    from graflow.version import package_version

    return provider.get_tracer("graflow", package_version())


def otel_trace_id(trace_id: str) -> int:
    """The 128-bit OTel trace id of a run's ``trace_id``: the value of 32 lowercase hex
    digits as they are, else the first 16 bytes of its blake2b hash (never 0)."""
    if _HEX32.fullmatch(trace_id) and int(trace_id, 16):
        return int(trace_id, 16)
    digest = hashlib.blake2b(trace_id.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


def virtual_root(trace_id: int) -> Any:
    """A context whose parent is the run's virtual root span (see the module docstring)."""
    from opentelemetry import trace

    digest = hashlib.blake2b(b"graflow.run:" + trace_id.to_bytes(16, "big"), digest_size=8).digest()
    root = trace.SpanContext(
        trace_id, int.from_bytes(digest, "big") or 1, is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )  # fmt: skip
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


@lru_cache(maxsize=256)
def parent_context(traceparent: str, trace_id: str) -> Any:
    """The parent of a worker's attempt span: the run's ``traceparent``, else its virtual root.
    Cached: every attempt of a run has the same (contexts are immutable)."""
    if traceparent:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        from opentelemetry import trace

        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return virtual_root(otel_trace_id(trace_id))


def trace_of(traceparent: str, trace_id: str) -> str:
    """The OTel trace id (32 hex) a run is in: its ``traceparent``'s, else its own."""
    parts = traceparent.split("-") if traceparent else []
    if len(parts) == 4 and _HEX32.fullmatch(parts[1]):
        return parts[1]
    return format(otel_trace_id(trace_id), "032x")


@dataclass(frozen=True)
class Traced:
    """The producer span's OTel trace id and the ``traceparent`` the session keeps (both ""
    when tracing is off)."""

    trace_id: str = ""
    traceparent: str = ""


@contextmanager
def producer_span(
    action: str, workflow: str, session_id: str, queue: str, *, trace_id: str | None = None
) -> Iterator[Traced]:
    """Span ``graflow.<action> <workflow>`` (kind PRODUCER) around writing a run.

    ``trace_id`` None (submit): the run joins the current span's trace, else gets its own
    from ``session_id``. Given (resume): the run keeps that trace; a current span is linked.
    """
    provider = tracer_provider()
    if provider is None:
        yield Traced()
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    current = trace.get_current_span().get_span_context()
    links = []
    if trace_id is None and current.is_valid:
        parent = None  # the current context
    else:
        parent = virtual_root(otel_trace_id(trace_id or session_id))
        if current.is_valid:
            links.append(trace.Link(current))
    attributes = {"graflow.session_id": session_id, "graflow.workflow": workflow}
    if queue:
        attributes["graflow.queue"] = queue
    with tracer(provider).start_as_current_span(
        f"graflow.{action} {workflow}", context=parent, kind=trace.SpanKind.PRODUCER,
        attributes=attributes, links=links,
    ) as span:  # fmt: skip
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
        yield Traced(format(span.get_span_context().trace_id, "032x"), carrier.get("traceparent", ""))


__all__ = ["Traced", "otel_trace_id", "parent_context", "producer_span", "trace_of", "tracer", "tracer_provider", "virtual_root"]
