"""OpenTelemetry spans of the attempts a worker runs (``graflow[otel]``): an ``AttemptObserver``.

``install`` decides once per process, when its first worker is built (after ``--import``
modules ran) or its first job runs (a plain ``rq worker``): with a configured
``TracerProvider`` (``graflow.distributed.otel.tracer_provider``) it registers the
observer, else nothing, and an attempt costs nothing extra.

Each attempt the session's START step accepted gets one span ``graflow.task <task_id>``
(kind CONSUMER), child of the run's submit span (the session's ``traceparent``; without
one, of the run's virtual root, so the run is still one trace). It starts when the job
began (so it covers the START step), is current while the task body runs (spans the
task makes nest under it) and ends with the attempt's outcome. A delivery START refuses
(the run is over, the activation done or owned by another attempt) runs no task code and
gets no span.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from graflow.distributed import otel
from graflow.distributed.attempt_info import AttemptInfo
from graflow.worker import observe

logger = logging.getLogger("graflow.worker")

#: Outcomes whose span has status ERROR (the attempt failed; the run may go on).
ERROR_OUTCOMES = frozenset({"retried", "failed", "redelivered", "error"})

_decided = False
_observer: TracingObserver | None = None


class TracingObserver:
    """One span per started attempt; spans of attempts running at once (``TaskWorker``
    threads) are kept apart by their ``AttemptInfo``."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = otel.tracer(provider)
        #: The process that installed it: an attempt run elsewhere is in a ``--fork``
        #: work horse, which exits with ``os._exit``: its spans are flushed at its end.
        self.pid = os.getpid()
        self._open: dict[int, tuple[Any, Any]] = {}

    def begin(self, info: AttemptInfo) -> None:
        pass

    def started(self, info: AttemptInfo) -> None:
        from opentelemetry import context, trace

        wire = info.wire
        attributes: dict[str, Any] = {
            "graflow.session_id": wire.session_id, "graflow.workflow": info.workflow,
            "graflow.task_id": wire.task_id, "graflow.attempt": wire.attempt, "graflow.worker": info.worker,
            "graflow.queue": info.queue or wire.queue, "graflow.spec_id": wire.spec_id,
        }  # fmt: skip
        if wire.phase != "run":
            attributes["graflow.phase"] = wire.phase
        if wire.redeliveries:
            attributes["graflow.redeliveries"] = wire.redeliveries
        parent = otel.parent_context(info.traceparent, wire.trace_id or wire.session_id)
        span = self.tracer.start_span(
            f"graflow.task {wire.task_id}", context=parent, kind=trace.SpanKind.CONSUMER,
            attributes=attributes, start_time=int(info.begun * 1e9),
        )  # fmt: skip
        token = context.attach(trace.set_span_in_context(span))
        self._open[id(info)] = (span, token)

    def end(self, info: AttemptInfo, error: BaseException | None) -> None:
        entry = self._open.pop(id(info), None)
        if entry is None:
            return  # never started: no span
        from opentelemetry import context, trace

        span, token = entry
        try:
            context.detach(token)
        finally:
            span.set_attribute("graflow.outcome", info.outcome)
            if info.outcome in ERROR_OUTCOMES:
                if info.error_type:
                    span.set_attribute("error.type", info.error_type)
                span.set_status(trace.Status(trace.StatusCode.ERROR, info.error_type or info.outcome))
            if error is not None:
                span.record_exception(error)
            span.end()
            if os.getpid() != self.pid:
                flush()


def install() -> bool:
    """Register the tracing observer if this process has a configured ``TracerProvider``
    (decided on the first call; later calls return the same answer). True: tracing on."""
    global _decided, _observer
    if not _decided:
        _decided = True
        provider = otel.tracer_provider()
        if provider is not None:
            _observer = TracingObserver(provider)
            observe.register(_observer)
            logger.info("OpenTelemetry tracing on: a span per task attempt")
    return _observer is not None


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (a worker process leaving with ``os._exit`` runs no
    atexit hook, so its provider is never shut down)."""
    if _observer is None:
        return
    force_flush = getattr(_observer.provider, "force_flush", None)
    if force_flush is None:
        return
    try:
        force_flush(timeout_millis)
    except Exception:
        logger.warning("could not flush OpenTelemetry spans", exc_info=True)


__all__ = ["ERROR_OUTCOMES", "TracingObserver", "flush", "install"]
