"""Stopping an attempt from outside: task timeouts and runs that ended while a task ran.

Why one mechanism for both drivers: every attempt, in-process or on a worker, runs
through ``WorkflowEngine.attempt``; wrapping its handler call in an ``AttemptGuard``
covers ``wf.execute()``, in-process parallel-group members (on threads) and pooled jobs
(in the worker's main thread, or a ``--fork`` work horse's) alike.

How an attempt is stopped. One daemon watchdog thread per process keeps the deadlines
of the guarded attempts. When one passes (or ``stop()`` is called, e.g. by the worker's
heartbeat thread after a ``cancel()``), it raises a private ``BaseException`` carrier
*in the thread that runs the attempt*:

* **main thread**: a signal (``SIGUSR2``) whose handler raises the carrier, as rq's
  death penalty does with SIGALRM. A signal also ends blocking calls that return to
  the interpreter on ``EINTR`` (``time.sleep``, lock and socket waits), so a sleeping
  task stops at once. Used only while ``SIGUSR2`` has no other Python handler.
* **any other thread**: ``PyThreadState_SetAsyncExc``; the carrier is raised at the
  thread's next bytecode. Pure-Python loops stop within a switch interval, a blocking
  call (``time.sleep(30)`` in a group-member thread) only once it returns.

The carrier is a ``BaseException`` so that ``except Exception:`` in the task cannot
swallow it; while the attempt is still running it is sent again every ``RESEND``
seconds (a task that catches ``BaseException`` and carries on). At the attempt boundary
(``AttemptGuard.run``) it becomes an ordinary ``Exception``: ``TaskTimeoutError`` for a
timeout, ``GraflowWorkflowCanceledError`` for a run that ended, so it goes through the
task's retry policy like any error the task raised.

An attempt never succeeds late: one that returns after its deadline (it swallowed the
stop, or sat in C code) fails with ``TaskTimeoutError`` all the same.

Code that never returns to the interpreter while holding the GIL (a C call such as
``ctypes.PyDLL(None).sleep(30)``, a catastrophic regex) cannot be interrupted inside
the process: the watchdog is a Python thread and cannot even run. So the deadline of
a main-thread attempt is also published through ``set_deadline_sink`` (no I/O here: a
worker installs a sink that writes it to memory shared with its supervisor, see
``graflow.worker.hard_timeout``), and the supervisor, whose own GIL is free, SIGKILLs
the process that runs an attempt still going a grace period past its deadline; the
activation comes back marked ``timed_out`` and fails at once (``AttemptGuard(expired=
True)``) through the task's retry policy. Without a supervisor (``wf.execute()``), or
in a group-member thread, such an attempt ends with ``TaskTimeoutError`` only when
the C call returns.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module: getsignal without the enum cost
import ctypes
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from graflow.exceptions import ConfigError, GraflowWorkflowCanceledError, TaskTimeoutError

log = logging.getLogger("graflow.engine")

R = TypeVar("R")

#: Seconds between re-sends of the carrier to an attempt that has not stopped yet.
RESEND = 1.0
#: The signal that interrupts the main thread (rq uses SIGALRM for its own timeouts).
STOP_SIGNAL = signal.SIGUSR2

_default_timeout: float | None = None


class _Stop(BaseException):
    """Raised asynchronously into a guarded attempt; never seen outside ``AttemptGuard.run``."""


class _TimedOut(_Stop):
    """The attempt ran past its deadline."""


class _RunEnded(_Stop):
    """The attempt's run ended (canceled, failed, terminated) while it ran."""


def check_timeout(value: Any, what: str = "@task timeout") -> float | None:
    """``value`` as seconds (> 0), or None (no timeout); ``ConfigError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{what} must be a number of seconds, got {value!r}; pass e.g. timeout=30 or None"
        )
    seconds = float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(
            f"{what} must be more than 0 seconds, got {value!r}; pass a positive number or None"
        )
    return seconds


def set_default_timeout(seconds: float | None) -> None:
    """This process's timeout for pooled attempts of tasks without their own
    (``graflow worker --task-timeout``/``GRAFLOW_TASK_TIMEOUT``); None: no limit."""
    global _default_timeout
    _default_timeout = check_timeout(seconds, "--task-timeout/GRAFLOW_TASK_TIMEOUT")


def default_timeout() -> float | None:
    return _default_timeout


#: Told the deadline of this process's main-thread attempt: ``(monotonic deadline,
#: timeout seconds)``, ``(0.0, 0.0)`` when none runs. None: nobody listens.
DeadlineSink = Callable[[float, float], None]
_deadline_sink: DeadlineSink | None = None


def set_deadline_sink(sink: DeadlineSink | None) -> None:
    """Publish main-thread attempt deadlines to ``sink`` (a worker's supervisor kills an
    attempt the in-process stop could not end); forked children keep it."""
    global _deadline_sink
    _deadline_sink = sink


def _publish_main_deadline(guards: set[AttemptGuard]) -> None:
    """Tell the sink the earliest deadline of the armed main-thread attempts (or none).

    The earliest, not the last armed: an attempt may run a nested workflow whose own
    guarded attempts arm and disarm inside it."""
    sink = _deadline_sink
    if sink is None:
        return
    timed = [g for g in guards if g.main and g.deadline is not None]
    if not timed:
        sink(0.0, 0.0)
        return
    first = min(timed, key=lambda g: g.deadline or 0.0)
    sink(first.deadline or 0.0, first.timeout or 0.0)


class AttemptGuard:
    """One attempt that may be stopped: by its deadline, or by ``stop()`` from another thread.

    ``watch`` is what an outside observer needs to decide on a stop (on a worker, the
    session's key prefix and id, checked by the heartbeat thread). ``expired``: the
    attempt already timed out elsewhere (its process was killed for it, ``attempt`` is
    that attempt's number): ``run`` fails at once with ``TaskTimeoutError``, the body
    does not run again, and the failure goes through the task's retry policy.
    """

    __slots__ = (
        "armed", "attempt", "deadline", "expired", "fired", "main", "next_send", "reason",
        "task_id", "thread_id", "timeout", "via_signal", "watch",
    )  # fmt: skip

    def __init__(
        self, task_id: str, timeout: float | None, attempt: int | None = None, watch: Any = None,
        *, expired: bool = False,
    ) -> None:  # fmt: skip
        self.task_id = task_id
        self.expired = expired
        self.timeout = timeout
        self.attempt = attempt
        self.watch = watch
        self.thread_id = 0
        self.main = False
        self.via_signal = False
        self.deadline: float | None = None
        self.fired: type[_Stop] | None = None
        self.reason = ""
        self.armed = False
        self.next_send = math.inf

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Call ``fn(*args)`` under this guard; a stop becomes an ordinary exception here."""
        if self.expired:
            self.fired = _TimedOut
            raise self.error()
        _watchdog.arm(self)
        try:
            try:
                result = fn(*args)
            finally:
                self._disarm()
        except _Stop as stop:
            self._disarm()
            if self.fired is None:
                raise  # an enclosing attempt's stop (a workflow run inside a task)
            raise self.error() from stop
        if (
            self.fired is not _RunEnded
            and self.deadline is not None
            and time.monotonic() >= self.deadline
        ):
            # It ran past its deadline in code that held the GIL (the watchdog could not
            # run) or that swallowed the stop: an attempt longer than its timeout fails.
            self.fired = _TimedOut
            raise self.error()
        return result

    def error(self) -> Exception:
        """The exception the attempt fails with."""
        if self.fired is _RunEnded:
            return GraflowWorkflowCanceledError(
                f"the run ended ({self.reason}) while task {self.task_id!r} was running; its attempt was stopped",
                self.task_id,
            )
        return TaskTimeoutError(self.task_id, self.timeout or 0.0, self.attempt)

    def stop(self, reason: str) -> bool:
        """Stop the attempt now because its run ended (``reason``: the run's state)."""
        return _watchdog.fire(self, _RunEnded, reason)

    def _disarm(self) -> None:
        # The carrier may land while disarming (it was sent just before): retry until done.
        while self.armed:
            try:
                _watchdog.disarm(self)
            except _Stop:
                continue


def _set_async(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


_main_guards: list[AttemptGuard] = []


def _on_signal(signum: int, frame: Any) -> None:
    """``STOP_SIGNAL`` handler: raise the carrier of a stopped main-thread attempt, if any.

    Takes no lock (it runs between bytecodes of a thread that may hold one).
    """
    for guard in tuple(_main_guards):
        if guard.armed and guard.fired is not None:
            raise guard.fired()


def _own_signal() -> bool:
    """Install the stop handler unless someone else's handler is there (then: async exc)."""
    current = _signal.getsignal(STOP_SIGNAL)  # without signal.getsignal's slow enum lookup
    if current is _on_signal:
        return True
    if current in (signal.SIG_DFL, None):
        signal.signal(STOP_SIGNAL, _on_signal)
        return True
    return False


class _Watchdog:
    """The process's single timer thread for all guarded attempts."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.guards: set[AttemptGuard] = set()
        self.thread: threading.Thread | None = None
        #: When the watchdog wakes next: a later deadline needs no wake-up now.
        self.due = math.inf

    def arm(self, guard: AttemptGuard) -> None:
        guard.thread_id = threading.get_ident()
        guard.main = threading.current_thread() is threading.main_thread()
        guard.via_signal = guard.main and _own_signal()
        if guard.timeout is not None:
            guard.deadline = time.monotonic() + guard.timeout
        with self.cond:
            guard.armed = True
            self.guards.add(guard)
            if guard.main and guard.deadline is not None:
                _publish_main_deadline(self.guards)
            if guard.via_signal:
                _main_guards.append(guard)
            if guard.deadline is not None and guard.deadline < self.due:
                self._ensure_thread()
                self.cond.notify()

    def disarm(self, guard: AttemptGuard) -> None:
        with self.cond:
            if not guard.armed:
                return
            guard.armed = False
            self.guards.discard(guard)
            if guard.main and guard.deadline is not None:
                _publish_main_deadline(self.guards)
            if guard.via_signal:
                _main_guards.remove(guard)
            elif guard.fired is not None:
                _set_async(guard.thread_id, None)  # a carrier sent but not raised yet

    def fire(self, guard: AttemptGuard, kind: type[_Stop], reason: str = "") -> bool:
        with self.cond:
            if not guard.armed or guard.fired is not None:
                return False
            guard.fired, guard.reason = kind, reason
            self._send(guard, time.monotonic())
            self._ensure_thread()
            self.cond.notify()
            return True

    def active(self) -> list[AttemptGuard]:
        with self.cond:
            return list(self.guards)

    def _send(self, guard: AttemptGuard, now: float) -> None:
        guard.next_send = now + RESEND
        if guard.via_signal:
            signal.pthread_kill(guard.thread_id, STOP_SIGNAL)
        elif guard.fired is not None:
            _set_async(guard.thread_id, guard.fired)

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(
                target=self._loop, name="graflow-attempt-watchdog", daemon=True
            )
            self.thread.start()

    def _loop(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                due = math.inf
                for guard in self.guards:
                    if guard.fired is None and guard.deadline is not None and now >= guard.deadline:
                        guard.fired = _TimedOut
                        log.info(
                            "task %s ran longer than %g s; stopping it",
                            guard.task_id,
                            guard.timeout,
                        )
                        self._send(guard, now)
                    elif guard.fired is not None and now >= guard.next_send:
                        self._send(guard, now)
                    nxt = guard.next_send if guard.fired is not None else guard.deadline
                    if nxt is not None:
                        due = min(due, nxt)
                self.due = due
                self.cond.wait(None if due == math.inf else max(0.0, due - time.monotonic()))
                self.due = -math.inf  # awake: the loop looks at every guard anyway


_watchdog = _Watchdog()


def _after_fork() -> None:
    """A forked child (an rq work horse) has no watchdog thread and no attempts yet."""
    global _watchdog
    _watchdog = _Watchdog()
    _main_guards.clear()


os.register_at_fork(after_in_child=_after_fork)


def running_attempts() -> list[AttemptGuard]:
    """The guarded attempts running in this process now."""
    return _watchdog.active()


__all__ = [
    "AttemptGuard",
    "check_timeout",
    "default_timeout",
    "running_attempts",
    "set_deadline_sink",
    "set_default_timeout",
]
