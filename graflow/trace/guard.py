"""A tracer that raises never fails a run: its error is logged, once per (tracer class, hook).

Tracing is an observer. The engine calls hooks inside ``try`` blocks (free in Python
3.11 while nothing raises) and hands what they raise to :func:`hook_failed`; paths
off the per-attempt hot path call a hook through :func:`emit`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("graflow.trace")

_reported: set[tuple[type, str]] = set()
_lock = threading.Lock()


def hook_failed(tracer: object, hook: str, exc: Exception) -> None:
    """Log ``exc`` from ``tracer.<hook>``: at WARNING the first time for its class, then at DEBUG."""
    cls = type(tracer)
    name = f"{cls.__module__}.{cls.__qualname__}.{hook}"
    with _lock:
        first = (cls, hook) not in _reported
        _reported.add((cls, hook))
    if first:
        log.warning(
            "tracer hook %s raised %s: %s; the run goes on without it — fix the tracer "
            "(later errors of this hook are logged at DEBUG)",
            name, type(exc).__name__, exc, exc_info=exc,
        )  # fmt: skip
    else:
        log.debug("tracer hook %s raised %s: %s", name, type(exc).__name__, exc)


def emit(hook: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call a bound tracer hook; what it raises is logged, never propagated."""
    try:
        hook(*args, **kwargs)
    except Exception as exc:
        hook_failed(getattr(hook, "__self__", hook), getattr(hook, "__name__", "hook"), exc)


__all__ = ["emit", "hook_failed"]
