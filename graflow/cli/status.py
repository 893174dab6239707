"""``graflow status SESSION``: a run's state, counts and recent events."""

from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any

import click

from graflow.cli import handler
from graflow.cli.common import EXIT_OK, key_prefix, redis_url


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


@click.command("status", short_help="show the state of a pooled run",
               help="Show the state of the pooled run SESSION (the session id printed by submit).")  # fmt: skip
@click.argument("session")
@click.option("--url", default=None, help="Redis URL (default: $GRAFLOW_REDIS_URL, $REDIS_URL, localhost)")
@click.option("--prefix", default=None, help="key prefix (default: $GRAFLOW_KEY_PREFIX or graflow)")
@click.option("--json", "json_output", is_flag=True, help="print the status as JSON (no events)")
@click.option("--watch", is_flag=True, help="refresh every second until the run ends")
@handler
def command(args: Any) -> int:
    from graflow.distributed import WorkflowRun
    from graflow.distributed.outage import RedisOutage

    handle = WorkflowRun.attach(args.session, redis_url(args.url), key_prefix=key_prefix(args.prefix))
    # --watch rides out a Redis outage (the workers do too): one line when Redis is lost,
    # one when it is back, then the refreshes carry on. A single status read does not.
    outage = RedisOutage(handle.redis_url, "the run goes on on the workers, still watching")
    while True:
        try:
            status = handle.status()
            text = json.dumps(status.to_dict(), sort_keys=True) if args.json_output else render(handle, status)
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
        if not args.json_output:
            print()
