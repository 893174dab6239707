"""``graflow workers``: the rq workers, what each runs and how its lease stands."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import EXIT_OK, key_prefix, pool_options, redis_url

_COLUMNS = ("NAME", "STATE", "QUEUES", "PROCESS", "RUNNING", "FOR", "LEASE", "JOBS")


def running(worker: Any) -> str:
    """``task #attempt of <session>`` for a graflow attempt, else the rq job id, or ``-``."""
    if worker.session_id:
        what = f"{worker.task_id or '?'} #{worker.attempt}" if worker.attempt else worker.task_id or "?"
        return f"{what} of {worker.session_id}"
    return worker.current_job or "-"


def lease(worker: Any, now: float) -> str:
    """Time left on the attempt's lease (both on the Redis clock), or how long ago it ran out."""
    from graflow.cli.live import span

    if worker.lease_deadline is None:
        return "-"
    left = worker.lease_deadline - now
    return f"{span(left)} left" if left >= 0 else f"expired {span(-left)} ago"


def row(worker: Any, now: float, redis_now: float) -> list[str]:
    from graflow.cli.live import span

    process = f"{worker.hostname or '?'}:{worker.pid}" if worker.pid is not None else worker.hostname or "-"
    since = span(max(0.0, now - worker.started_at)) if worker.started_at is not None else "-"
    jobs = f"{worker.successful} ok" + (f", {worker.failed} failed" if worker.failed else "")
    return [worker.name, worker.state, ",".join(worker.queues) or "-", process, running(worker), since,
            lease(worker, redis_now), jobs]  # fmt: skip


@click.command("workers", short_help="list the pool's workers",
               help="List the rq workers (those serving --queue, or all on the Redis), sorted by name: "
                    "state, queues, host and pid, the attempt each runs (task, attempt and run, for a "
                    "run under the key prefix), for how long, and its lease. A worker whose rq "
                    "heartbeat expired while it is still registered is 'lost'.")  # fmt: skip
@pool_options
@click.option("--queue", "queues", multiple=True, metavar="Q",
              help="only workers serving this queue; repeatable or comma-separated")  # fmt: skip
@click.option("--json", "json_output", is_flag=True, help="one JSON document: a list of workers")
@handler
def command(args: Any) -> int:
    from graflow import settings
    from graflow.distributed.pool_workers import snapshot
    from graflow.distributed.run import connect
    from graflow.identifiers import check_key_prefix, check_queue_name
    from graflow.redisconn import wrap_connection_errors

    prefix = check_key_prefix(key_prefix(args.prefix), "--prefix")
    queues = [check_queue_name(q.strip(), "--queue") for value in args.queues for q in value.split(",") if q.strip()]
    client, url = connect(redis_url(args.url))
    with wrap_connection_errors(url):
        seen = snapshot(client, prefix, list(dict.fromkeys(queues)) or None, lease_seconds=settings.current().heartbeat)
    if args.json_output:
        print(json.dumps([w.to_dict() for w in seen.workers], sort_keys=True))
    elif not seen.workers:
        print("no rq workers" + (f" serving {', '.join(queues)}" if queues else " registered"))
    else:
        from graflow.cli.runs import table

        now = time.time()
        print(table([list(_COLUMNS), *(row(w, now, seen.now) for w in seen.workers)]))
    return EXIT_OK
