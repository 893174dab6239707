"""``graflow status SESSION``: a run's state, counts and recent events."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
from typing import Any

from graflow.cli.common import EXIT_OK, key_prefix, redis_url


def register(sub: Any) -> None:
    cmd = sub.add_parser("status", help="show the state of a pooled run")
    cmd.add_argument("session", help="session id (printed by submit)")
    cmd.add_argument("--url", default=None)
    cmd.add_argument("--prefix", default=None)
    cmd.add_argument("--json", action="store_true", help="print the status as JSON (no events)")
    cmd.add_argument("--watch", action="store_true", help="refresh every second until the run ends")
    cmd.set_defaults(handler=run)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(run: Any, status: Any) -> str:
    lines = [
        f"session     {status.session_id}",
        f"state       {status.state}" + (f" ({status.stop_reason})" if status.stop_reason else ""),
        f"progress    {status.completed} completed, {status.pending} pending, {status.running} running; "
        f"steps {status.steps}/{status.max_steps}",
        f"created     {_when(status.created_at)}   updated {_when(status.updated_at)}",
    ]
    if status.failed_task or status.error:
        kind = status.extra.get("error_type") or ""  # e.g. TaskUnrunnableError: what to look up
        lines.append(f"error       {status.failed_task or '-'}: {kind + ': ' if kind else ''}{status.error or ''}")
    if status.last_checkpoint:
        lines.append(f"checkpoint  {status.last_checkpoint}")
    events = run.store.events(20)
    if events:
        lines.append("events")
        for ev in events:
            stamp = _dt.datetime.fromtimestamp(ev["time"], tz=_dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            data = ev["data"]
            what = data.get("task_id") or data.get("group_id") or data.get("spec_id", "")[:8]
            extra = {k: v for k, v in data.items() if k not in ("task_id", "spec_id", "group_id")}
            lines.append(f"  {stamp}  {ev['event']:<13} {what}  {json.dumps(extra, sort_keys=True)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from graflow.distributed import WorkflowRun
    from graflow.distributed.outage import RedisOutage

    handle = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    # --watch rides out a Redis outage (the workers do too): one line when Redis is lost,
    # one when it is back, then the refreshes carry on. A single status read does not.
    outage = RedisOutage(handle.redis_url, "the run goes on on the workers, still watching")
    while True:
        try:
            status = handle.status()
            text = json.dumps(status.to_dict(), sort_keys=True) if args.json else render(handle, status)
        except Exception as exc:
            if not args.watch:
                raise
            time.sleep(outage.failed(exc, None))
            continue
        outage.ok()
        print(text, flush=True)
        if not args.watch or status.done:
            return EXIT_OK
        time.sleep(1.0)
        if not args.json:
            print()
