"""``graflow result SESSION``: a finished run's result (or one task's), as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import (
    EXIT_CANCELED,
    EXIT_FAILED,
    EXIT_NOT_FINISHED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    CliError,
    json_safe,
    key_prefix,
    pool_options,
    redis_url,
)

_MISSING = object()


@click.command("result", short_help="print a finished run's result",
               help="Print the result of the pooled run SESSION as JSON (repr for values JSON cannot "
                    "hold): the last completed task's, or with --task that task's. Exit 0 with a "
                    "result, 1 failed, 4 unknown session or task, 5 canceled, 6 not finished yet.")  # fmt: skip
@click.argument("session")
@pool_options
@click.option("--task", "task_id", default=None, metavar="ID", help="the result of this task instead")
@click.option("--json", "json_output", is_flag=True,
              help="print a document: session, state, task, result (or the error)")  # fmt: skip
@handler
def command(args: Any) -> int:
    from graflow.distributed import WorkflowRun

    run = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    status = run.status()
    doc: dict[str, Any] = {"session_id": run.session_id, "state": status.state}
    if args.task_id is not None:
        value = run.get_result(args.task_id, _MISSING)
        if value is _MISSING:
            raise CliError(f"run {args.session} has no result for task {args.task_id!r} — it has not "
                           "completed, or is not a task of this run", EXIT_NOT_FOUND)  # fmt: skip
        return _print(doc | {"task": args.task_id, "result": json_safe(value)}, args.json_output, EXIT_OK)
    if not status.done:
        raise CliError(f"run {args.session} has not finished ({status.state}, {status.completed} tasks done) — "
                       f"`graflow status {args.session} --watch` follows it", EXIT_NOT_FINISHED)  # fmt: skip
    if status.state == "failed":
        error = {"task": status.failed_task, "type": status.error_type, "message": status.error}
        if args.json_output:
            return _print(doc | {"error": error}, True, EXIT_FAILED)
        raise CliError(f"run {args.session} failed in task {status.failed_task!r}: {status.error_type}: "
                       f"{status.error} — `graflow logs {args.session}` shows what it printed", EXIT_FAILED)  # fmt: skip
    if status.state == "canceled":
        if args.json_output:
            return _print(doc | {"error": {"task": status.failed_task, "message": status.error}}, True, EXIT_CANCELED)
        raise CliError(f"run {args.session} was canceled: {status.error or 'no reason given'} — it has no "
                       "result", EXIT_CANCELED)  # fmt: skip
    last = status.extra.get("last_task") or None
    value = run.get_result(last) if last else None
    return _print(doc | {"task": last, "result": json_safe(value)}, args.json_output, EXIT_OK)


def _print(doc: dict[str, Any], whole: bool, code: int) -> int:
    print(json.dumps(doc if whole else doc.get("result"), sort_keys=whole))
    return code
