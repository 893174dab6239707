"""``graflow resume CHECKPOINT``: finish a run from a checkpoint, in-process (``--local``) or on the pool."""

from __future__ import annotations

from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import EXIT_OK, CliError, load_graph, print_result


@click.command("resume", short_help="resume a run from a checkpoint",
               help="Resume a run from CHECKPOINT, a checkpoint path or URL (with or without .pkl).")  # fmt: skip
@click.argument("checkpoint")
@click.option("--url", default=None, help="Redis URL (password for Redis-backed runs)")
@click.option("--queue", default=None, help="pool queue to put the pending work on")
@click.option("--local", is_flag=True, help="run the rest in this process")
@click.option("--wait", is_flag=True, help="wait for the run and print its result")
@click.option("--timeout", type=float, default=None, help="seconds to wait with --wait")
@click.option("--workflow", default=None, help="module:attr re-supplying the graph")
@click.option("--strict-graph", is_flag=True, help="refuse a changed graph")
@click.option("--force", is_flag=True, help="resume even if the session is still running")
@handler
def command(args: Any) -> int:
    graph = load_graph(args.workflow) if args.workflow else None
    if args.local:
        from graflow.core.checkpoint import CheckpointManager
        from graflow.core.engine import WorkflowEngine

        ctx, _meta = CheckpointManager.resume_from_checkpoint(
            args.checkpoint, redis_url=args.url, graph=graph, strict_graph=args.strict_graph
        )
        print_result(WorkflowEngine().execute(ctx))
        return EXIT_OK
    import importlib

    try:
        pool_resume = importlib.import_module("graflow.cli.pool_resume")
    except ModuleNotFoundError as exc:
        if exc.name != "graflow.cli.pool_resume":
            raise
        raise CliError(
            f"resuming {args.checkpoint} on the worker pool is not available in this build — "
            "add --local to finish the run in this process"
        ) from None
    return int(pool_resume.resume_on_pool(args, graph))
