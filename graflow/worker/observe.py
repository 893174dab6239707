"""Observers of the attempts a worker process runs: log capture, metrics, tracing.

Each concern is one ``AttemptObserver`` in a module of its own, installed once per worker
process (``install``); ``graflow.worker.jobs`` wraps every attempt in ``observed``. An
observer that fails is logged and ignored: observing never changes what an attempt does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from graflow.distributed.attempt_info import AttemptInfo

logger = logging.getLogger("graflow.worker")


class AttemptObserver(Protocol):
    """Told when an attempt begins (before the session step), when the session accepted
    it (``info.started``: the task body runs next) and when it ended (``info.outcome``)."""

    def begin(self, info: AttemptInfo) -> None: ...

    def started(self, info: AttemptInfo) -> None: ...

    def end(self, info: AttemptInfo, error: BaseException | None) -> None: ...


_observers: list[AttemptObserver] = []


def register(observer: AttemptObserver) -> None:
    if observer not in _observers:
        _observers.append(observer)


def unregister(observer: AttemptObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def observers() -> list[AttemptObserver]:
    return list(_observers)


def _call(what: str, fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.warning("attempt observer failed at %s", what, exc_info=True)


@contextmanager
def observed(info: AttemptInfo) -> Iterator[AttemptInfo]:
    """Run the block as attempt ``info``: observers begin in order and end in reverse."""
    active = list(_observers)
    if not active:
        yield info
        return
    for obs in active:
        _call("begin", obs.begin, info)
    info.on_started.extend(obs.started for obs in active)
    error: BaseException | None = None
    try:
        yield info
    except BaseException as exc:
        error = exc
        if info.outcome == "error" and not info.error_type:
            info.error_type = type(exc).__name__
        raise
    finally:
        for obs in reversed(active):
            _call("end", obs.end, info, error)


__all__ = ["AttemptObserver", "observed", "observers", "register", "unregister"]
