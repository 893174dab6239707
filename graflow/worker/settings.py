"""What a worker process is told to do, resolved once from flags and environment.

One frozen object is built by both entry points (``graflow worker`` and the
upstream-compatible ``python -m graflow.worker.main``) so that they run the same code
with the same precedence rules: a flag beats a graflow variable, which beats a generic
variable, which beats the default. The URL keeps its password (the worker needs it),
so it is left out of ``repr`` and shown only through ``display_url``.

Variables (each a flag's fallback, so a container needs no command line):
``GRAFLOW_REDIS_URL`` / ``REDIS_URL`` (+ ``REDIS_PASSWORD``), ``GRAFLOW_KEY_PREFIX``,
``GRAFLOW_QUEUE`` (comma-separated, priority order; default: the prefix),
``GRAFLOW_CONCURRENCY`` (default 1), ``GRAFLOW_HEARTBEAT`` (3) and
``GRAFLOW_MAX_REDELIVERIES`` (3), ``GRAFLOW_TASK_TIMEOUT`` (off); the restart policy's four (``graflow.worker.restarts``).
An empty variable counts as unset.
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
from graflow.identifiers import check_key_prefix, check_queue_name
from graflow.keys import DEFAULT_PREFIX
from graflow.limits import max_value_bytes
from graflow.redisconn import mask_url, parse_redis_url
from graflow.worker.restarts import (
    DEFAULT_CRASH_LOOP_DEATHS,
    DEFAULT_CRASH_LOOP_WINDOW,
    DEFAULT_RESTART_BACKOFF,
    DEFAULT_RESTART_BACKOFF_MAX,
    RestartPolicy,
)

if TYPE_CHECKING:
    import redis

#: The shortest lease we accept: below this, ordinary GC pauses would expire leases.
MIN_HEARTBEAT = 0.5
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one ``graflow worker`` invocation needs; build it with ``from_env_and_args``."""

    url: str = field(default=DEFAULT_URL, repr=False)
    queues: tuple[str, ...] = (DEFAULT_PREFIX,)
    concurrency: int = 1
    burst: bool = False
    name: str = ""
    prefix: str = DEFAULT_PREFIX
    heartbeat: float = DEFAULT_HEARTBEAT
    max_redeliveries: int = DEFAULT_MAX_REDELIVERIES
    imports: tuple[str, ...] = ()
    log_level: str = "INFO"
    fork: bool = False
    #: Seconds a pooled attempt of a task without ``@task(timeout=)`` may run (None: no limit).
    task_timeout: float | None = None
    #: When a dead worker process is restarted and when the supervisor gives up (``restarts``).
    restart: RestartPolicy = field(default_factory=RestartPolicy)

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
    ) -> WorkerSettings:
        """Resolve flags (``None`` = not given) against ``env`` (default ``os.environ``).

        Raises ``ConfigError`` (exit 2) for values that cannot work, naming the flag.
        """
        env = os.environ if env is None else env
        raw_url = url or env.get("GRAFLOW_REDIS_URL") or env.get("REDIS_URL") or DEFAULT_URL
        final_url = _fill_password(raw_url, env.get("REDIS_PASSWORD") or None)
        final_prefix = prefix or env.get("GRAFLOW_KEY_PREFIX") or DEFAULT_PREFIX
        if queues:
            final_queues = tuple(_dedupe(queues))
        else:
            final_queues = tuple(_dedupe(env_queues(env))) or (final_prefix,)
        if any(not q or q != q.strip() for q in final_queues):
            raise ConfigError(
                f"bad --queue/GRAFLOW_QUEUE value in {list(final_queues)!r} — use non-empty names"
            )
        # Prefix and queues become Redis key names: one allowed form (graflow.identifiers).
        check_key_prefix(final_prefix, "--prefix/GRAFLOW_KEY_PREFIX")
        for q in final_queues:
            check_queue_name(q, "--queue/GRAFLOW_QUEUE")
        final_concurrency = _number(
            concurrency,
            env.get("GRAFLOW_CONCURRENCY"),
            1,
            "--concurrency/GRAFLOW_CONCURRENCY",
        )
        if final_concurrency < 1 or final_concurrency != int(final_concurrency):
            raise ConfigError(
                f"--concurrency/GRAFLOW_CONCURRENCY {final_concurrency:g} is invalid — "
                "use a whole number, 1 or more"
            )
        final_heartbeat = _number(
            heartbeat,
            env.get("GRAFLOW_HEARTBEAT"),
            DEFAULT_HEARTBEAT,
            "--heartbeat/GRAFLOW_HEARTBEAT",
        )
        if not final_heartbeat >= MIN_HEARTBEAT:
            raise ConfigError(
                f"--heartbeat {final_heartbeat} is too short — use at least {MIN_HEARTBEAT} seconds"
            )
        redeliveries = _number(
            max_redeliveries,
            env.get("GRAFLOW_MAX_REDELIVERIES"),
            DEFAULT_MAX_REDELIVERIES,
            "--max-redeliveries/GRAFLOW_MAX_REDELIVERIES",
        )
        if redeliveries < 0 or redeliveries != int(redeliveries):
            raise ConfigError(f"--max-redeliveries {redeliveries} is invalid — use 0 or more")
        max_value_bytes(env)  # a bad GRAFLOW_MAX_VALUE_BYTES stops the worker (exit 2), not each task
        level = (log_level or "INFO").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level {log_level} is unknown — use one of {', '.join(LOG_LEVELS)}"
            )
        return cls(
            url=final_url,
            queues=final_queues,
            concurrency=int(final_concurrency),
            burst=bool(burst),
            name=name or f"{socket.gethostname()}-{os.getpid()}",
            prefix=final_prefix,
            heartbeat=final_heartbeat,
            max_redeliveries=int(redeliveries),
            imports=tuple(imports),
            log_level=level,
            fork=bool(fork),
            task_timeout=_task_timeout(task_timeout, env.get("GRAFLOW_TASK_TIMEOUT")),
            restart=RestartPolicy.checked(
                _number(restart_backoff, env.get("GRAFLOW_RESTART_BACKOFF"), DEFAULT_RESTART_BACKOFF,
                        "--restart-backoff/GRAFLOW_RESTART_BACKOFF"),
                _number(restart_backoff_max, env.get("GRAFLOW_RESTART_BACKOFF_MAX"), DEFAULT_RESTART_BACKOFF_MAX,
                        "--restart-backoff-max/GRAFLOW_RESTART_BACKOFF_MAX"),
                _number(crash_loop_deaths, env.get("GRAFLOW_CRASH_LOOP_DEATHS"), DEFAULT_CRASH_LOOP_DEATHS,
                        "--crash-loop-deaths/GRAFLOW_CRASH_LOOP_DEATHS"),
                _number(crash_loop_window, env.get("GRAFLOW_CRASH_LOOP_WINDOW"), DEFAULT_CRASH_LOOP_WINDOW,
                        "--crash-loop-window/GRAFLOW_CRASH_LOOP_WINDOW"),
            ),
        )


def env_queues(env: Mapping[str, str] | None = None) -> list[str]:
    """``GRAFLOW_QUEUE`` as a list: comma-separated names in priority order (empty if unset).

    The variable is the environment form of repeated ``--queue`` flags, so a container
    can be configured without a command line; ``graflow submit`` sends to its first name.
    """
    env = os.environ if env is None else env
    return [part.strip() for part in (env.get("GRAFLOW_QUEUE") or "").split(",") if part.strip()]


def _dedupe(items: Sequence[str]) -> list[str]:
    """Keep the first occurrence: repeated ``--queue`` flags are a priority order."""
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _number(flag: float | None, env_value: str | None, default: float, what: str) -> float:
    if flag is not None:
        return float(flag)
    if env_value is None or not env_value.strip():
        return float(default)
    try:
        return float(env_value)
    except ValueError:
        raise ConfigError(f"{what} is {env_value!r}, not a number; set a number") from None


def _task_timeout(flag: float | None, env_value: str | None) -> float | None:
    """``--task-timeout``/``GRAFLOW_TASK_TIMEOUT``: off when unset or 0; else seconds > 0."""
    seconds = _number(flag, env_value, 0.0, "--task-timeout/GRAFLOW_TASK_TIMEOUT")
    if seconds == 0:
        return None
    if not (seconds > 0 and seconds != float("inf")):
        raise ConfigError(
            f"--task-timeout/GRAFLOW_TASK_TIMEOUT {seconds:g} is invalid; use seconds (more than 0), or 0 for no limit"
        )
    return seconds


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
    "WorkerSettings",
    "env_queues",
]
