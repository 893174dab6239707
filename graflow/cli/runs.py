"""``graflow runs``: the runs under a prefix, newest first, from the run index."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import (
    EXIT_OK,
    CliError,
    key_prefix,
    parse_duration,
    pool_options,
    redis_url,
)

STATES = ("queued", "running", "completed", "failed", "canceled", "terminated")
_COLUMNS = ("SESSION", "WORKFLOW", "STATE", "PROGRESS", "AGE", "DURATION", "WORKERS")


def _states(values: tuple[str, ...]) -> list[str]:
    out = [v.strip().lower() for value in values for v in value.split(",") if v.strip()]
    for state in out:
        if state not in STATES:
            raise CliError(f"unknown state {state!r} for --state — use one of {', '.join(STATES)}")
    return out


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart (plain text: grep and cut work on it)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def row(summary: Any, now: float) -> list[str]:
    from graflow.cli.live import span

    done = f"{summary.completed}/{summary.known}" if summary.known else str(summary.completed)
    if summary.running:
        done += f" ({summary.running} running)"
    workers = ", ".join(sorted(summary.workers)) or "-"
    state = summary.state + (f": {summary.failed_task}" if summary.state == "failed" and summary.failed_task else "")
    return [summary.session_id, summary.workflow or "-", state, done, span(summary.age(now)),
            span(summary.duration(now)), workers]  # fmt: skip


@click.command("runs", short_help="list the runs under a prefix",
               help="List the pooled runs under the key prefix, newest first: state, progress "
                    "(tasks done / known), age, duration and the workers that ran them. Runs stay "
                    "listed until their keys expire (GRAFLOW_SESSION_TTL after they end).")  # fmt: skip
@pool_options
@click.option("--state", "states", multiple=True, metavar="STATE",
              help=f"only runs in this state ({', '.join(STATES)}); repeatable or comma-separated")  # fmt: skip
@click.option("--workflow", default=None, metavar="NAME", help="only runs of this workflow")
@click.option("--since", default=None, metavar="DURATION", help="only runs created in the last DURATION (30m, 2h, 7d)")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="at most N runs")
@click.option("--json", "json_output", is_flag=True, help="one JSON document: a list of runs")
@handler
def command(args: Any) -> int:
    from graflow.distributed import WorkflowRun

    prefix = key_prefix(args.prefix)
    states = _states(tuple(args.states))
    now = time.time()
    since = now - parse_duration(args.since) if args.since else None
    runs = WorkflowRun.list_runs(redis_url(args.url), key_prefix=prefix, states=tuple(states),
                                 workflow=args.workflow, since=since, limit=args.limit)  # fmt: skip
    if args.json_output:
        print(json.dumps([r.to_dict() for r in runs], sort_keys=True))
    elif not runs:
        print(f"no runs under prefix {prefix!r}" + (" matching the filters" if states or args.workflow or since else ""))
    else:
        print(table([list(_COLUMNS), *(row(r, now) for r in runs)]))
    return EXIT_OK
