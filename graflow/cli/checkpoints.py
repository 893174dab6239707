"""``graflow checkpoints list [DIR|URL] [--json]``."""

from __future__ import annotations

import json
from typing import Any

import click

from graflow.cli import handler
from graflow.exit_codes import EXIT_USAGE


@click.group("checkpoints", short_help="inspect checkpoints", help="Inspect checkpoints.",
             invoke_without_command=True)  # fmt: skip
@click.pass_context
def command(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(EXIT_USAGE)


@command.command("list", short_help="list checkpoints in a directory or URL, oldest first",
                 help="List the checkpoints in LOCATION, a directory or URL (default: $GRAFLOW_CHECKPOINT_DIR "
                      "or checkpoints), oldest first.")  # fmt: skip
@click.argument("location", required=False, default=None)
@click.option("--json", "json_output", is_flag=True, help="print one JSON array")
@handler
def run_list(args: Any) -> int:
    from graflow.core.checkpoint import CheckpointManager

    found = CheckpointManager.list_checkpoints(args.location)
    if args.json_output:
        print(json.dumps([{"location": loc, **meta.to_dict()} for loc, meta in found], indent=2))
        return 0
    for loc, meta in found:
        user = json.dumps(meta.user_metadata, sort_keys=True, default=repr)
        print(f"{loc}  id={meta.checkpoint_id}  session={meta.session_id}  steps={meta.steps}  created_at={meta.created_at}  metadata={user}")
    return 0
