"""The Prometheus metrics a worker command's processes count (``graflow[metrics]``).

Off unless the command serves ``/metrics`` (``--metrics-port``): ``metrics_server`` then
points prometheus_client's multiprocess mode at a private directory and calls ``enable``
in the supervisor before it forks, so every worker process inherits the metrics, the
attempt observer and the checkpoint hook, and writes its counts to files of its own pid;
the supervisor adds them up at scrape time. The reaper and the supervisor's hand-backs
count in the supervisor itself. Every function here is a no-op while metrics are off,
and prometheus_client is imported only by ``enable``: graflow runs without it.

Cost per attempt: two counter increments, one histogram observation and a gauge up and
down, on label children cached per (workflow, task, outcome): no Redis, no lock shared
between processes. See docs/metrics.md for the names and labels.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from graflow.core.cycle import base_task_id
from graflow.distributed.attempt_info import AttemptInfo

log = logging.getLogger("graflow.worker")

#: Seconds: attempt durations, from a no-op task to a long one.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0, 3600.0)  # fmt: skip
#: Bytes of one checkpoint (its three artefacts).
CHECKPOINT_BUCKETS = (1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
                      16777216.0, 67108864.0)  # fmt: skip
#: Why a lost attempt went back to its queue (label ``cause`` of the redelivery counter).
CAUSES = ("lease_expired", "worker_died", "timed_out", "horse_lost", "handed_back", "rq_cleanup")


class _Metrics:
    """The metric objects of this process and their label children, cached."""

    def __init__(self, task_label: bool) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.task_label = task_label
        task = ("workflow", "task") if task_label else ("workflow",)
        self.started = Counter("graflow_task_attempts_started", "Attempts the session accepted "
                               "(the task body ran).", task, registry=None)  # fmt: skip
        self.attempts = Counter("graflow_task_attempts", "Attempts that ended, by outcome: completed, "
                                "retried, failed, redelivered, superseded, skipped, error.",
                                (*task, "outcome"), registry=None)  # fmt: skip
        self.duration = Histogram("graflow_task_attempt_duration_seconds", "Seconds from the session's "
                                  "start of an attempt to its end.", (*task, "outcome"),
                                  buckets=DURATION_BUCKETS, registry=None)  # fmt: skip
        self.running = Gauge("graflow_worker_attempts_running", "Attempts this worker command's "
                             "processes run now.", registry=None, multiprocess_mode="livesum")  # fmt: skip
        self.redeliveries = Counter("graflow_task_redeliveries", "Lost attempts this worker command "
                                    "put back on their queue, by cause.", (*task, "cause"),
                                    registry=None)  # fmt: skip
        self.leases = Counter("graflow_leases_expired", "Leases that ran out (a lost worker's job) "
                              "and that this worker command's reaper redelivered.", registry=None)  # fmt: skip
        self.checkpoints = Counter("graflow_checkpoint_writes", "Checkpoints written for pooled runs.",
                                   ("workflow",), registry=None)  # fmt: skip
        self.checkpoint_bytes = Histogram("graflow_checkpoint_bytes", "Size of each checkpoint written "
                                          "(its three artefacts).", ("workflow",),
                                          buckets=CHECKPOINT_BUCKETS, registry=None)  # fmt: skip
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, workflow: str, task_id: str) -> tuple[str, ...]:
        return (workflow, base_task_id(task_id)) if self.task_label else (workflow,)

    def child(self, metric: Any, key: tuple[str, ...]) -> Any:
        """``metric.labels(*key)``, built once (prometheus_client checks labels on each call)."""
        cache_key = (metric._name, *key)
        found = self._children.get(cache_key)
        if found is None:
            found = self._children[cache_key] = metric.labels(*key)
        return found


class MetricsObserver:
    """The attempt observer (``graflow.worker.observe``) that counts attempts."""

    def __init__(self, metrics: _Metrics) -> None:
        self.m = metrics

    def begin(self, info: AttemptInfo) -> None:
        return None

    def started(self, info: AttemptInfo) -> None:
        m = self.m
        m.child(m.started, m.labels(info.workflow, info.task_id)).inc()
        m.running.inc()

    def end(self, info: AttemptInfo, error: BaseException | None) -> None:
        m = self.m
        key = (*m.labels(info.workflow, info.task_id), info.outcome)
        m.child(m.attempts, key).inc()
        if info.started_at:
            m.running.dec()
            m.child(m.duration, key).observe(max(0.0, time.time() - info.started_at))


_state: list[_Metrics] = []


def enabled() -> bool:
    return bool(_state)


def enable(task_label: bool = True) -> None:
    """Create the metrics and register the observer and the checkpoint hook (once per
    process tree: forked worker processes inherit them). Needs prometheus_client, in
    multiprocess mode already (``metrics_server``)."""
    if _state:
        return
    from graflow.distributed.pool_checkpoint import on_written
    from graflow.worker.observe import register

    metrics = _Metrics(task_label)
    _state.append(metrics)
    register(MetricsObserver(metrics))
    on_written(checkpoint_written)


def checkpoint_written(workflow: str, nbytes: int) -> None:
    """A checkpoint of a pooled run was written by this process (``pool_checkpoint``)."""
    if not _state:
        return
    m = _state[0]
    m.child(m.checkpoints, (workflow,)).inc()
    m.child(m.checkpoint_bytes, (workflow,)).observe(float(nbytes))


def lease_expired() -> None:
    """The reaper redelivered the job of a lease that ran out (``failover.Reaper``)."""
    if _state:
        _state[0].leases.inc()


def redelivered(connection: Any, wire: Any, cause: str) -> None:
    """A lost attempt of ``wire`` went back to its queue. Reads the run's workflow name
    (one HGET, only with metrics on: redeliveries are rare)."""
    if not _state:
        return
    m = _state[0]
    workflow = ""
    try:
        from graflow.keys import SessionKeys

        raw = connection.hget(SessionKeys(wire.key_prefix, wire.session_id).meta, "workflow_name")
        workflow = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    except Exception:
        log.debug("metrics: no workflow name for session %s", wire.session_id, exc_info=True)
    m.child(m.redeliveries, (*m.labels(workflow, wire.task_id), cause)).inc()


__all__ = ["CAUSES", "MetricsObserver", "checkpoint_written", "enable", "enabled", "lease_expired",
           "redelivered"]  # fmt: skip
