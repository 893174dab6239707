"""When the supervisor restarts a dead worker process, and when it gives up (a crash loop).

A task that kills its process (``os.kill(os.getpid(), 9)``, a segfaulting C extension,
the OOM killer) must cost one process, not the pool: the supervisor restarts the slot
after a back-off (``restart_backoff`` doubling up to ``restart_backoff_max``; back to
the start once the slot finished a job or stayed up for ``crash_loop_window``). It gives
up only on a crash loop it can name: one slot died ``crash_loop_deaths`` times within
``crash_loop_window`` seconds without finishing a job in between. A poison task does not
make one (it is failed after ``max_redeliveries`` deaths, which the default of 5 exceeds);
a worker that cannot start (an import that crashes, a broken host) does, in seconds.

Settings (flag, then variable, then default): ``--restart-backoff`` /
``GRAFLOW_RESTART_BACKOFF`` (0.5 s), ``--restart-backoff-max`` /
``GRAFLOW_RESTART_BACKOFF_MAX`` (30 s), ``--crash-loop-deaths`` /
``GRAFLOW_CRASH_LOOP_DEATHS`` (5), ``--crash-loop-window`` / ``GRAFLOW_CRASH_LOOP_WINDOW``
(60 s).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from graflow.defaults import (
    DEFAULT_CRASH_LOOP_DEATHS,
    DEFAULT_CRASH_LOOP_WINDOW,
    DEFAULT_RESTART_BACKOFF,
    DEFAULT_RESTART_BACKOFF_MAX,
)


@dataclass(frozen=True)
class RestartPolicy:
    """The numbers of the restart policy (see the module docstring), checked by
    ``graflow.settings.Settings``."""

    backoff: float = DEFAULT_RESTART_BACKOFF
    backoff_max: float = DEFAULT_RESTART_BACKOFF_MAX
    deaths: int = DEFAULT_CRASH_LOOP_DEATHS
    window: float = DEFAULT_CRASH_LOOP_WINDOW


@dataclass
class SlotHistory:
    """One slot's recent deaths and its next back-off (monotonic seconds)."""

    policy: RestartPolicy
    started_at: float = 0.0
    deaths: deque[float] = field(default_factory=deque)
    next_backoff: float = -1.0

    def started(self, moment: float | None = None) -> None:
        self.started_at = time.monotonic() if moment is None else moment

    def died(self, finished_jobs: int, moment: float | None = None) -> float | None:
        """Record a death; the back-off before the restart, or None for a crash loop.

        A finished job, or an uptime of a whole window, ends the streak: the deaths
        before it are forgotten and the back-off starts again from the beginning.
        """
        now = time.monotonic() if moment is None else moment
        if finished_jobs > 0 or now - self.started_at >= self.policy.window:
            self.deaths.clear()
            self.next_backoff = -1.0
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.policy.window:
            self.deaths.popleft()
        if len(self.deaths) >= self.policy.deaths:
            return None
        if self.next_backoff < 0:
            self.next_backoff = self.policy.backoff
        delay = self.next_backoff
        self.next_backoff = min(max(delay * 2, self.policy.backoff), self.policy.backoff_max)
        return delay


__all__ = [
    "DEFAULT_CRASH_LOOP_DEATHS",
    "DEFAULT_CRASH_LOOP_WINDOW",
    "DEFAULT_RESTART_BACKOFF",
    "DEFAULT_RESTART_BACKOFF_MAX",
    "RestartPolicy",
    "SlotHistory",
]
