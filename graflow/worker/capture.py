"""Per-attempt capture of what a task writes: stdout, stderr and ``logging``, for ``graflow logs``.

``install(budget)`` registers one ``OutputCapture`` observer per worker process
(``GraflowWorker.__init__``: ``graflow worker`` processes, forked work horses and the
in-process ``TaskWorker`` all go through it). While an attempt runs (``begin`` to ``end``):

* ``sys.stdout``/``sys.stderr`` are tees: the text still goes to the worker's own output
  exactly as before ("the worker's own log stays as it is"), and a copy goes to the
  attempt's bounded buffer (``capture_buffer``). The tees are put in at the first attempt,
  after rq and the worker set up their log handlers, so those keep writing to the real
  streams and the machinery's log lines are never captured.
* a handler on the root logger copies records of any logger but graflow's and rq's own,
  formatted ``LEVEL name: message``. It sees what the logging configuration lets through
  (the worker leaves the root at WARNING).

A write belongs to the attempt whose thread made it; a write from another thread (one the
task started) to the only attempt running in the process, which is the case in every
``graflow worker`` process. With several at once (``TaskWorker`` threads) such a write is
not captured (it still reaches the worker's output).

The buffer's head is flushed every ``LOG_FLUSH_INTERVAL`` s by one background thread, the
rest at ``end`` with the end entry, each flush one round trip
(``graflow.distributed.run_output``). An attempt that wrote nothing costs no round trip and
no thread wake-up. A flush never fails the attempt: errors are logged at DEBUG and the
output dropped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
import weakref
from typing import Any, TextIO

from graflow.defaults import LOG_FLUSH_INTERVAL
from graflow.distributed.attempt_info import AttemptInfo
from graflow.exceptions import GraflowWarning
from graflow.worker import observe
from graflow.worker.capture_buffer import OutputBuffer

logger = logging.getLogger("graflow.worker.capture")

#: The format of a captured ``logging`` record.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: Loggers of the machinery, whose records are never captured (with their children).
EXCLUDED_LOGGERS = ("graflow", "rq")

_local = threading.local()


def _quiet() -> bool:
    """Are this thread's writes the machinery's (a flush, whose redis-py logging must not be
    captured; a graflow warning being shown)?"""
    return bool(getattr(_local, "quiet", False))


class AttemptCapture:
    """The output of one running attempt and where it goes."""

    def __init__(self, info: AttemptInfo, budget: int, client: Any) -> None:
        wire = info.wire
        self.prefix, self.session_id = wire.key_prefix, wire.session_id
        self.labels = (wire.task_id, wire.spec_id, str(wire.attempt), info.worker)
        self.buffer = OutputBuffer(budget)
        self.client = client
        self.lock = threading.Lock()  # the buffer
        self.send_lock = threading.Lock()  # the order of flushes (the end entry comes last)
        self.closed = False

    def add(self, stream: str, text: str) -> bool:
        with self.lock:
            return self.buffer.add(stream, text)

    def flush(self, final: AttemptInfo | None = None) -> None:
        """Send what is due: the new head (live), or everything and the end entry (``final``)."""
        from graflow.distributed.run_output import append_output

        with self.send_lock:
            if self.closed:
                return
            with self.lock:
                if final is not None:
                    self.closed = True
                    if not self.buffer.wrote:
                        return
                    entries = self.buffer.take_all()
                    end: dict[str, Any] | None = {"outcome": final.outcome, "dropped": self.buffer.dropped}
                else:
                    entries, end = self.buffer.take_live(), None
            if not entries and end is None:
                return
            was, _local.quiet = _quiet(), True
            try:
                append_output(self.client, self.prefix, self.session_id, self.labels, entries, end)
            except Exception:
                logger.debug("output of %s attempt %s dropped", self.labels[0], self.labels[2], exc_info=True)
            finally:
                _local.quiet = was


class _Tee:
    """A text stream that writes through to ``inner`` and copies to the running attempt."""

    def __init__(self, inner: TextIO, name: str, hub: _Hub) -> None:
        self._inner = inner
        self._name = name
        self._hub = hub

    def write(self, text: str) -> int:
        n = self._inner.write(text)
        if self._hub.active:
            self._hub.capture(self._name, text)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Handler(logging.Handler):
    """Copies the task's ``logging`` records (not graflow's or rq's) to the running attempt."""

    def __init__(self, hub: _Hub) -> None:
        super().__init__()
        self.hub = hub
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.active:
            return
        name = record.name
        for own in EXCLUDED_LOGGERS:
            if name == own or name.startswith(own + "."):
                return
        try:
            self.hub.capture("log", self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Hub:
    """The process-wide part: the tees, the handler, the running attempts, the flusher."""

    def __init__(self) -> None:
        self.active: dict[int, AttemptCapture] = {}
        self.lock = threading.Lock()  # changes of ``active``
        self.handler = _Handler(self)
        self.cond = threading.Condition()
        self.due = False
        self.flusher: threading.Thread | None = None

    def enter(self, cap: AttemptCapture) -> None:
        """``cap`` runs on this thread. ``active`` is replaced, never changed in place: a
        write on another thread reads one dict or the other, without a lock."""
        with self.lock:
            self.active = {**self.active, threading.get_ident(): cap}

    def leave(self, cap: AttemptCapture) -> None:
        with self.lock:
            self.active = {t: c for t, c in self.active.items() if c is not cap}

    def capture(self, stream: str, text: str) -> None:
        """Add a write to its attempt's buffer; never raises."""
        try:
            active = self.active
            if _quiet():
                return
            target = active.get(threading.get_ident())
            if target is None:
                if len(active) != 1:
                    return
                target = next(iter(active.values()))
            if isinstance(text, str) and target.add(stream, text) and not self.due:
                self._wake()
        except Exception:  # capturing never breaks a write
            pass

    def ensure_streams(self) -> None:
        """Put the tees and the handler in (again, if something replaced them)."""
        if not isinstance(sys.stdout, _Tee) and sys.stdout is not None:
            sys.stdout = _Tee(sys.stdout, "stdout", self)
        if not isinstance(sys.stderr, _Tee) and sys.stderr is not None:
            sys.stderr = _Tee(sys.stderr, "stderr", self)
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        if not getattr(warnings.showwarning, "_graflow_quiet", False):
            warnings.showwarning = _quiet_for_graflow(warnings.showwarning)

    def _wake(self) -> None:
        with self.cond:
            self.due = True
            if self.flusher is None or not self.flusher.is_alive():
                self.flusher = threading.Thread(target=self._flush_loop, name="graflow-output", daemon=True)
                self.flusher.start()
            self.cond.notify()

    def _flush_loop(self) -> None:
        """Sleeps until an attempt writes, then flushes every ``LOG_FLUSH_INTERVAL`` s while
        there is something new."""
        _local.quiet = True  # its own redis-py logging is never captured
        while True:
            with self.cond:
                while not self.due:
                    self.cond.wait()
            time.sleep(LOG_FLUSH_INTERVAL)
            with self.cond:
                self.due = False
            for cap in list(self.active.values()):
                cap.flush()

    def after_fork(self) -> None:
        """A forked child: no flusher thread, no attempts of the parent."""
        self.active = {}
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.due = False
        self.flusher = None


def _quiet_for_graflow(show: Any) -> Any:
    """``warnings.showwarning`` that does not capture graflow's own warnings (the worker's
    log shows them as before); a task's warnings are captured as stderr."""

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, GraflowWarning):
            show(message, category, *args, **kwargs)
            return
        was, _local.quiet = _quiet(), True
        try:
            show(message, category, *args, **kwargs)
        finally:
            _local.quiet = was

    showwarning._graflow_quiet = True  # type: ignore[attr-defined]
    return showwarning


_hub = _Hub()
os.register_at_fork(after_in_child=_hub.after_fork)


def _client_for(connection: Any) -> Any:
    """A pooled client of its own next to the job's connection (the worker's single hot
    connection, which the flusher thread must not share), made once per connection."""
    from graflow.redisconn import client_cache, client_from

    cache = client_cache(connection, "output")
    client = cache.get("client")
    if client is None:
        # Decoding replies: a client of its own even for a binary ``connection``.
        client = cache["client"] = client_from(redis_client=connection, decode=True)
        if client is connection:  # pragma: no cover - rq's connections are binary
            client = cache["client"] = client_from(redis_client=connection, decode=False)
        weakref.finalize(connection, client.close)  # closed with the connection it goes with
    return client


class OutputCapture:
    """The attempt observer: capture from ``begin`` to ``end`` (see the module docstring)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._running: dict[int, AttemptCapture] = {}

    def begin(self, info: AttemptInfo) -> None:
        if self.budget <= 0:
            return
        from graflow.distributed.rqapi import get_current_job

        job = get_current_job()
        if job is None:
            return
        cap = AttemptCapture(info, self.budget, _client_for(job.connection))
        _hub.ensure_streams()
        self._running[id(info)] = cap
        _hub.enter(cap)

    def started(self, info: AttemptInfo) -> None:
        return None

    def end(self, info: AttemptInfo, error: BaseException | None) -> None:
        cap = self._running.pop(id(info), None)
        if cap is None:
            return
        _hub.leave(cap)
        cap.flush(final=info)


_observer: list[OutputCapture] = []


def install(budget: int) -> None:
    """Capture in this process with ``budget`` bytes per attempt (0: none). Called by every
    ``GraflowWorker``; the last call's budget holds."""
    if not _observer:
        _observer.append(OutputCapture(budget))
    _observer[0].budget = budget
    if budget > 0:
        observe.register(_observer[0])
    else:
        observe.unregister(_observer[0])


__all__ = ["EXCLUDED_LOGGERS", "LOG_FORMAT", "AttemptCapture", "OutputCapture", "install"]
