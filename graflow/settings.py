"""Every setting graflow reads from the environment, read and checked in one place.

``Settings.from_env(env, **flags)`` reads each variable once, applies the command-line
flags that override it (a flag given beats its variable, which beats the default of
``graflow.defaults``; an empty variable counts as unset) and checks every value: a bad one
is a ``ConfigError`` naming the variable (and its flag) and the fix. It is the only code
in graflow that reads ``os.environ`` (the crash-injection test hooks of ``graflow.crash``
aside): ``VARIABLES`` lists what it reads, and docs/configuration.md is checked against it.

Which settings a process runs with:

* ``current()``: the settings installed with ``use()``, else the ones of the process's
  environment, read on first use and then cached. A process that changes its
  environment afterwards calls ``reload()`` (the test suite's ``monkeypatch`` fixture does
  so after each ``setenv``/``delenv``); a bad variable is not cached, so each use raises.
* ``use(settings)``: install settings for the whole process; the worker command installs
  the ones built from its flags and environment, so a worker's library code (session
  TTL, redelivery limit, ...) runs with exactly what the command resolved.
* ``using(settings)``: the same for a ``with`` block (tests, a CLI command).

Components the worker command constructs (runner, supervisor, lease keeper, takeover)
get their settings as an argument; library code reached from a user's call (TTLs, the
checkpoint directory, the value-size limit, the secret key) calls ``current()``.

A ground-floor module: the standard library, ``graflow.defaults``, ``graflow.exceptions``
and ``graflow.identifiers`` only.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from graflow import defaults as d
from graflow import settings_values as parse
from graflow.exceptions import ConfigError
from graflow.identifiers import check_key_prefix, check_queue_name
from graflow.settings_values import MIN_HEARTBEAT, MIN_KEY_BYTES, check_key

__all__ = [
    "MIN_HEARTBEAT",
    "MIN_KEY_BYTES",
    "VARIABLES",
    "Settings",
    "Variable",
    "check_key",
    "current",
    "environ",
    "export",
    "reload",
    "use",
    "using",
]


@dataclass(frozen=True)
class Variable:
    """One environment variable: its flag (if any), default as documented, and meaning."""

    name: str
    flag: str
    default: str
    meaning: str


#: What ``Settings.from_env`` reads, in the order of docs/configuration.md.
VARIABLES: tuple[Variable, ...] = (
    Variable("GRAFLOW_REDIS_URL", "--url", d.DEFAULT_URL, "Redis to use; `rediss://` for TLS."),
    Variable("REDIS_URL", "--url", "(unset)", "Used when `GRAFLOW_REDIS_URL` is unset."),
    Variable("REDIS_PASSWORD", "", "(unset)", "Password for a Redis URL that carries none."),
    Variable("GRAFLOW_KEY_PREFIX", "--prefix", d.DEFAULT_PREFIX, "Prefix of every graflow key in Redis."),
    Variable("GRAFLOW_QUEUE", "--queue", "the prefix",
             "Queues served, comma-separated in priority order; `graflow submit` sends to the first."),
    Variable("GRAFLOW_CONCURRENCY", "--concurrency", str(d.DEFAULT_CONCURRENCY),
             "Worker processes of one `graflow worker` command."),
    Variable("GRAFLOW_HEARTBEAT", "--heartbeat", f"{d.DEFAULT_HEARTBEAT:g}",
             f"Lease length in seconds (at least {MIN_HEARTBEAT:g}), renewed every third of it."),
    Variable("GRAFLOW_MAX_REDELIVERIES", "--max-redeliveries", str(d.DEFAULT_MAX_REDELIVERIES),
             "Redeliveries of a task whose worker was lost before it fails with `WorkerLostError`."),
    Variable("GRAFLOW_TASK_TIMEOUT", "--task-timeout", "0 (no limit)",
             "Seconds an attempt of a task without `@task(timeout=)` may run on the pool."),
    Variable("GRAFLOW_RESTART_BACKOFF", "--restart-backoff", f"{d.DEFAULT_RESTART_BACKOFF:g}",
             "Seconds before a dead worker process restarts, doubled for each death in a row."),
    Variable("GRAFLOW_RESTART_BACKOFF_MAX", "--restart-backoff-max", f"{d.DEFAULT_RESTART_BACKOFF_MAX:g}",
             "Longest restart back-off in seconds."),
    Variable("GRAFLOW_CRASH_LOOP_DEATHS", "--crash-loop-deaths", str(d.DEFAULT_CRASH_LOOP_DEATHS),
             "Deaths of one worker process within the window, with no job finished, that stop the command."),
    Variable("GRAFLOW_CRASH_LOOP_WINDOW", "--crash-loop-window", f"{d.DEFAULT_CRASH_LOOP_WINDOW:g}",
             "The crash-loop window in seconds."),
    Variable("GRAFLOW_METRICS_PORT", "--metrics-port", "0 (off)",
             "Port of the worker command's Prometheus `/metrics` (needs `graflow[metrics]`)."),
    Variable("GRAFLOW_METRICS_HOST", "--metrics-host", d.DEFAULT_METRICS_HOST,
             "Address `/metrics` listens on; `0.0.0.0` in a container."),
    Variable("GRAFLOW_METRICS_TASK_LABEL", "", "1",
             "`0` drops the `task` label of the task metrics (huge dynamic fan-outs)."),
    Variable("GRAFLOW_LOG_CAPTURE_BYTES", "--log-capture-bytes", str(d.DEFAULT_LOG_CAPTURE_BYTES),
             "Bytes of stdout, stderr and `logging` output kept per task attempt for `graflow logs` "
             "(first half and last half); 0 captures nothing."),
    Variable("GRAFLOW_DASHBOARD_TOKEN", "--token", "(unset)",
             "Token `graflow dashboard` asks for (Bearer header, or `?token=` once in the browser)."),
    Variable("GRAFLOW_DASHBOARD_USER", "", "(unset)",
             "With `GRAFLOW_DASHBOARD_PASSWORD`: HTTP basic auth for `graflow dashboard`."),
    Variable("GRAFLOW_DASHBOARD_PASSWORD", "", "(unset)", "The basic-auth password of `graflow dashboard`."),
    Variable("GRAFLOW_WORKER_REDIS_WAIT", "", f"{d.DEFAULT_WORKER_REDIS_WAIT:g}",
             "Seconds a starting worker retries Redis before it exits 3."),
    Variable("GRAFLOW_REDIS_RETRY_FOR", "", f"{d.DEFAULT_REDIS_RETRY_FOR:g}",
             "Seconds a worker retries a run-state update while Redis is unreachable."),
    Variable("GRAFLOW_MAX_VALUE_BYTES", "", str(d.DEFAULT_MAX_VALUE_BYTES),
             "Largest value sent to Redis in one piece; 0 means the default."),
    Variable("GRAFLOW_SECRET_KEY", "", "(unset)",
             f"HMAC key(s) of signed payloads, comma-separated (the first signs); at least {MIN_KEY_BYTES} bytes."),
    Variable("GRAFLOW_CHECKPOINT_DIR", "", d.DEFAULT_CHECKPOINT_DIRECTORY,
             "Directory or URL for checkpoints written without a path."),
    Variable("GRAFLOW_CHECKPOINT_TTL", "", "(unset: kept)", "Seconds to keep checkpoints stored in Redis."),
    Variable("GRAFLOW_SESSION_TTL", "", str(d.DEFAULT_SESSION_TTL),
             "Seconds a finished run's keys (and failed rq jobs) are kept."),
    Variable("GRAFLOW_GRAPH_TTL", "", str(d.DEFAULT_GRAPH_TTL),
             "Seconds an uploaded graph is kept once no live run uses it."),
    Variable("GRAFLOW_FINISHED_JOB_TTL", "", str(d.DEFAULT_FINISHED_JOB_TTL),
             "Seconds a worker keeps a completed task's rq job, for `rq info` and rq-dashboard; 0 deletes it at once."),
)  # fmt: skip

_NAMES = tuple(v.name for v in VARIABLES)


@dataclass(frozen=True)
class Settings:
    """The values of ``VARIABLES`` (and the flags that override them), checked.

    Secrets (the URLs, which may hold a password, the password and the keys) are left out
    of ``repr``.
    """

    #: ``--url`` / ``GRAFLOW_REDIS_URL``, without the fall-backs (``url`` applies them).
    redis_url: str | None = field(default=None, repr=False)
    #: ``REDIS_URL``: used when ``redis_url`` is unset.
    fallback_redis_url: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    key_prefix: str = d.DEFAULT_PREFIX
    #: ``--queue`` / ``GRAFLOW_QUEUE`` in priority order; empty: the prefix (``served_queues``).
    queues: tuple[str, ...] = ()
    concurrency: int = d.DEFAULT_CONCURRENCY
    heartbeat: float = d.DEFAULT_HEARTBEAT
    max_redeliveries: int = d.DEFAULT_MAX_REDELIVERIES
    #: Seconds a pooled attempt of a task without ``@task(timeout=)`` may run (None: no limit).
    task_timeout: float | None = None
    restart_backoff: float = d.DEFAULT_RESTART_BACKOFF
    restart_backoff_max: float = d.DEFAULT_RESTART_BACKOFF_MAX
    crash_loop_deaths: int = d.DEFAULT_CRASH_LOOP_DEATHS
    crash_loop_window: float = d.DEFAULT_CRASH_LOOP_WINDOW
    #: ``--metrics-port`` / ``GRAFLOW_METRICS_PORT``: 0 serves no metrics.
    metrics_port: int = d.DEFAULT_METRICS_PORT
    metrics_host: str = d.DEFAULT_METRICS_HOST
    #: ``GRAFLOW_METRICS_TASK_LABEL``: task metrics carry a ``task`` label (its base id).
    metrics_task_label: bool = True
    #: Bytes of output kept per attempt on a worker (0: no capture; graflow.worker.capture).
    log_capture_bytes: int = d.DEFAULT_LOG_CAPTURE_BYTES
    #: ``graflow dashboard``'s credentials (``graflow.dashboard.auth``); unset: none asked.
    dashboard_token: str = field(default="", repr=False)
    dashboard_user: str = ""
    dashboard_password: str = field(default="", repr=False)
    worker_redis_wait: float = d.DEFAULT_WORKER_REDIS_WAIT
    redis_retry_for: float = d.DEFAULT_REDIS_RETRY_FOR
    max_value_bytes: int = d.DEFAULT_MAX_VALUE_BYTES
    secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    checkpoint_dir: str = d.DEFAULT_CHECKPOINT_DIRECTORY
    checkpoint_ttl: int | None = None
    session_ttl: int = d.DEFAULT_SESSION_TTL
    graph_ttl: int = d.DEFAULT_GRAPH_TTL
    finished_job_ttl: int = d.DEFAULT_FINISHED_JOB_TTL

    @property
    def url(self) -> str:
        """The Redis URL: ``--url``, else ``GRAFLOW_REDIS_URL``, else ``REDIS_URL``, else the
        local default (``REDIS_PASSWORD`` is filled in by ``graflow.redisconn``)."""
        return self.redis_url or self.fallback_redis_url or d.DEFAULT_URL

    @property
    def served_queues(self) -> tuple[str, ...]:
        """The queues a worker serves: the configured ones, else the key prefix."""
        return self.queues or (self.key_prefix,)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        prefix: str | None = None,
        queues: Sequence[str] | None = None,
        concurrency: float | None = None,
        heartbeat: float | None = None,
        max_redeliveries: float | None = None,
        task_timeout: float | None = None,
        restart_backoff: float | None = None,
        restart_backoff_max: float | None = None,
        crash_loop_deaths: float | None = None,
        crash_loop_window: float | None = None,
        metrics_port: float | None = None,
        metrics_host: str | None = None,
        log_capture_bytes: float | None = None,
        dashboard_token: str | None = None,
    ) -> Settings:
        """Read ``env`` (default ``os.environ``) once; a flag (not None) beats its variable.

        ``ConfigError`` for a value that cannot work, naming the variable and the fix.
        """
        env = os.environ if env is None else env
        final_prefix = prefix or parse.non_empty(env.get("GRAFLOW_KEY_PREFIX")) or d.DEFAULT_PREFIX
        if queues:
            final_queues = tuple(parse.dedupe(queues))
        else:
            raw_queues = env.get("GRAFLOW_QUEUE") or ""
            final_queues = tuple(parse.dedupe([p.strip() for p in raw_queues.split(",") if p.strip()]))
        if any(not q or q != q.strip() for q in final_queues):
            raise ConfigError(
                f"bad --queue/GRAFLOW_QUEUE value in {list(final_queues)!r} — use non-empty names"
            )
        # Prefix and queues become Redis key names: one allowed form (graflow.identifiers).
        check_key_prefix(final_prefix, "--prefix/GRAFLOW_KEY_PREFIX")
        for q in final_queues:
            check_queue_name(q, "--queue/GRAFLOW_QUEUE")
        backoff, backoff_max, deaths, window = parse.restart_policy(
            parse.number(restart_backoff, env.get("GRAFLOW_RESTART_BACKOFF"), d.DEFAULT_RESTART_BACKOFF,
                    "--restart-backoff/GRAFLOW_RESTART_BACKOFF"),
            parse.number(restart_backoff_max, env.get("GRAFLOW_RESTART_BACKOFF_MAX"),
                    d.DEFAULT_RESTART_BACKOFF_MAX, "--restart-backoff-max/GRAFLOW_RESTART_BACKOFF_MAX"),
            parse.number(crash_loop_deaths, env.get("GRAFLOW_CRASH_LOOP_DEATHS"), d.DEFAULT_CRASH_LOOP_DEATHS,
                    "--crash-loop-deaths/GRAFLOW_CRASH_LOOP_DEATHS"),
            parse.number(crash_loop_window, env.get("GRAFLOW_CRASH_LOOP_WINDOW"), d.DEFAULT_CRASH_LOOP_WINDOW,
                    "--crash-loop-window/GRAFLOW_CRASH_LOOP_WINDOW"),
        )
        return cls(
            redis_url=url or parse.non_empty(env.get("GRAFLOW_REDIS_URL")),
            fallback_redis_url=parse.non_empty(env.get("REDIS_URL")),
            redis_password=env.get("REDIS_PASSWORD") or None,
            key_prefix=final_prefix,
            queues=final_queues,
            concurrency=parse.concurrency(parse.number(concurrency, env.get("GRAFLOW_CONCURRENCY"),
                                             d.DEFAULT_CONCURRENCY, "--concurrency/GRAFLOW_CONCURRENCY")),
            heartbeat=parse.heartbeat(parse.number(heartbeat, env.get("GRAFLOW_HEARTBEAT"), d.DEFAULT_HEARTBEAT,
                                         "--heartbeat/GRAFLOW_HEARTBEAT")),
            max_redeliveries=parse.redeliveries(parse.number(max_redeliveries, env.get("GRAFLOW_MAX_REDELIVERIES"),
                                                   d.DEFAULT_MAX_REDELIVERIES,
                                                   "--max-redeliveries/GRAFLOW_MAX_REDELIVERIES")),
            task_timeout=parse.task_timeout(parse.number(task_timeout, env.get("GRAFLOW_TASK_TIMEOUT"), 0.0,
                                               "--task-timeout/GRAFLOW_TASK_TIMEOUT")),
            restart_backoff=backoff,
            restart_backoff_max=backoff_max,
            crash_loop_deaths=deaths,
            crash_loop_window=window,
            metrics_port=parse.port(parse.number(metrics_port, env.get("GRAFLOW_METRICS_PORT"),
                                                 d.DEFAULT_METRICS_PORT, "--metrics-port/GRAFLOW_METRICS_PORT"),
                                    "--metrics-port/GRAFLOW_METRICS_PORT"),
            metrics_host=(metrics_host or parse.non_empty(env.get("GRAFLOW_METRICS_HOST"))
                          or d.DEFAULT_METRICS_HOST).strip(),
            metrics_task_label=parse.flag(env.get("GRAFLOW_METRICS_TASK_LABEL"), True,
                                          "GRAFLOW_METRICS_TASK_LABEL"),
            log_capture_bytes=parse.capture_bytes(parse.number(
                log_capture_bytes, env.get("GRAFLOW_LOG_CAPTURE_BYTES"), d.DEFAULT_LOG_CAPTURE_BYTES,
                "--log-capture-bytes/GRAFLOW_LOG_CAPTURE_BYTES")),
            dashboard_token=dashboard_token or env.get("GRAFLOW_DASHBOARD_TOKEN") or "",
            dashboard_user=env.get("GRAFLOW_DASHBOARD_USER") or "",
            dashboard_password=env.get("GRAFLOW_DASHBOARD_PASSWORD") or "",
            worker_redis_wait=parse.seconds(env.get("GRAFLOW_WORKER_REDIS_WAIT"), d.DEFAULT_WORKER_REDIS_WAIT,
                                       "GRAFLOW_WORKER_REDIS_WAIT"),
            redis_retry_for=parse.seconds(env.get("GRAFLOW_REDIS_RETRY_FOR"), d.DEFAULT_REDIS_RETRY_FOR,
                                     "GRAFLOW_REDIS_RETRY_FOR"),
            max_value_bytes=parse.max_value_bytes(env.get("GRAFLOW_MAX_VALUE_BYTES")),
            secret_keys=tuple(check_key(part.strip(), "GRAFLOW_SECRET_KEY")
                              for part in (env.get("GRAFLOW_SECRET_KEY") or "").split(",") if part.strip()),
            checkpoint_dir=env.get("GRAFLOW_CHECKPOINT_DIR") or d.DEFAULT_CHECKPOINT_DIRECTORY,
            checkpoint_ttl=parse.checkpoint_ttl(env.get("GRAFLOW_CHECKPOINT_TTL")),
            session_ttl=parse.ttl(env.get("GRAFLOW_SESSION_TTL"), d.DEFAULT_SESSION_TTL, "GRAFLOW_SESSION_TTL"),
            graph_ttl=parse.ttl(env.get("GRAFLOW_GRAPH_TTL"), d.DEFAULT_GRAPH_TTL, "GRAFLOW_GRAPH_TTL"),
            finished_job_ttl=parse.keep_seconds(env.get("GRAFLOW_FINISHED_JOB_TTL"), d.DEFAULT_FINISHED_JOB_TTL,
                                                "GRAFLOW_FINISHED_JOB_TTL"),
        )  # fmt: skip


# -- the process's settings -------------------------------------------------------------
_lock = threading.Lock()
_installed: Settings | None = None
_from_env: Settings | None = None


def current() -> Settings:
    """The process's settings: installed by ``use``/``using``, else read from the
    environment on first use (``ConfigError`` for a bad variable, raised on each use)."""
    global _from_env
    installed = _installed
    if installed is not None:
        return installed
    cached = _from_env
    if cached is None:
        with _lock:
            cached = _from_env
            if cached is None:
                cached = _from_env = Settings.from_env()
    return cached


def reload() -> None:
    """Forget the settings read from the environment: the next ``current()`` reads it again."""
    global _from_env
    with _lock:
        _from_env = None


def use(settings: Settings | None) -> None:
    """Install ``settings`` for the whole process (None: back to the environment's)."""
    global _installed
    _installed = settings


@contextlib.contextmanager
def using(settings: Settings) -> Iterator[Settings]:
    """``use(settings)`` for the ``with`` block; the previous settings come back after it."""
    previous = _installed
    use(settings)
    try:
        yield settings
    finally:
        use(previous)


def export(name: str, value: str | None) -> None:
    """Set (or, with None, remove) a variable for this process and the processes it starts
    from now on: another library's own setting graflow hands down, never one it reads
    (the worker command's ``PROMETHEUS_MULTIPROC_DIR`` for its worker processes)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def environ() -> Mapping[str, str]:
    """The process environment, for the upstream-compatible worker entry point
    (``graflow.worker.main``), whose own variables (``REDIS_HOST``, ``WORKER_ID`` ...)
    become flags there and then go through ``Settings.from_env`` like any flag."""
    return os.environ
