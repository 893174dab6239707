"""``graflow resume CHECKPOINT``: finish a run from a checkpoint, in-process (``--local``) or on the pool."""

from __future__ import annotations

import argparse
from typing import Any

from graflow.cli.common import EXIT_OK, CliError, load_graph, print_result


def register(sub: Any) -> None:
    cmd = sub.add_parser("resume", help="resume a run from a checkpoint")
    cmd.add_argument("checkpoint", help="checkpoint path or URL (with or without .pkl)")
    cmd.add_argument("--url", default=None, help="Redis URL (password for Redis-backed runs)")
    cmd.add_argument("--queue", default=None, help="pool queue to put the pending work on")
    cmd.add_argument("--local", action="store_true", help="run the rest in this process")
    cmd.add_argument("--wait", action="store_true", help="wait for the run and print its result")
    cmd.add_argument("--timeout", type=float, default=None, help="seconds to wait with --wait")
    cmd.add_argument("--workflow", default=None, help="module:attr re-supplying the graph")
    cmd.add_argument("--strict-graph", action="store_true", help="refuse a changed graph")
    cmd.add_argument("--force", action="store_true", help="resume even if the session is still running")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
