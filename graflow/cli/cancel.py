"""``graflow cancel SESSION``: end a pooled run now and stop its running attempts."""

from __future__ import annotations

from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import (
    EXIT_ALREADY_ENDED,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
    key_prefix,
    pool_options,
    redis_url,
)


@click.command("cancel", short_help="cancel a pooled run",
               help="Cancel the pooled run SESSION: its queued tasks are dropped and its running "
                    "attempts stopped (within heartbeat/3 s); the workers take their next jobs. A run "
                    "that has already ended is left alone (exit 7).")  # fmt: skip
@click.argument("session")
@pool_options
@click.option("--reason", default="canceled by operator", show_default=True, help="recorded as the run's error")
@click.option("--wait", is_flag=True, help="return once no attempt of the run is running any more")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds to wait with --wait")
@handler
def command(args: Any) -> int:
    from graflow.distributed import WorkflowRun

    run = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    if not run.cancel(args.reason):
        status = run.status()
        raise CliError(f"run {args.session} had already ended ({status.state}); nothing to cancel — "
                       f"`graflow status {args.session}` shows how it ended", EXIT_ALREADY_ENDED)  # fmt: skip
    print(f"canceled {args.session}", flush=True)
    if args.wait:
        try:
            run.wait_stopped(args.timeout)
        except TimeoutError as exc:
            raise CliError(f"{exc} — they stop at their worker's next heartbeat; a lost worker's "
                           "attempt is cleared when the pool reaps its lease", EXIT_TIMEOUT) from exc  # fmt: skip
        print(f"no attempt of {args.session} is running", flush=True)
    return EXIT_OK
