"""The largest value graflow sends to Redis in one piece, checked before it is sent.

Redis refuses a bulk string longer than its ``proto-max-bulk-len`` (512 MB by default,
configurable down to 1 MB) by closing the connection mid-write, which redis-py reports
as "Broken pipe" or "Connection reset": exactly what a lost server looks like. A worker
would then retry the write for a minute and redeliver the task as if Redis had gone. So
every value graflow writes (channel values, task results, error blobs, graphs, dynamic
tasks) is measured first, and one over ``GRAFLOW_MAX_VALUE_BYTES`` fails at once with
``ValueTooLargeError`` naming the key and the size.

The default, 64 MiB, sits well under Redis's 512 MB hard limit because one value costs
several copies on the way (the client's buffer, Redis's query buffer, a Lua ARGV copy
for results, the AOF and the replication stream, where a replica's output buffer has a
64 MB soft limit by default) and because a value that large blocks Redis's single thread
while it is copied. Large data belongs in a file or object store, with a reference in
the channel.

Should Redis still close the connection on a write (a server configured with a lower
``proto-max-bulk-len`` than the limit here), ``send_checked`` asks the server for its
``proto-max-bulk-len``; when the value was over it, the write fails with
``ValueTooLargeError`` rather than passing for an outage.

It also holds the poison-task limit (``max_redeliveries``): the worker installs its
settings (``--max-redeliveries``), so every path that redelivers a task counts against one limit.

This is a ground-floor module: the standard library, ``graflow.defaults``,
``graflow.exceptions`` and ``graflow.settings`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from graflow import settings
from graflow.defaults import DEFAULT_MAX_VALUE_BYTES
from graflow.exceptions import ValueTooLargeError

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "ENV_VAR",
    "check_value_size",
    "max_redeliveries",
    "max_value_bytes",
    "send_checked",
]

ENV_VAR = "GRAFLOW_MAX_VALUE_BYTES"

#: Redis's smallest allowed ``proto-max-bulk-len``: a smaller write is never refused for size.
_MIN_BULK_LEN = 1024 * 1024

T = TypeVar("T")


def max_value_bytes() -> int:
    """``GRAFLOW_MAX_VALUE_BYTES`` (bytes) of the process's settings; unset, empty or 0 means
    the default (64 MiB)."""
    return settings.current().max_value_bytes


def check_value_size(key: str, size: int) -> None:
    """Raise ``ValueTooLargeError`` for a value of ``size`` bytes over the limit, before it is sent."""
    limit = max_value_bytes()
    if size > limit:
        raise ValueTooLargeError(key, size, limit)


def send_checked(client: Any, key: str, size: int, send: Callable[[], T]) -> T:
    """``check_value_size``, then ``send()``; a connection Redis closed on a value over its
    own ``proto-max-bulk-len`` becomes ``ValueTooLargeError`` instead of a lost server.

    The error is raised outside the ``except`` block on purpose: it carries no connection
    error in its context, so nothing downstream mistakes it for an outage.
    """
    check_value_size(key, size)
    import redis

    try:
        return send()
    except (redis.ConnectionError, redis.ResponseError) as exc:
        # Redis replies "Protocol error: invalid bulk length" and closes the connection;
        # depending on timing redis-py sees the reply or only the reset while writing.
        refused = isinstance(exc, redis.ConnectionError) or "invalid bulk length" in str(exc)
        if not refused or size <= _MIN_BULK_LEN:
            raise
        server_limit = _server_bulk_limit(client)
        if server_limit is None or size <= server_limit:
            raise  # Redis is gone (or will not say): an outage, as before
    raise ValueTooLargeError(key, size, server_limit, by_redis=True)


def _server_bulk_limit(client: Any) -> int | None:
    """Redis's ``proto-max-bulk-len``, or None when the server does not answer or say."""
    try:
        reply = client.config_get("proto-max-bulk-len")
    except Exception:
        return None
    for name, value in (reply or {}).items():
        if (name.decode() if isinstance(name, bytes) else str(name)) == "proto-max-bulk-len":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def max_redeliveries() -> int:
    """The poison-task limit (see docs/failover.md) of the process's settings: a worker's
    ``--max-redeliveries`` (it installs its settings), else ``GRAFLOW_MAX_REDELIVERIES``, else 3."""
    return settings.current().max_redeliveries
