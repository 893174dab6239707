"""``graflow logs SESSION``: what each task attempt of a pooled run wrote, labelled.

Each line reads ``<task> #<attempt> <worker> <stream>| <text>``, ``stream`` being stdout,
stderr, log (a ``logging`` record), omitted (the marker of a truncated attempt) or end
(the attempt's outcome; only attempts that wrote something have one). ``--follow`` streams
until the run has ended and exits with the run's code, as ``graflow submit --wait`` does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import EXIT_OK, exit_code_for_state, key_prefix, pool_options, redis_url


def render(entry: Any) -> list[str]:
    """The lines printed for one entry."""
    label = f"{entry.task_id} #{entry.attempt} {entry.worker} {entry.stream}| "
    if entry.is_end:
        return [label + entry.outcome]
    return [label + line for line in entry.lines()]


def render_json(entry: Any) -> list[str]:
    """One JSON object per line of text (its ``text`` without the newline), one per end entry."""
    doc = entry.to_dict()
    if entry.is_end:
        return [json.dumps(doc)]
    return [json.dumps({**doc, "text": line}) for line in entry.lines()]


@click.command("logs", short_help="show what the tasks of a pooled run wrote",
               help="Show what each task attempt of the pooled run SESSION wrote to stdout, stderr and "
                    "logging, labelled with task, attempt and worker.")  # fmt: skip
@click.argument("session")
@pool_options
@click.option("--task", "task_id", default=None, metavar="ID", help="only the output of task ID")
@click.option("--follow", "-f", is_flag=True,
              help="print output as it is written until the run ends; exit with the run's code "
                   "(0 completed or terminated, 1 failed, 5 canceled)")  # fmt: skip
@click.option("--json", "json_output", is_flag=True, help="one JSON object per line")
@handler
def command(args: Any) -> int:
    from graflow.distributed import WorkflowRun

    run = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    show: Callable[[Any], list[str]] = render_json if args.json_output else render
    entries: Iterable[Any] = run.follow_logs(args.task_id) if args.follow else run.logs(args.task_id)
    for entry in entries:
        for line in show(entry):
            click.echo(line)
        if args.follow:
            sys.stdout.flush()
    if not args.follow:
        return EXIT_OK
    return exit_code_for_state(run.status().state)


__all__ = ["command", "render", "render_json"]
