"""``graflow submit module:attr``: hand a workflow to the pool; optionally wait for it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from graflow.cli.common import (
    EXIT_OK,
    CliError,
    default_queue,
    key_prefix,
    load_graph,
    print_result,
    redis_url,
)


def register(sub: Any) -> None:
    cmd = sub.add_parser("submit", help="submit a workflow to the worker pool")
    cmd.add_argument("target", metavar="module:attr", help="a WorkflowContext, TaskGraph or a function returning one")
    cmd.add_argument("--url", default=None, help="Redis URL (default: $GRAFLOW_REDIS_URL, $REDIS_URL, localhost)")
    cmd.add_argument("--queue", default=None, help="queue the workers serve (default: the first name in $GRAFLOW_QUEUE, else the prefix)")
    cmd.add_argument("--prefix", default=None, help="key prefix (default: $GRAFLOW_KEY_PREFIX or graflow)")
    cmd.add_argument("--start-node", default=None, help="task to start from (default: the single start candidate)")
    cmd.add_argument("--max-steps", type=int, default=10000)
    cmd.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="initial channel value")
    cmd.add_argument("--wait", action="store_true", help="wait for the run and print its result")
    cmd.add_argument("--timeout", type=float, default=None, help="seconds to wait with --wait")
    cmd.set_defaults(handler=run)


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
    print_result(run.wait(timeout=timeout))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from graflow.distributed import submit

    graph = load_graph(args.target)
    prefix = key_prefix(args.prefix)
    handle = submit(
        graph,
        redis_url(args.url),
        queue=args.queue or default_queue(prefix),
        initial_channel=parse_sets(args.set),
        start_node=args.start_node,
        max_steps=args.max_steps,
        key_prefix=prefix,
    )
    print(handle.session_id, flush=True)
    if args.wait:
        return wait_and_print(handle, args.timeout)
    return EXIT_OK
