"""A producer's view of a Redis outage: ride it out with backoff, say so once.

Workers retry their session steps while Redis restarts (``session.with_retry``), so a
run goes on after a short outage; a producer waiting for it (``WorkflowRun.wait``,
``graflow submit --wait``, ``graflow status --watch``) must not give up sooner than the
workers do. ``RedisOutage`` decides whether an error is an outage (connection refused
or reset, timeouts, a server still loading its data) rather than a refusal (bad
credentials, missing permission), paces the retries, and logs one line when Redis
becomes unreachable and one when it is back, whatever the number of attempts between.
"""

from __future__ import annotations

import logging
import time

from redis.backoff import ExponentialBackoff

from graflow.redisconn import is_outage, mask_url

logger = logging.getLogger("graflow.distributed")

#: Backoff between attempts while Redis is unreachable: first delay and cap (seconds).
#: The cap keeps a producer within a couple of seconds of a Redis that came back.
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


class RedisOutage:
    """Retry pacing and the two log lines of one waiter (not thread-safe: one per loop)."""

    def __init__(self, url: str, what: str) -> None:
        self.url = mask_url(url)
        self.what = what  # e.g. "the run goes on on the workers, still waiting"
        self.since: float | None = None
        self.failures = 0
        # redis-py's back-off (compute(n) = FIRST_DELAY/2 * 2**n, capped); not its Retry:
        # a waiter's loop does its own work between attempts and logs the outage once.
        self.backoff = ExponentialBackoff(cap=MAX_DELAY, base=FIRST_DELAY / 2)

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, deadline: float | None) -> float:
        """The seconds to sleep before the next attempt after ``exc``.

        Re-raises ``exc`` when it is not an outage, or when the next attempt would come
        after ``deadline`` (``time.monotonic()`` seconds; None waits forever).
        """
        if not is_outage(exc):
            raise exc
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise exc
        if self.since is None:
            self.since = now
            logger.warning("Redis at %s is unreachable; %s… (%s)", self.url, self.what, _reason(exc))
        self.failures += 1
        delay = float(self.backoff.compute(self.failures))
        return delay if deadline is None else max(0.0, min(delay, deadline - now))

    def ok(self) -> None:
        """Redis answered: log that it is back, once, after an outage."""
        if self.since is not None:
            logger.warning(
                "Redis at %s is reachable again after %.1f s; carrying on", self.url, time.monotonic() - self.since
            )
        self.since = None
        self.failures = 0


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return f"{type(cause).__name__}: {cause}"


__all__ = ["FIRST_DELAY", "MAX_DELAY", "RedisOutage"]
