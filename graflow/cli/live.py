"""Following a pooled run from a terminal: ``status`` (once or ``--watch``) and ``submit --wait``.

One ``RunWatch`` reads what changed (summary, running attempts, new events) and two
renderers show it: on a terminal with ``rich`` installed (``graflow[rich]``) a display
redrawn in place; otherwise plain lines, printed once each (a log file or a pipe gets one
line per event and per change of progress, never a repeated block). Both name tasks in
every event and mark an attempt whose lease expired as waiting for redelivery.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import time
from collections import deque
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from graflow.distributed.run import WorkflowRun
    from graflow.distributed.run_view import Event, RunningAttempt, RunSummary

LOST = "worker lost, waiting for redelivery"
_HIDDEN = ("task_id", "spec_id", "group_id")


def clock(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h10m``, ``3d4h``: short, for tables."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def progress(summary: RunSummary) -> str:
    head = f"{summary.completed}/{summary.known} tasks done" if summary.known else f"{summary.completed} tasks done"
    return (f"{head}, {summary.running} running, {summary.pending} pending; "
            f"steps {summary.steps}/{summary.max_steps}")  # fmt: skip


def state_text(summary: RunSummary) -> str:
    return summary.state + (f" ({summary.stop_reason})" if summary.stop_reason else "")


class RunWatch:
    """What the watcher knows of one run; ``refresh()`` reads what changed since."""

    def __init__(self, run: WorkflowRun, keep_events: int | None = 20) -> None:
        self.run = run
        self.keep_events = keep_events
        self.events: deque[Event] = deque(maxlen=keep_events or None)
        self.last_event: str | None = None
        self.tasks_by_spec: dict[str, str] = {}
        self.summary: RunSummary | None = None
        self.running: list[RunningAttempt] = []

    def refresh(self) -> list[Event]:
        """Read the run again; returns the events new since the last refresh."""
        self.summary = self.run.summary()
        self.running = self.run.running_attempts()
        if self.last_event is None:
            new = self.run.events(count=self.keep_events or None)
        else:
            new = self.run.events(after=self.last_event)
        for ev in new:
            if ev.task and ev.data.get("spec_id"):
                self.tasks_by_spec[str(ev.data["spec_id"])] = ev.task
        for attempt in self.running:
            self.tasks_by_spec.setdefault(attempt.spec_id, attempt.task_id)
        if new:
            self.last_event = new[-1].id
        self.events.extend(new)
        return new

    def task_of(self, ev: Event) -> str:
        spec = str(ev.data.get("spec_id") or "")
        return ev.task or self.tasks_by_spec.get(spec) or (spec[:8] if spec else "")

    def event_parts(self, ev: Event) -> tuple[str, str, str, str]:
        extra = " ".join(f"{k}={_value(v)}" for k, v in sorted(ev.data.items()) if k not in _HIDDEN)
        return clock(ev.time), ev.kind, self.task_of(ev), extra

    def event_line(self, ev: Event) -> str:
        stamp, kind, task, extra = self.event_parts(ev)
        return f"{stamp}  {kind:<13} {task}  {extra}".rstrip()


def _value(v: Any) -> str:
    return v if isinstance(v, str) and v and " " not in v else json.dumps(v)


def running_line(attempt: RunningAttempt, now: float) -> str:
    where = f"{attempt.task_id} #{attempt.attempt} on {attempt.worker or '?'}"
    if attempt.lost:
        return f"{where}: {LOST}"
    elapsed = None if attempt.started_at is None else now - attempt.started_at
    return f"{where} for {span(elapsed)}"


def text_block(watch: RunWatch, now: float | None = None) -> str:
    """The run as one block of plain text (``graflow status`` without ``--watch``)."""
    s = watch.summary
    assert s is not None
    now = time.time() if now is None else now
    lines = [
        f"session     {s.session_id}",
        f"workflow    {s.workflow or '-'}",
        f"state       {state_text(s)}",
        f"progress    {progress(s)}",
        f"created     {when(s.created_at)}   updated {when(s.updated_at)}   duration {span(s.duration(now))}",
    ]
    if s.workers:
        lines.append("workers     " + ", ".join(f"{w} ({n})" for w, n in sorted(s.workers.items())))
    if s.failed_task or s.error:
        kind = s.error_type
        lines.append(f"error       {s.failed_task or '-'}: {kind + ': ' if kind else ''}{s.error}")
    if s.last_checkpoint:
        lines.append(f"checkpoint  {s.last_checkpoint}")
    if watch.running:
        lines.append("running")
        lines.extend(f"  {running_line(a, now)}" for a in watch.running)
    if watch.events:
        lines.append("events" if watch.keep_events is None else f"events (last {len(watch.events)})")
        lines.extend(f"  {watch.event_line(ev)}" for ev in watch.events)
    return "\n".join(lines)


class PlainFollower:
    """Plain lines for a log or a pipe: each event once, and a line when a task completes,
    the run's state changes or an attempt's worker is lost."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.last_progress = ""
        self.lost: set[tuple[str, int]] = set()
        self.started = False

    def show(self, watch: RunWatch, new: list[Event]) -> None:
        s = watch.summary
        assert s is not None
        if not self.started:
            self.started = True
            print(f"session {s.session_id} ({s.workflow or 'workflow'}): {state_text(s)}", file=self.out)
        for ev in new:
            print(watch.event_line(ev), file=self.out)
        for attempt in watch.running:
            key = (attempt.spec_id, attempt.attempt)
            if attempt.lost and key not in self.lost:
                self.lost.add(key)
                print(f"{clock(time.time())}  {'lost':<13} {running_line(attempt, time.time())}", file=self.out)
        # A progress line when a task completes or the state changes; the events say the rest.
        moved = f"{s.state}:{s.completed}"
        if moved != self.last_progress:
            self.last_progress = moved
            print(f"{clock(time.time())}  {'progress':<13} {state_text(s)}: {progress(s)}", file=self.out)
        self.out.flush()

    def close(self) -> None:
        pass


class RichFollower:
    """A display redrawn in place (rich's ``Live``): header, progress bar, running attempts
    with their worker and elapsed time, the latest events. User data is shown as text,
    never parsed as markup."""

    def __init__(self, out: IO[str], transient: bool = False) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.live = Live(console=self.console, auto_refresh=False, transient=transient)
        self.live.start()

    def show(self, watch: RunWatch, new: list[Event]) -> None:
        self.live.update(self.render(watch), refresh=True)

    def render(self, watch: RunWatch) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        s = watch.summary
        assert s is not None
        now = time.time()
        style = {"completed": "green", "failed": "red", "canceled": "yellow", "terminated": "cyan"}.get(s.state, "bold")
        header = Text.assemble(Text(s.session_id, style="bold"), "  ", Text(s.workflow or "workflow"), "  ",
                               Text(state_text(s), style=style), "  ", Text(span(s.duration(now))))  # fmt: skip
        total = max(s.known, s.completed, 1)
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=total, completed=s.completed, width=40), Text(progress(s)))
        parts: list[Any] = [header, bar]
        if s.failed_task or s.error:
            parts.append(Text(f"error: {s.failed_task or '-'}: {s.error_type}: {s.error}", style="red"))
        if watch.running:
            table = Table(title=None, show_edge=False, box=None, pad_edge=False)
            for name in ("task", "attempt", "worker", "elapsed"):
                table.add_column(name)
            for a in watch.running:
                elapsed = Text(LOST, style="yellow") if a.lost else Text(span(None if a.started_at is None else now - a.started_at))
                table.add_row(Text(a.task_id), Text(str(a.attempt)), Text(a.worker or "?"), elapsed)
            parts.append(table)
        if watch.events:
            events = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
            for _ in range(4):
                events.add_column()
            for ev in watch.events:
                events.add_row(*(Text(p) for p in watch.event_parts(ev)))
            parts.append(events)
        return Group(*parts)

    def close(self) -> None:
        self.live.stop()


def _rich_available() -> bool:
    try:
        import rich.live  # noqa: F401
    except ImportError:
        return False
    return True


def follower(out: IO[str], *, transient: bool = False) -> PlainFollower | RichFollower:
    """Redraw in place on a terminal when rich is installed, else plain lines."""
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty() and _rich_available():
        return RichFollower(out, transient=transient)
    return PlainFollower(out)


class Follower(Protocol):
    def show(self, watch: RunWatch, new: list[Event]) -> None: ...

    def close(self) -> None: ...


def follow(run: WorkflowRun, out: IO[str], *, keep_events: int | None = 20, deadline: float | None = None,
           transient: bool = False, view: Follower | None = None) -> RunSummary:  # fmt: skip
    """Show ``run`` until it ends (or ``deadline``, monotonic: ``TimeoutError``); returns its
    final summary. Wakes on each event of the run, and at least every second for elapsed
    times and leases; rides out a Redis outage like ``WorkflowRun.wait``. ``view``: how to
    show it (default: ``follower(out)``)."""
    from graflow.distributed.outage import RedisOutage

    watch = RunWatch(run, keep_events)
    view = view if view is not None else follower(out, transient=transient)
    outage = RedisOutage(run.redis_url, "the run goes on on the workers, still watching")
    pubsub = None
    try:
        while True:
            try:
                if pubsub is None:
                    pubsub = run.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(run.store.keys.events)
                new = watch.refresh()
                outage.ok()
            except Exception as exc:
                _closed(pubsub)
                pubsub = None
                time.sleep(outage.failed(exc, deadline))
                continue
            view.show(watch, new)
            summary = watch.summary
            assert summary is not None
            if summary.done:
                return summary
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run.session_id} still {summary.state} ({progress(summary)})")
            try:
                _wait_events(pubsub, deadline)
            except Exception as exc:
                _closed(pubsub)
                pubsub = None
                time.sleep(outage.failed(exc, deadline))
    finally:
        _closed(pubsub)
        view.close()


def _wait_events(pubsub: Any, deadline: float | None) -> None:
    """Block until the run publishes an event or a second passes; then take what else is
    queued, so a burst of events makes one redraw."""
    left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
    if pubsub.get_message(True, left) is None:
        return
    for _ in range(10_000):
        if pubsub.get_message(True, 0.0) is None:
            break


def _closed(pubsub: Any) -> None:
    if pubsub is not None:
        with contextlib.suppress(Exception):
            pubsub.close()


__all__ = ["LOST", "Follower", "PlainFollower", "RichFollower", "RunWatch", "follow", "follower", "span", "text_block", "when"]
