"""A ``GraflowWorker``'s leases and heartbeats (see docs/failover.md).

A supervised worker publishes the lease of the job it runs for its supervisor to renew
(``graflow.worker.leases``); its own heartbeat only runs the stop checks of running
attempts and refreshes rq's view of it. Without a supervisor, the heartbeat thread runs
the lease pass itself.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any, cast

from graflow import keys
from graflow.distributed.rqapi import Job, compat, layout
from graflow.distributed.rqapi.layout import Execution
from graflow.worker import attempt_watch, bookkeeping, leases
from graflow.worker.heartbeat import HeartbeatThread
from graflow.worker.rq_dequeue import DequeuingWorker

if TYPE_CHECKING:
    from graflow.worker.rq_worker import GraflowWorker

log = logging.getLogger("graflow.worker.rq_worker")

#: Seconds between heartbeats of rq's worker key (and the job's execution TTLs). Liveness
#: is the lease's job; this only keeps rq's view (``rq info``, dashboards) current.
WORKER_KEY_BEAT = 10.0


class LeasingWorker(DequeuingWorker):
    """Leases and heartbeats of a ``GraflowWorker`` (which builds on it)."""

    lease_seconds: float
    key_prefix: str
    max_redeliveries: int
    fork: bool
    _lease_active: bool
    _last_tick: float
    _key_beat_at: float
    _reaper: Any
    _ticker: HeartbeatThread | None

    def on_tick(self) -> None:
        """Runs at start-up and about every ``heartbeat/3`` s in a worker without a
        supervisor: its own lease pass (renewal, then the failover reaper). A supervised
        worker leaves both to its supervisor (``graflow.worker.supervisor``)."""
        if leases.installed() is not None:
            return
        self.own_reaper().run_once(self.own_lease_members(), [self.name])

    def own_reaper(self) -> Any:
        from graflow.worker.failover import Reaper

        if self._reaper is None:
            self._reaper = Reaper(self.connection, self.queue_names(), heartbeat=self.lease_seconds,
                                  max_redeliveries=self.max_redeliveries, name=self.name,
                                  prefix=self.key_prefix)  # fmt: skip
        return self._reaper

    def own_lease_members(self) -> list[str]:
        execution, job = compat.current_execution(self), self.current_job
        if self._lease_active and execution is not None and job is not None and bookkeeping.is_graflow_id(job.id):
            return [execution.composite_key]
        return []

    @property
    def refresh_interval(self) -> float:
        """Seconds between lease refreshes: a third of the lease."""
        return self.lease_seconds / 3.0

    # ---------------------------------------------------------------- leases
    @property
    def bookkeeping_ttl(self) -> int:
        """TTL of rq's bookkeeping keys while a job runs (the execution, the worker key).

        Refreshed every ``WORKER_KEY_BEAT`` s; the margin keeps them readable through a
        task that holds the GIL for a minute or two (liveness is the lease's job, not theirs).
        """
        return math.ceil(self.lease_seconds) + 120

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.bookkeeping_ttl

    @property
    def leases_key(self) -> str:
        return keys.leases(self.key_prefix)

    def rq_lease_score(self) -> float:
        """rq's started-registry score for a job that is not graflow's: rq's own clock rule."""
        return time.time() + self.lease_seconds

    def _write_rq_lease(self, pipeline: Any, job: Job, execution: Execution) -> None:
        # XX never creates anything: a refresh racing with the job's clean-up cannot
        # resurrect a finished entry.
        pipeline.zadd(job.started_job_registry.key, {execution.composite_key: self.rq_lease_score()}, xx=True)

    def _publish_lease(self, member: str | None) -> None:
        slot = leases.installed()
        if slot is not None:
            slot.publish(member)

    def beat(self) -> None:
        """One heartbeat, every ``heartbeat/3`` s: the stop checks of running attempts
        (cancel), the lease of a job that is not graflow's, and every ``WORKER_KEY_BEAT``
        rq's worker key and the execution TTLs. Nothing at all when idle in between."""
        job, execution = self.current_job, compat.current_execution(self)
        moment = time.monotonic()
        key_due = moment - self._key_beat_at >= WORKER_KEY_BEAT
        running = (job, execution) if self._lease_active and job is not None and execution is not None else None
        with self.connection.pipeline(transaction=False) as pipeline:
            if key_due:
                self.heartbeat(pipeline=pipeline)
            if running is not None:
                run_job, run_execution = running
                if key_due:
                    ttl = self.get_heartbeat_ttl(run_job)
                    pipeline.expire(run_execution.key, ttl)
                    pipeline.expire(layout.executions_key(run_job.id), ttl + 60)
                if not bookkeeping.is_graflow_id(run_job.id):
                    self._write_rq_lease(pipeline, run_job, run_execution)
            # Has the run of a running attempt ended (cancel)? Then stop that attempt.
            horse_job = job if self.fork and self.horse_pid and self._lease_active else None
            checks = attempt_watch.StopChecks(pipeline, horse_job)
            results = pipeline.execute() if len(pipeline) else []
        checks.apply(results, self.kill_horse)
        if key_due:
            self._key_beat_at = moment
            if results and results[0] == 1:  # the worker hash had expired: write it again
                self.connection.hset(self.key, mapping={**self.serialize(), "state": self._state})
        self._tick(force=True)

    def maintain_heartbeats(self, job: Job, execution: Execution | None = None) -> None:
        """rq's parent-side loop (forked mode) calls this every ``heartbeat/3`` s (rq 3
        passes the execution; the worker still holds it, ``beat`` reads it there)."""
        self.beat()

    def heartbeat(self, timeout: float | None = None, pipeline: Any = None) -> None:
        if pipeline is None and timeout is None and self._ticker is not None:
            # rq's loop beats up to three times per job, two round trips each; the
            # heartbeat thread already keeps the worker key alive.
            return
        # rq passes ``job_monitoring_interval + 60`` (a float here); EXPIRE needs an int.
        super().heartbeat(math.ceil(timeout) if timeout else None, pipeline=pipeline)
        if self.fork and pipeline is None and not self.is_horse:
            self._tick()

    def _tick(self, force: bool = False) -> None:
        moment = time.monotonic()
        if force or moment - self._last_tick >= self.refresh_interval:
            self._last_tick = moment
            try:
                self.on_tick()
            except Exception:
                log.exception("worker %s: on_tick failed", self.name)

    def start_heartbeat_thread(self) -> None:
        if self._ticker is None and not self.fork:
            self._ticker = HeartbeatThread(cast("GraflowWorker", self))
            self._ticker.start()

    def stop_heartbeat_thread(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop()


__all__ = ["WORKER_KEY_BEAT", "LeasingWorker"]
