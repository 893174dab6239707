"""How a ``GraflowWorker`` starts and stops: signals and rq's scheduler process.

* **Signals.** First SIGTERM/SIGINT: finish the running job, exit 0 (rq's warm
  shutdown). Second: stop at once, hand the job back, exit 1. A signal that arrived
  while the worker was starting (``pending_signals``) is honoured once rq's handlers
  are in place.
* **Scheduler.** rq's scheduler process moves delayed retries; graflow's variant
  (``GraflowScheduler``) survives Redis outages, and stopping it never blocks inside a
  signal handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import timedelta
from types import FrameType

from graflow.distributed.rqapi import WorkerStatus
from graflow.distributed.rqapi.layout import (
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    now,
)
from graflow.worker.rq_leases import LeasingWorker
from graflow.worker.scheduler import GraflowScheduler


class ColdShutdown(SystemExit):
    """Raised in the worker by the second signal; rq lets ``SystemExit`` through its loop."""

    def __init__(self) -> None:
        super().__init__(1)


class LifecycleWorker(LeasingWorker):
    """The start-up and shut-down half of ``GraflowWorker`` (which sets these fields)."""

    #: Signals that arrived before rq installed its handlers (set by the runner).
    pending_signals: list[int]
    _cold_shutdown: bool
    _in_job_function: bool
    fork: bool

    def _install_signal_handlers(self) -> None:
        # work() calls this after forking rq's scheduler process: starting the
        # heartbeat thread here keeps that fork free of a second thread.
        self.start_heartbeat_thread()
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        if self.pending_signals:  # a signal arrived while starting: honour it now
            self.log.info("Worker %s: stop requested during start-up", self.name)
            self._shutdown_requested_date = now() - timedelta(seconds=2)
            self._stop_requested = True
            signal.signal(signal.SIGINT, self.request_force_stop)
            signal.signal(signal.SIGTERM, self.request_force_stop)
            if len(self.pending_signals) > 1:
                self._cold_shutdown = True

    def unsubscribe(self) -> None:
        """rq's, with the wait for rq's pub/sub thread bounded. Once unsubscribed, that thread
        waits up to rq's ``sleep_time`` (60 s) for a subscription before it looks at its stop
        flag, and from redis-py 8.2 ``PubSubWorkerThread.stop()`` joins it with no limit: a
        warm stop or a ``--burst`` exit would hang that long. The thread is a daemon and
        only waits on an event then, so closing the connection under it is safe."""
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        self.pubsub.unsubscribe()
        try:
            thread.stop(timeout=1.0)  # redis-py >= 8.2 joins in stop()
        except TypeError:
            thread.stop()  # earlier redis-py: stop() only clears the flag
        thread.join(timeout=1)
        self.pubsub.close()

    def _shutdown(self) -> None:
        # rq counts the worker busy only once the execution is prepared; a job already
        # dequeued (``current_job``) must also finish rather than be dropped.
        if self.current_job is not None and self.get_state() != WorkerStatus.BUSY:
            self._stop_requested = True
            self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]
            self.stop_scheduler()
            return
        super()._shutdown()  # type: ignore[no-untyped-call]

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Second signal: stop at once; the running job is handed back, exit code 1."""
        requested = self._shutdown_requested_date
        if requested is not None and now() - requested < timedelta(seconds=1):
            # rq's guard: a pool or a terminal may deliver one Ctrl+C twice.
            return
        if not self._cold_shutdown:
            self.log.warning("Worker %s: cold shut down", self.name)
        self._cold_shutdown = True
        if self.fork:
            # The monitor loop sees the horse die and calls handle_job_failure,
            # which hands the job back outside this signal handler.
            self.kill_horse()
            return
        if self._in_job_function:
            self._in_job_function = False
            raise ColdShutdown()

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """rq's ``_start_scheduler`` with ``GraflowScheduler`` instead of ``RQScheduler``,
        named after this worker (rq: a random name). A worker process restarted under its
        name then holds at once the scheduler lock its dead predecessor could not release
        (Redis was down when it died, say): rq would leave delayed retries unmoved until the
        lock expired, a minute later."""
        self.scheduler = GraflowScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
            name=f"{self.name}/scheduler",
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                self.scheduler.release_locks()  # type: ignore[no-untyped-call]
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def stop_scheduler(self) -> None:
        """Signal rq's scheduler process to stop, without rq's ``join``.

        rq joins here, inside the SIGTERM handler: in-process, that would freeze the
        running job for up to a scheduler interval. ``teardown`` joins instead.
        """
        process = self.scheduler._process if self.scheduler else None
        if process is not None and process.pid:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)

    def teardown(self) -> None:
        self.stop_heartbeat_thread()
        super().teardown()  # type: ignore[no-untyped-call]
        process = self.scheduler._process if self.scheduler else None
        if process is not None and not self.is_horse and not self._cold_shutdown:
            process.join(5)  # it has been told to stop; a cold stop does not wait


__all__ = ["ColdShutdown", "LifecycleWorker"]
