"""``graflow resume CHECKPOINT`` (without ``--local``): put the run's pending work back on the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow.cli.common import EXIT_OK, redis_url
from graflow.cli.submit import wait_and_print

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph


def resume_on_pool(args: Any, graph: TaskGraph | None) -> int:
    from graflow.distributed import WorkflowRun

    run = WorkflowRun.resume(
        args.checkpoint,
        redis_url(args.url) if args.url else None,
        queue=args.queue,
        graph=graph,
        strict_graph=args.strict_graph,
        force=args.force,
    )
    print(run.session_id, flush=True)
    if args.wait:
        return wait_and_print(run, args.timeout)
    return EXIT_OK
