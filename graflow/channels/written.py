"""The channel keys one pooled attempt wrote, noted in memory as it writes them.

Why: a run's dashboard shows, for a task, which channel keys it wrote. The attempt-bound
channel (``graflow.channels.fenced``) notes each key a write of it changed, here, at the
cost of one dict lookup per write; the pool driver sends the lot in one round trip before
the attempt's session step (``graflow.distributed.run_writes``), none when it is empty.
At most ``WRITTEN_KEYS_CAP`` distinct keys are kept, then ``more`` says others were
written too. Threads the task starts share its channel, so their writes count; a copy of
the channel pickled to another process notes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graflow.defaults import WRITTEN_KEYS_CAP

__all__ = ["WrittenKeys"]


class WrittenKeys:
    """Keys in the order first written; ``more``: a key past the cap was written too.

    ``add`` needs no lock: a dict's operations are atomic, and two threads racing past the
    cap add at most one key each, which ``take`` trims."""

    __slots__ = ("cap", "keys", "more")

    def __init__(self, cap: int = WRITTEN_KEYS_CAP) -> None:
        self.cap = cap
        self.keys: dict[str, None] = {}
        self.more = False

    def add(self, key: str) -> None:
        keys = self.keys
        if key in keys:
            return
        if len(keys) < self.cap:
            keys[key] = None
        else:
            self.more = True

    def __bool__(self) -> bool:
        return bool(self.keys) or self.more

    def take(self) -> tuple[list[str], bool]:
        """What was noted since the last ``take`` (keys, more), and start afresh."""
        keys, more = self.keys, self.more
        self.keys, self.more = {}, False
        noted = list(keys)
        return noted[: self.cap], more or len(noted) > self.cap

    @contextmanager
    def unnoted(self, key: str) -> Iterator[None]:
        """A write of ``key`` by the machinery (a failed task's exception stored as its
        result), not by the task: noted only if the task had written it already."""
        had = key in self.keys
        try:
            yield
        finally:
            if not had:
                self.keys.pop(key, None)
