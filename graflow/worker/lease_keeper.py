"""The supervisor's side of leases: one pass every ``heartbeat/3`` seconds.

Each pass renews the leases the live worker processes publish (``leases.LeaseSlot``),
marks them alive, and reaps what expired anywhere in the pool (``failover.Reaper``). The
supervisor runs no task, so nothing a task does (hold the GIL, stop its process, spin)
delays it; the lease runs out only when the whole worker (supervisor included) is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from graflow.worker.leases import LeaseSlot

log = logging.getLogger("graflow.worker")


class LeaseKeeper:
    """Runs the lease passes of one supervisor; ``due_in`` tells its loop when to wake."""

    def __init__(self, connect: Callable[[], Any], *, queues: list[str], prefix: str, heartbeat: float,
                 max_redeliveries: int, name: str) -> None:  # fmt: skip
        self._connect = connect
        self.queues = queues
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.max_redeliveries = max_redeliveries
        self.name = name
        self.interval = heartbeat / 3.0
        self._next = 0.0
        self._reaper: Any = None
        self._failing = False

    def due_in(self) -> float:
        """Seconds until the next pass is due (0 when it is)."""
        return max(0.0, self._next - time.monotonic())

    def maybe_pass(self, held: list[tuple[str, LeaseSlot]]) -> None:
        """A pass if one is due. ``held``: (worker name, lease slot) of each live worker process."""
        moment = time.monotonic()
        if moment < self._next:
            return
        self._next = moment + self.interval
        members = [m for m in (slot.read() for _, slot in held) if m]
        try:
            if self._reaper is None:
                from graflow.worker.failover import Reaper

                self._reaper = Reaper(self._connect(), self.queues, heartbeat=self.heartbeat,
                                      max_redeliveries=self.max_redeliveries, name=self.name,
                                      prefix=self.prefix)  # fmt: skip
            self._reaper.run_once(members, [name for name, _ in held])
        except Exception as exc:  # Redis away: every lease waits with ours (see leases: outage guard)
            if not self._failing:
                log.warning("supervisor: lease pass failed (%s); retrying every %.1f s", exc, self.interval)
            self._failing = True
            return
        if self._failing:
            log.warning("supervisor: lease passes reach Redis again")
        self._failing = False


__all__ = ["LeaseKeeper"]
