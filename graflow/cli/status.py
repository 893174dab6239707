"""``graflow status SESSION``: a run's state, progress, running attempts and events; with
``--watch``, followed live until it ends (exit code: the run's)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import (
    EXIT_OK,
    exit_code_for_state,
    json_safe,
    key_prefix,
    pool_options,
    redis_url,
)


def parse_events(text: str) -> int | None:
    """``--events``: a count, or ``all`` (None)."""
    from graflow.cli.common import CliError

    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise CliError(f"bad --events {text!r} — give a number of events or 'all'")
    return count


def status_document(run: Any) -> dict[str, Any]:
    """``status --json``: the status, the run's result once it completed (or the failing
    task, error type and message once it failed), and the running attempts."""
    status = run.status()
    doc: dict[str, Any] = status.to_dict()
    doc["running_attempts"] = [a.to_dict() for a in run.running_attempts()]
    if status.state in ("completed", "terminated"):
        last = status.extra.get("last_task") or None
        doc["result_task"] = last
        doc["result"] = json_safe(run.get_result(last)) if last else None
    return doc


class JsonLines:
    """``status --json --watch``: one document per line, each time the run's state or
    progress changes (a consumer reads them as they come)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.last: tuple[Any, ...] | None = None

    def show(self, watch: Any, new: list[Any]) -> None:
        s = watch.summary
        key = (s.state, s.completed, s.pending, s.running, tuple((a.spec_id, a.attempt, a.lost) for a in watch.running))
        if key != self.last:
            self.last = key
            print(json.dumps(status_document(self.run), sort_keys=True), flush=True)

    def close(self) -> None:
        pass


@click.command("status", short_help="show the state of a pooled run",
               help="Show the state of the pooled run SESSION (the session id printed by submit): its "
                    "progress, running attempts and latest events. With --watch, follow it until it "
                    "ends and exit with its code (0 completed, 1 failed, 5 canceled).")  # fmt: skip
@click.argument("session")
@pool_options
@click.option("--json", "json_output", is_flag=True, help="print the status as JSON (with the result)")
@click.option("--watch", is_flag=True, help="follow the run until it ends (redrawn in place on a terminal)")
@click.option("--events", "events", default="20", show_default=True, metavar="N|all",
              help="how many of the latest events to show")  # fmt: skip
@handler
def command(args: Any) -> int:
    from graflow.cli.live import RunWatch, follow, text_block
    from graflow.distributed import WorkflowRun

    run = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    keep = parse_events(args.events)
    if args.watch:
        view = JsonLines(run) if args.json_output else None
        summary = follow(run, sys.stdout, keep_events=keep, view=view)
        return exit_code_for_state(summary.state)
    if args.json_output:
        print(json.dumps(status_document(run), sort_keys=True))
        return EXIT_OK
    watch = RunWatch(run, keep)
    watch.refresh()
    print(text_block(watch))
    return EXIT_OK
