"""One worker process: ``run_worker`` and its start-up steps (name take-over, queue
registration, signals caught while starting). ``graflow.worker.runner`` runs it in this
process or has a supervisor (``graflow.worker.supervisor``) run it in each child.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

from graflow.exceptions import RedisUnavailableError
from graflow.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_REDIS, CliError
from graflow.redisconn import wrap_connection_errors
from graflow.settings import use as use_settings
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

_FIX = "start Redis there or point --url/GRAFLOW_REDIS_URL at a running server (check host, port, password and TLS)"


def redis_error(
    settings: WorkerSettings, exc: RedisUnavailableError, waited: float | None = None
) -> CliError:
    """The one-line start-up error (exit 3); ``exc`` adds redis-py's reason."""
    what = "cannot reach Redis" if unreachable(exc) else exc.message.split(" at ", 1)[0]
    reasons = [str(exc.cause)] if exc.cause is not None else []
    if waited:
        reasons.append(f"retried for {waited:g} s")
    reason = f" ({'; '.join(reasons)})" if reasons else ""
    return CliError(f"{what} at {settings.display_url}{reason} — {_FIX}", EXIT_REDIS)


def unreachable(exc: RedisUnavailableError) -> bool:
    """Down or unreachable (worth retrying), as opposed to refused credentials."""
    return exc.message.startswith("cannot reach")


class PendingSignals(list[int]):
    """SIGTERM/SIGINT received before rq installed its handlers, as a signal handler.

    Like rq, a repeat within 1 s counts once (a terminal and a supervisor may both
    deliver one Ctrl+C), so only a real second signal makes the start-up stop cold.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last = float("-inf")

    def __call__(self, signum: int, _frame: Any) -> None:
        moment = time.monotonic()
        if moment - self._last >= 1.0:
            self.append(signum)
        self._last = moment

    def install(self) -> PendingSignals:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)
        return self


def record_signals() -> PendingSignals:
    """Catch SIGTERM/SIGINT until rq installs its handlers, so none is lost while starting."""
    return PendingSignals().install()


def run_worker(settings: WorkerSettings, name: str, pending: list[int] | None = None) -> int:
    """Run one ``GraflowWorker`` in this process until it stops; returns the exit code."""
    from graflow.core.timeout import set_default_timeout
    from graflow.worker.rq_worker import GraflowWorker

    pending = record_signals() if pending is None else pending
    set_default_timeout(settings.task_timeout)  # read by every pooled attempt (PoolEngine)
    use_settings(settings.settings)  # one redelivery limit, TTLs ... for every library call
    connection = settings.connect()
    worker: GraflowWorker | None = None
    try:
        with wrap_connection_errors(settings.url):
            worker = GraflowWorker(
                list(settings.queues),
                name=name,
                connection=connection,
                heartbeat=settings.heartbeat,
                fork=settings.fork,
                max_redeliveries=settings.max_redeliveries,
                key_prefix=settings.prefix,
            )
        worker.pending_signals = pending
        with wrap_connection_errors(settings.url):
            claim_worker_name(settings, name, connection, pending)
        register_queues(connection, worker.queues)
        log.info(
            "worker %s: %s, queues %s, heartbeat %.1f s, %s",
            name, settings.display_url, ",".join(settings.queues), settings.heartbeat,
            "forked work horses" if settings.fork else "in-process jobs",
        )  # fmt: skip
        try:
            worker.work(burst=settings.burst, logging_level=settings.log_level)
        except SystemExit:  # ColdShutdown (second signal), or rq's own cold stop
            return EXIT_FAILED
        if worker.cold_shutdown:
            return EXIT_FAILED
        if settings.burst or worker.stop_requested:
            return EXIT_OK
        log.error("worker %s: rq's loop quit unexpectedly (see the log above)", name)
        return EXIT_FAILED
    except RedisUnavailableError as exc:
        raise redis_error(settings, exc) from None
    finally:
        if worker is not None:
            worker.close_hot_connection()
        connection.close()
        from graflow.worker import tracing

        tracing.flush()  # a supervisor's child leaves with os._exit: no atexit export


def claim_worker_name(settings: WorkerSettings, name: str, connection: Any, pending: list[int]) -> None:
    """Free ``name`` for this worker before rq registers it: a dead worker's leftover
    registration (a restart under the same name: a supervisor's slot, ``--name``, or
    ``<hostname>-<pid>`` after a container restart) is taken over, its jobs handed back
    at once, instead of rq refusing the name until the old key expires."""
    from graflow.worker.leases import mark_alive
    from graflow.worker.takeover import claim_name

    claim_name(connection, name, queues=settings.queues, prefix=settings.prefix,
               lease_seconds=settings.heartbeat, max_redeliveries=settings.max_redeliveries,
               stopping=lambda: bool(pending))  # fmt: skip
    # Alive from now on: until the supervisor's first pass renews it, a worker looking at
    # the name must not take it for dead.
    mark_alive(connection, settings.prefix, name, settings.heartbeat)


def register_queues(connection: Any, queues: Iterable[Any]) -> None:
    """List the served queues in rq's queue registry (``rq:queues``).

    rq adds a queue there when a job is enqueued through ``Queue.enqueue``; graflow's
    dispatch writes its jobs in its own pipeline, so without this ``rq info`` and
    rq-dashboard (deploy/docker-compose.yml) would not list the pool's queues at all.
    """
    from graflow.distributed.rqapi import layout

    keys = [q.key for q in queues]
    if keys:
        connection.sadd(layout.QUEUES_SET, *keys)


__all__ = [
    "PendingSignals",
    "claim_worker_name",
    "record_signals",
    "redis_error",
    "register_queues",
    "run_worker",
    "unreachable",
]
