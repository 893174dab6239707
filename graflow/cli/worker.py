"""``graflow worker``: serve a Redis queue with rq worker processes.

Exit codes: 0 stopped by a signal or ``--burst`` finished; 1 fatal (or a second
signal); 2 usage; 3 Redis unreachable. ``--check`` only pings Redis (0 or 3), for
container health checks.
"""

from __future__ import annotations

from typing import Any

import click

from graflow.cli import handler
from graflow.exit_codes import EXIT_OK


@click.command(
    "worker",
    short_help="run rq workers that execute graflow tasks",
    help="Serve graflow task queues on Redis with rq workers (one job at a time per process).",
)
@click.option(
    "--url",
    default=None,
    help="Redis URL (default: $GRAFLOW_REDIS_URL, $REDIS_URL, redis://localhost:6379/0); rediss:// = TLS",
)
@click.option(
    "--queue",
    multiple=True,
    metavar="NAME",
    help="queue to serve; repeat for several, in priority order "
    "(default: $GRAFLOW_QUEUE, comma-separated, or the prefix)",
)
@click.option(
    "--concurrency",
    type=int,
    default=None,
    metavar="N",
    help="worker processes to run (default: $GRAFLOW_CONCURRENCY or 1)",
)
@click.option(
    "--burst",
    is_flag=True,
    help="exit 0 once the queues (and their delayed jobs) are empty",
)
@click.option(
    "--name",
    default=None,
    help="worker name (default: HOST-PID; with N processes, NAME-1 … NAME-N)",
)
@click.option(
    "--prefix",
    default=None,
    metavar="P",
    help="graflow key prefix (default: $GRAFLOW_KEY_PREFIX or graflow)",
)
@click.option(
    "--heartbeat",
    type=float,
    default=None,
    metavar="S",
    help="lease length in seconds, refreshed every S/3 (default: $GRAFLOW_HEARTBEAT or 3)",
)
@click.option(
    "--max-redeliveries",
    type=int,
    default=None,
    metavar="N",
    help="redeliveries before a task fails with WorkerLostError (default: $GRAFLOW_MAX_REDELIVERIES or 3)",
)
@click.option(
    "--task-timeout",
    type=float,
    default=None,
    metavar="S",
    help="fail an attempt of a task without @task(timeout=) after S seconds with TaskTimeoutError "
    "(default: $GRAFLOW_TASK_TIMEOUT, or no limit; 0 = no limit)",
)
@click.option(
    "--restart-backoff",
    type=float,
    default=None,
    metavar="S",
    help="seconds before restarting a worker process that died, doubling for each death in a row "
    "(default: $GRAFLOW_RESTART_BACKOFF or 0.5)",
)
@click.option(
    "--restart-backoff-max",
    type=float,
    default=None,
    metavar="S",
    help="longest restart back-off (default: $GRAFLOW_RESTART_BACKOFF_MAX or 30)",
)
@click.option(
    "--crash-loop-deaths",
    type=int,
    default=None,
    metavar="N",
    help="give up (exit 1) when one worker process died N times within the crash-loop window "
    "without finishing a job (default: $GRAFLOW_CRASH_LOOP_DEATHS or 5)",
)
@click.option(
    "--crash-loop-window",
    type=float,
    default=None,
    metavar="S",
    help="the crash-loop window in seconds (default: $GRAFLOW_CRASH_LOOP_WINDOW or 60)",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    metavar="N",
    help="serve Prometheus metrics on http://HOST:N/metrics (needs graflow[metrics]; "
    "default: $GRAFLOW_METRICS_PORT, or off; 0 = off)",
)
@click.option(
    "--metrics-host",
    default=None,
    metavar="ADDR",
    help="address the metrics port listens on (default: $GRAFLOW_METRICS_HOST or 127.0.0.1)",
)
@click.option(
    "--log-capture-bytes",
    type=int,
    default=None,
    metavar="N",
    help="bytes of each task attempt's stdout, stderr and logging kept for `graflow logs` "
    "(default: $GRAFLOW_LOG_CAPTURE_BYTES or 65536; 0 = no capture)",
)
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="import MODULE first (handler registration); repeatable",
)
@click.option(
    "--fork",
    is_flag=True,
    help="run each task in a forked work horse (isolation, about 10 ms per task)",
)
@click.option(
    "--log-level",
    "worker_log_level",
    default=None,
    metavar="L",
    help="DEBUG, INFO (default), WARNING or ERROR",
)
@click.option(
    "--check",
    is_flag=True,
    help="ping Redis and exit: 0 reachable, 3 not (health check)",
)
@handler
def command(args: Any) -> int:
    """Resolve the flags against the environment (``WorkerSettings``), then run or ``--check``."""
    return run(args)


def _log_level(args: Any) -> str:
    if args.worker_log_level:
        return str(args.worker_log_level)
    top = str(getattr(args, "log_level", "WARNING") or "WARNING").upper()
    return top if top != "WARNING" else "INFO"  # the top-level default is quiet; a worker logs jobs


def run(args: Any) -> int:
    from graflow.worker.runner import ping
    from graflow.worker.runner import run as run_workers
    from graflow.worker.settings import WorkerSettings

    settings = WorkerSettings.from_env_and_args(
        url=args.url,
        queues=list(args.queue) or None,
        concurrency=args.concurrency,
        burst=args.burst,
        name=args.name,
        prefix=args.prefix,
        heartbeat=args.heartbeat,
        max_redeliveries=args.max_redeliveries,
        imports=list(args.imports),
        log_level=_log_level(args),
        fork=args.fork,
        task_timeout=args.task_timeout,
        restart_backoff=args.restart_backoff,
        restart_backoff_max=args.restart_backoff_max,
        crash_loop_deaths=args.crash_loop_deaths,
        crash_loop_window=args.crash_loop_window,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        log_capture_bytes=args.log_capture_bytes,
    )
    if args.check:
        ping(settings)
        print(f"graflow: Redis at {settings.display_url} is reachable")
        return EXIT_OK
    return run_workers(settings)


__all__ = ["command", "run"]
