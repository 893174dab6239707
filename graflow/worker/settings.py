"""What a worker process is told to do, resolved once from flags and environment.

One frozen object is built by both entry points (``graflow worker`` and the
upstream-compatible ``python -m graflow.worker.main``) so that they run the same code
with the same precedence rules: a flag beats a graflow variable, which beats a generic
variable, which beats the default. The variables are read and checked by
``graflow.settings.Settings`` (given the flags, so a flag given is never read from its
variable); this adds what only a worker command has (``--burst``, ``--name``,
``--import``, ``--log-level``, ``--fork``) and the URL with ``REDIS_PASSWORD`` filled in.
The worker installs ``settings`` for its processes (``graflow.settings.use``), so library
code in a worker reads the same values. The URL keeps its password (the worker needs it),
so it is left out of ``repr`` and shown only through ``display_url``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from graflow.defaults import DEFAULT_HEARTBEAT, DEFAULT_MAX_REDELIVERIES, DEFAULT_URL
from graflow.exceptions import ConfigError
from graflow.redisconn import mask_url, parse_redis_url
from graflow.settings import MIN_HEARTBEAT, Settings
from graflow.worker.restarts import RestartPolicy

if TYPE_CHECKING:
    import redis

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one ``graflow worker`` invocation needs; build it with ``from_env_and_args``."""

    url: str = field(default=DEFAULT_URL, repr=False)
    burst: bool = False
    name: str = ""
    imports: tuple[str, ...] = ()
    log_level: str = "INFO"
    fork: bool = False
    #: Every setting of the process, flags applied (installed by the worker: ``settings.use``);
    #: the queues, prefix, concurrency, lease and limits below are read from it.
    settings: Settings = field(default_factory=Settings)

    @property
    def queues(self) -> tuple[str, ...]:
        return self.settings.served_queues

    @property
    def prefix(self) -> str:
        return self.settings.key_prefix

    @property
    def concurrency(self) -> int:
        return self.settings.concurrency

    @property
    def heartbeat(self) -> float:
        return self.settings.heartbeat

    @property
    def max_redeliveries(self) -> int:
        return self.settings.max_redeliveries

    @property
    def task_timeout(self) -> float | None:
        """Seconds a pooled attempt of a task without ``@task(timeout=)`` may run (None: no limit)."""
        return self.settings.task_timeout

    @property
    def metrics_port(self) -> int:
        """The port of this command's Prometheus ``/metrics`` (0: none; ``metrics_server``)."""
        return self.settings.metrics_port

    @property
    def log_capture_bytes(self) -> int:
        """Bytes of task output kept per attempt for ``graflow logs`` (0: no capture)."""
        return self.settings.log_capture_bytes

    @property
    def restart(self) -> RestartPolicy:
        """When a dead worker process is restarted and when the supervisor gives up (``restarts``)."""
        s = self.settings
        return RestartPolicy(s.restart_backoff, s.restart_backoff_max, s.crash_loop_deaths, s.crash_loop_window)

    @property
    def display_url(self) -> str:
        """The URL with its password masked: the only form that may be logged or printed."""
        return mask_url(self.url)

    @property
    def password(self) -> str | None:
        return parse_redis_url(self.url)[1]

    @property
    def ssl(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "rediss"

    def connect(self) -> redis.Redis:
        """A binary (``decode_responses=False``) client, as rq requires; TLS for ``rediss://``."""
        from graflow.redisconn import client_from

        return client_from(url=self.url, decode=False)

    def worker_names(self) -> list[str]:
        """``[name]`` for one process, else ``name-1 … name-N`` (rq names must be unique)."""
        if self.concurrency == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.concurrency + 1)]

    @classmethod
    def from_env_and_args(
        cls,
        *,
        url: str | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        name: str | None = None,
        prefix: str | None = None,
        heartbeat: float | None = None,
        max_redeliveries: int | None = None,
        imports: Sequence[str] = (),
        log_level: str | None = None,
        fork: bool = False,
        env: Mapping[str, str] | None = None,
        task_timeout: float | None = None,
        restart_backoff: float | None = None,
        restart_backoff_max: float | None = None,
        crash_loop_deaths: int | None = None,
        crash_loop_window: float | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        log_capture_bytes: int | None = None,
    ) -> WorkerSettings:
        """Resolve flags (``None`` = not given) against ``env`` (default ``os.environ``).

        Raises ``ConfigError`` (exit 2) for values that cannot work, naming the flag.
        """
        resolved = Settings.from_env(
            env, url=url, prefix=prefix, queues=queues, concurrency=concurrency, heartbeat=heartbeat,
            max_redeliveries=max_redeliveries, task_timeout=task_timeout, restart_backoff=restart_backoff,
            restart_backoff_max=restart_backoff_max, crash_loop_deaths=crash_loop_deaths,
            crash_loop_window=crash_loop_window, metrics_port=metrics_port, metrics_host=metrics_host,
            log_capture_bytes=log_capture_bytes,
        )  # fmt: skip
        final_url = _fill_password(resolved.url, resolved.redis_password)
        level = (log_level or "INFO").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level {log_level} is unknown — use one of {', '.join(LOG_LEVELS)}"
            )
        return cls(
            url=final_url,
            burst=bool(burst),
            name=name or f"{socket.gethostname()}-{os.getpid()}",
            imports=tuple(imports),
            log_level=level,
            fork=bool(fork),
            settings=resolved,
        )


def _fill_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` added when the URL has none (``REDIS_PASSWORD``)."""
    _desc, existing = parse_redis_url(url)  # also validates the scheme (ConfigError)
    if existing is not None or not password:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    user = ""
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
    auth = f"{quote(unquote(user), safe='')}:{quote(password, safe='')}@"
    return urlunsplit((parts.scheme, auth + netloc, parts.path, parts.query, parts.fragment))


__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_MAX_REDELIVERIES",
    "DEFAULT_URL",
    "MIN_HEARTBEAT",
    "WorkerSettings",
]
