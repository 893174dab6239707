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
import sys
import time
from collections.abc import Iterable

from graflow.defaults import DEFAULT_WORKER_REDIS_WAIT
from graflow.exceptions import RedisUnavailableError
from graflow.exit_codes import EXIT_OK, EXIT_USAGE, CliError
from graflow.redisconn import wrap_connection_errors
from graflow.settings import use as use_settings
from graflow.worker.metrics_server import require as require_metrics
from graflow.worker.process import (
    PendingSignals,
    claim_worker_name,
    record_signals,
    redis_error,
    register_queues,
    run_worker,
    unreachable,
)
from graflow.worker.settings import WorkerSettings

log = logging.getLogger("graflow.worker")

#: Seconds to keep retrying Redis at start-up; ``GRAFLOW_WORKER_REDIS_WAIT`` overrides.
REDIS_WAIT = DEFAULT_WORKER_REDIS_WAIT
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
    """PING until Redis answers (True) or ``timeout`` (10 s) passes (``CliError``, exit 3).

    Wrong credentials fail at once; a stop signal while waiting returns False.
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
            if not unreachable(exc):
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


def run(settings: WorkerSettings) -> int:
    """The whole worker command: checks, imports, Redis, then one worker or a supervisor."""
    pending = record_signals()
    use_settings(settings.settings)  # inherited by the forked worker processes
    configure_logging(settings)
    check_secret_key()
    require_metrics(settings)  # a usage error before anything starts
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
    "claim_worker_name",
    "configure_logging",
    "import_modules",
    "ping",
    "record_signals",
    "redis_error",
    "register_queues",
    "run",
    "run_worker",
    "wait_for_redis",
]
