"""``graflow submit module:attr``: hand a workflow to the pool; optionally wait for it."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import (
    EXIT_CANCELED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
    default_queue,
    key_prefix,
    load_workflow,
    print_result,
    redis_url,
)


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"bad --set {item!r} — use KEY=JSON, e.g. --set n=5 or --set name='\"x\"'")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CliError(f"--set {key}: {raw!r} is not JSON ({exc.msg}) — quote strings, e.g. '\"text\"'") from None
    return out


def wait_and_print(run: Any, timeout: float | None) -> int:
    """Wait for ``run`` and print its result; an outcome other than a result is a one-line
    error saying what happened and where to look next, with its exit code. On a terminal,
    the run's progress is shown on stderr while it runs."""
    from graflow.exceptions import GraflowWorkflowCanceledError, WorkflowFailedError

    status = f"graflow status {run.session_id}"
    try:
        if sys.stderr.isatty():
            # The same live progress as `status --watch`, on stderr: stdout keeps the result.
            import time

            from graflow.cli.live import follow

            started = time.monotonic()
            follow(run, sys.stderr, keep_events=10, deadline=None if timeout is None else started + timeout)
            timeout = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        result = run.wait(timeout=timeout)
    except TimeoutError as exc:
        raise CliError(f"{exc} — it goes on; follow it with `{status} --watch`", EXIT_TIMEOUT) from exc
    except GraflowWorkflowCanceledError as exc:
        raise CliError(f"run {run.session_id} was canceled: {exc} — `{status}` shows its events",
                       EXIT_CANCELED) from exc  # fmt: skip
    except WorkflowFailedError as exc:
        raise CliError(f"{exc} — `{status}` shows its events; once the cause is fixed, "
                       "`graflow resume` its last checkpoint", EXIT_FAILED) from exc  # fmt: skip
    print_result(result)
    return EXIT_OK


@click.command("submit", short_help="submit a workflow to the worker pool",
               help="Submit the workflow TARGET (module:attr: a WorkflowContext, TaskGraph or a function "
                    "returning one) to the worker pool; it prints the session id.")  # fmt: skip
@click.argument("target", metavar="module:attr")
@click.option("--url", default=None, help="Redis URL (default: $GRAFLOW_REDIS_URL, $REDIS_URL, localhost)")
@click.option("--queue", default=None,
              help="queue the workers serve (default: the first name in $GRAFLOW_QUEUE, else the prefix)")
@click.option("--prefix", default=None, help="key prefix (default: $GRAFLOW_KEY_PREFIX or graflow)")
@click.option("--start-node", default=None, help="task to start from (default: the single start candidate)")
@click.option("--max-steps", type=int, default=10000, show_default=True, help="the run's step limit")
@click.option("--set", "sets", multiple=True, metavar="KEY=JSON", help="initial channel value; repeatable")
@click.option("--wait", is_flag=True, help="wait for the run and print its result")
@click.option("--timeout", type=float, default=None, help="seconds to wait with --wait")
@handler
def command(args: Any) -> int:
    from graflow.distributed import submit

    graph = load_workflow(args.target)
    prefix = key_prefix(args.prefix)
    handle = submit(
        graph,
        redis_url(args.url),
        queue=args.queue or default_queue(prefix),
        initial_channel=parse_sets(list(args.sets)),
        start_node=args.start_node,
        max_steps=args.max_steps,
        key_prefix=prefix,
    )
    print(handle.session_id, flush=True)
    if args.wait:
        return wait_and_print(handle, args.timeout)
    return EXIT_OK
