"""The cadence of a worker process's heartbeats: a thread in-process, a precise timer with ``--fork``.

Every ``heartbeat/3`` seconds (1 s by default) a beat checks whether the runs of running
attempts ended (cancel) and, every ``WORKER_KEY_BEAT``, refreshes rq's worker key. Leases
are not its job: the supervisor renews them from its own process (``graflow.worker.leases``),
so a task that holds this process's GIL cannot lose its lease. (A ``GraflowWorker`` run
without a supervisor renews its own lease from here.) In-process, the job occupies the
main thread, so a daemon thread beats. With ``--fork``, rq's parent loop waits for the
horse under a SIGALRM timeout of ``job_monitoring_interval`` and beats each time it fires;
rq arms it with ``signal.alarm``, whole seconds only.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from graflow.distributed.rqapi import UnixSignalDeathPenalty

if TYPE_CHECKING:
    from graflow.worker.rq_worker import GraflowWorker

log = logging.getLogger("graflow.worker")


class ItimerDeathPenalty(UnixSignalDeathPenalty):
    """rq's SIGALRM timeout with sub-second precision (``setitimer`` instead of ``alarm``).

    rq's monitor loop arms it with ``job_monitoring_interval``; graflow's interval is
    ``heartbeat/3`` (3.33 s by default), which ``signal.alarm`` would truncate. A
    timeout of zero or less (``job_timeout=-1``) arms nothing: the job may run forever.
    """

    def setup_death_penalty(self) -> None:
        signal.signal(signal.SIGALRM, self.handle_death_penalty)
        if self._timeout is not None and self._timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, float(self._timeout))

    def cancel_death_penalty(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


class HeartbeatThread(threading.Thread):
    """Daemon thread: ``worker.beat()`` every ``heartbeat/3`` s while the worker lives."""

    def __init__(self, worker: GraflowWorker) -> None:
        super().__init__(name=f"graflow-heartbeat-{worker.name}", daemon=True)
        self.worker = worker
        self._stopped = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stopped.wait(self.worker.refresh_interval):
            try:
                self.worker.beat()
                if self._failing:
                    log.warning("worker %s: heartbeats are reaching Redis again", self.worker.name)
                self._failing = False
            except Exception as exc:  # Redis hiccup: keep trying, log once per outage
                if not self._failing:
                    log.warning("worker %s: heartbeat failed: %s", self.worker.name, exc)
                self._failing = True

    def stop(self) -> None:
        self._stopped.set()
        if threading.current_thread() is not self:
            self.join(timeout=5)


__all__ = ["HeartbeatThread", "ItimerDeathPenalty"]
