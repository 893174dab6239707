"""``python -m graflow.worker.main``: upstream Graflow's worker command line.

Upstream deployments (Dockerfiles, compose files, k8s manifests) start workers with
these flags and variables; they keep working, but run the same rq-based worker as
``graflow worker``: the flags are translated into ``WorkerSettings`` and nothing else
differs. ``--poll-interval`` is accepted and ignored (rq dequeues with a blocking call).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from graflow.exit_codes import fail, reported
from graflow.keys import DEFAULT_PREFIX
from graflow.redisconn import build_url
from graflow.settings import Settings, environ
from graflow.worker.settings import WorkerSettings

#: Upstream's worker runs 4 tasks at once by default (threads); this entry point runs as
#: many, as processes, so an upstream deployment keeps its parallelism.
UPSTREAM_CONCURRENCY = 4


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The upstream flags; their defaults are upstream's variables of ``env`` (default: the
    process environment, ``graflow.settings.environ``)."""
    env = environ() if env is None else env
    p = argparse.ArgumentParser(
        prog="python -m graflow.worker.main",
        description="Run a graflow worker (upstream-compatible flags; see also `graflow worker`).",
    )
    p.add_argument(
        "--worker-id",
        default=env.get("WORKER_ID") or f"worker_{os.getpid()}",
        help="worker name (WORKER_ID; default worker_PID)",
    )
    p.add_argument(
        "--redis-host",
        default=env.get("REDIS_HOST", "localhost"),
        help="Redis host (REDIS_HOST); REDIS_URL overrides host, port and db",
    )
    p.add_argument(
        "--redis-port",
        type=int,
        default=int(env.get("REDIS_PORT") or 6379),
        help="Redis port (REDIS_PORT)",
    )
    p.add_argument(
        "--redis-db",
        type=int,
        default=int(env.get("REDIS_DB") or 0),
        help="Redis database (REDIS_DB)",
    )
    p.add_argument(
        "--redis-key-prefix",
        default=env.get("REDIS_KEY_PREFIX") or env.get("GRAFLOW_KEY_PREFIX") or DEFAULT_PREFIX,
        help="key prefix and queue name (REDIS_KEY_PREFIX)",
    )
    p.add_argument(
        "--log-level",
        default=env.get("LOG_LEVEL") or "INFO",
        help="DEBUG, INFO (default), WARNING or ERROR (LOG_LEVEL)",
    )
    p.add_argument(
        "--max-concurrent-tasks",
        type=int,
        default=int(env.get("MAX_CONCURRENT_TASKS") or UPSTREAM_CONCURRENCY),
        help="tasks run at once: worker processes, each running one task at a time "
        f"(MAX_CONCURRENT_TASKS; default {UPSTREAM_CONCURRENCY}, as upstream's threads)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=float(env.get("POLL_INTERVAL") or 0.1),
        help="accepted for compatibility and ignored (POLL_INTERVAL)",
    )
    p.add_argument("--burst", action="store_true", help="exit 0 once the queue is empty")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first; repeatable",
    )
    p.add_argument("--fork", action="store_true", help="run each task in a forked work horse")
    return p


def settings_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> WorkerSettings:
    """Translate upstream flags: a URL variable beats host/port/db; the prefix is also the queue."""
    env = environ() if env is None else env
    configured = Settings.from_env(env, prefix=args.redis_key_prefix, queues=[args.redis_key_prefix],
                                   concurrency=args.max_concurrent_tasks)  # fmt: skip
    url = (
        configured.redis_url
        or configured.fallback_redis_url
        or build_url(args.redis_host, args.redis_port, args.redis_db)
    )
    return WorkerSettings.from_env_and_args(
        url=url,
        queues=[args.redis_key_prefix],
        prefix=args.redis_key_prefix,
        concurrency=args.max_concurrent_tasks,
        burst=args.burst,
        name=args.worker_id,
        imports=args.imports,
        log_level=args.log_level,
        fork=args.fork,
        env=env,
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except ValueError as exc:  # a non-numeric REDIS_PORT and the like
        return fail(f"bad worker environment: {exc} — fix the variable", 2, exc, debug=False)
    debug = str(args.log_level).upper() == "DEBUG"
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from graflow.worker.runner import run

    return reported(lambda: run(settings_from_args(args)), debug=debug)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main", "settings_from_args"]
