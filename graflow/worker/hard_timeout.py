"""Ending an attempt that ran past its timeout and could not be stopped in its process.

``graflow.core.timeout`` stops a timed-out attempt from inside its process. Code that
holds the GIL and never returns to the interpreter (a C call that does not release it,
a catastrophic regex) leaves the in-process watchdog no chance to run. The supervisor
is another process, with a GIL of its own, so it does the killing:

* **Shared memory per slot.** Before forking a worker process the supervisor makes one
  ``RawArray('d', 4)`` per slot: ``[deadline, timeout, pid, killed]``. The worker
  installs a deadline sink (``install``) that writes the ``time.monotonic()`` deadline
  of its main-thread attempt there, with its timeout and ``os.getpid()``; CLOCK_MONOTONIC
  is system-wide on Linux, so the supervisor can compare it. A ``--fork`` work horse
  inherits the mapping and the sink: the pid written is the horse's.
* **Kill.** The supervisor looks every second (``check``). An attempt still running
  ``GRACE`` seconds past its deadline (the in-process stop had that long) is SIGKILLed:
  the process that runs it, if it is still the worker process or a direct child of it
  (a horse) and the deadline is still the one seen (not a stale or reused pid).
* **A timeout, not a lost worker.** The ``killed`` cell holds the timeout. In-process,
  the worker process died: the supervisor hands its job back marked ``timed_out`` and
  restarts it at once, outside the crash-loop count. With ``--fork`` the worker process
  sees its horse die and reads the mark (``take_killed``). The marked activation fails
  at once with ``TaskTimeoutError`` on the next worker, through the task's retry policy
  (``failover.redeliver(timed_out=...)``, ``AttemptGuard(expired=True)``).

Limits: attempts in group-member threads publish no deadline (only main-thread
attempts run alone in their process, so only they can be killed without taking others
down); there the attempt ends when the C call returns. The lease is not at risk meanwhile: the
supervisor renews it (``graflow.worker.leases``), not a thread of the stuck process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from graflow.core.timeout import set_deadline_sink

#: Seconds past its deadline the in-process stop gets before the supervisor kills.
GRACE = 5.0

_DEADLINE, _TIMEOUT, _PID, _KILLED = range(4)

#: This worker process's slot (None outside a supervised worker).
_slot: Any = None


def new_slot(ctx: Any) -> Any:
    """One slot's shared memory, made in the supervisor before it forks (``ctx``: the
    fork multiprocessing context)."""
    return ctx.RawArray("d", 4)


def clear(slot: Any) -> None:
    for i in range(4):
        slot[i] = 0.0


def install(slot: Any) -> None:
    """In a worker process: publish main-thread attempt deadlines to ``slot``."""
    global _slot
    _slot = slot
    set_deadline_sink(_publish)


def _publish(deadline: float, timeout: float) -> None:
    slot = _slot
    if slot is None:
        return
    if deadline > 0:
        slot[_PID] = float(os.getpid())
        slot[_TIMEOUT] = timeout
    slot[_DEADLINE] = deadline  # last: the supervisor reads it first


def take_killed() -> float | None:
    """In a ``--fork`` worker process whose horse died: the timeout it was killed for
    (once), else None. Clears the dead horse's deadline too."""
    slot = _slot
    if slot is None:
        return None
    killed = slot[_KILLED]
    slot[_KILLED] = 0.0
    slot[_DEADLINE] = 0.0
    return killed if killed > 0 else None


@dataclass(frozen=True)
class Kill:
    """An attempt the supervisor killed: the process, the timeout it ran past."""

    pid: int
    timeout: float


def check(slot: Any, child_pid: int, grace: float = GRACE) -> Kill | None:
    """In the supervisor: SIGKILL the process that runs ``slot``'s attempt if it is more
    than ``grace`` s past its deadline; what was killed, or None."""
    deadline = slot[_DEADLINE]
    if deadline <= 0 or time.monotonic() <= deadline + grace:
        return None
    pid, timeout = int(slot[_PID]), slot[_TIMEOUT]
    if pid <= 0 or not (pid == child_pid or _parent_of(pid) == child_pid):
        return None  # stale: not this worker's process (any more)
    if slot[_DEADLINE] != deadline:
        return None  # the attempt ended (or another began) meanwhile
    slot[_KILLED] = timeout if timeout > 0 else deadline  # > 0: the mark
    slot[_DEADLINE] = 0.0
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return Kill(pid, timeout)


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (Linux ``/proc``), or None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


__all__ = ["GRACE", "Kill", "check", "clear", "install", "new_slot", "take_killed"]
