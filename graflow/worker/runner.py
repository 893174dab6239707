"""Start-up and exit codes shared by ``graflow worker`` and ``python -m graflow.worker.main``.

Order matters and is the same for both entry points: logging (with password
redaction), the secret key (a bad key is a usage error, exit 2), ``--import`` modules
(handler registration must precede the first job), then Redis, retried for 10 s so a
pool started together with its Redis does not crash-loop (exit 3 after that). Then one
worker runs in this process, or a supervisor runs N of them.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any

from graflow.defaults import DEFAULT_WORKER_REDIS_WAIT
from graflow.exceptions import RedisUnavailableError
from graflow.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_REDIS, EXIT_USAGE, CliError
from graflow.redisconn import wrap_connection_errors
from graflow.settings import use as use_settings
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

#: Seconds to keep retrying Redis at start-up; ``GRAFLOW_WORKER_REDIS_WAIT`` overrides.
REDIS_WAIT = DEFAULT_WORKER_REDIS_WAIT
_FIX = "start Redis there or point --url/GRAFLOW_REDIS_URL at a running server (check host, port, password and TLS)"
_URL_PASSWORD = re.compile(r"((?:rediss?|unix)://[^:/@\s]*:)[^@\s]+@")


class RedactFilter(logging.Filter):
    """Masks Redis passwords in every record, whoever logs it (rq, redis-py, graflow)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        clean = _URL_PASSWORD.sub(r"\1***@", text)
        for secret in self.secrets:
            clean = clean.replace(secret, "***")
        if clean != text:
            record.msg, record.args = clean, None
        return True


def configure_logging(settings: WorkerSettings) -> None:
    """Our level on graflow's and rq's loggers; a password filter on every root handler."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact = RedactFilter([settings.password or ""])
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redact)
    for name in ("graflow", "rq"):
        logging.getLogger(name).setLevel(settings.log_level)


def check_secret_key() -> None:
    """Fail at start-up, not on the first job, when ``GRAFLOW_SECRET_KEY`` is unusable."""
    from graflow.codec import resolve_keys

    resolve_keys()  # ConfigError (exit 2) for a key under 16 bytes


def import_modules(names: Iterable[str]) -> None:
    """``--import``: load modules that register handlers before any job runs."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise CliError(
                f"cannot import module {name!r} given to --import: {type(exc).__name__}: {exc} — "
                "check the name and PYTHONPATH",
                EXIT_USAGE,
            ) from exc
        log.info("imported %s", name)


def redis_error(
    settings: WorkerSettings, exc: RedisUnavailableError, waited: float | None = None
) -> CliError:
    """The one-line start-up error (exit 3); ``exc`` adds redis-py's reason."""
    what = "cannot reach Redis" if _unreachable(exc) else exc.message.split(" at ", 1)[0]
    reasons = [str(exc.cause)] if exc.cause is not None else []
    if waited:
        reasons.append(f"retried for {waited:g} s")
    reason = f" ({'; '.join(reasons)})" if reasons else ""
    return CliError(f"{what} at {settings.display_url}{reason} — {_FIX}", EXIT_REDIS)


def _unreachable(exc: RedisUnavailableError) -> bool:
    """Down or unreachable (worth retrying), as opposed to refused credentials."""
    return exc.message.startswith("cannot reach")


def _ping_once(settings: WorkerSettings) -> None:
    client = settings.connect()
    try:
        with wrap_connection_errors(settings.url):
            client.ping()
    finally:
        client.close()


def ping(settings: WorkerSettings) -> None:
    """One PING; ``CliError`` (exit 3) when Redis does not answer. Used by ``--check``."""
    try:
        _ping_once(settings)
    except RedisUnavailableError as exc:
        raise redis_error(settings, exc) from None


def wait_for_redis(
    settings: WorkerSettings, timeout: float | None = None, pending: list[int] | None = None
) -> bool:
    """PING until Redis answers (True) or ``timeout`` (``GRAFLOW_WORKER_REDIS_WAIT``, 10 s)
    passes (``CliError``, exit 3).

    Wrong credentials fail at once; a stop signal while waiting returns False. A loop of
    its own rather than redis-py's ``Retry``: a stop signal ends the wait with a result
    (False) instead of an error, only an unreachable server (not refused credentials) is
    retried, and the last pause is cut to the deadline, none of which ``Retry`` expresses.
    """
    if timeout is None:
        timeout = settings.settings.worker_redis_wait
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            _ping_once(settings)
            return True
        except RedisUnavailableError as exc:
            if not _unreachable(exc):
                raise redis_error(settings, exc) from None
            if time.monotonic() >= deadline:
                raise redis_error(settings, exc, timeout) from None
        if pending:
            return False
        if not warned:
            # DEBUG: at the default level the only output on failure is the error line.
            log.debug("waiting up to %.0f s for Redis at %s", timeout, settings.display_url)
            warned = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


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
        connection.close()


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
    from rq.queue import Queue

    keys = [q.key for q in queues]
    if keys:
        connection.sadd(Queue.redis_queues_keys, *keys)


def run(settings: WorkerSettings) -> int:
    """The whole worker command: checks, imports, Redis, then one worker or a supervisor."""
    pending = record_signals()
    use_settings(settings.settings)  # inherited by the forked worker processes
    configure_logging(settings)
    check_secret_key()
    import_modules(settings.imports)
    if not wait_for_redis(settings, pending=pending):
        return EXIT_OK  # stopped by a signal before Redis answered
    # Workers always run under a supervisor, also with --concurrency 1: the worker
    # command is then one process group (supervisor + worker), which an operator or
    # an orchestrator stops or kills as a unit, as on host loss.
    from graflow.worker.supervisor import Supervisor

    return Supervisor(settings, pending).run()


__all__ = [
    "REDIS_WAIT",
    "PendingSignals",
    "RedactFilter",
    "check_secret_key",
    "configure_logging",
    "import_modules",
    "ping",
    "redis_error",
    "register_queues",
    "run",
    "run_worker",
    "wait_for_redis",
]
