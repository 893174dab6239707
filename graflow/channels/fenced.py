"""A run's ``RedisChannel`` bound to one pooled attempt: its writes land only while that
attempt owns its task.

Why: a worker paused past its lease (SIGSTOP, a VM freeze, a long GC) wakes up after
another worker re-ran its task, maybe after the run ended. The session's own steps are
fenced already (first commit wins, a finished run records nothing), but a task writes
the channel directly. Here every write (set, delete, clear, append, prepend,
atomic_add, taking a lock) is one Lua script whose first step checks that the session's
running entry for the task still names this attempt and that the run is not over
(``_redis_scripts.FENCE``): still one round trip, a plain SET becomes an EVALSHA. A
refused write changes nothing, is logged once per attempt, and raises
``AttemptSupersededError`` in the task so it stops early; the worker then drops the
attempt (``graflow.distributed.pool_engine``). Reads are not fenced. Releasing a lock
stays redis-py's (it only deletes the lock this attempt holds).

Each accepted write notes its key in ``written`` (``graflow.channels.written``): set,
append, prepend, atomic_add, delete (of a key that was there) and clear (the keys it
deleted). Taking a lock writes a lock key, not a channel key: not noted.

The in-process engine never uses this class: its channels are plain ``RedisChannel``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from redis.lock import Lock

from graflow import codec, keys
from graflow.channels import _redis_scripts as lua
from graflow.channels.redis_channel import RedisChannel
from graflow.channels.written import WrittenKeys
from graflow.exceptions import AttemptSupersededError

__all__ = ["FencedRedisChannel", "superseded"]

log = logging.getLogger("graflow.channels")
#: The replies of a script that wrote its key (a conversion round or an error wrote nothing).
_WROTE = {"set": (b"ok",), "push": (b"ok",), "add": (b"i", b"f")}


class FencedRedisChannel(RedisChannel):
    """The channel of run ``name`` (a session id under ``key_prefix``) as attempt
    ``attempt`` of activation ``spec_id`` may write it.

    ``superseded`` turns True at the first write refused because another attempt owns the
    task now, and stays so: the worker reads it to drop the attempt (no retry, failure or
    result), even when the task caught the error and carried on. A write refused because
    the run has ended raises the same error but leaves the attempt to its session step,
    which knows what to do for a finished run (and clears the attempt's running entry).
    """

    _SOURCES: ClassVar[dict[str, str]] = {
        **RedisChannel._SOURCES,
        "fenced:set": lua.FENCED_SET,
        "fenced:unlink": lua.FENCED_UNLINK,
        "fenced:lock": lua.FENCED_LOCK,
        "fenced:push": lua.FENCED_PUSH,
        "fenced:add": lua.FENCED_ADD,
    }

    def __init__(
        self,
        name: str,
        redis_client: Any,
        *,
        key_prefix: str,
        spec_id: str,
        attempt: int,
        task_id: str = "",
        secret_key: codec.SecretKey = None,
    ) -> None:
        super().__init__(name, redis_client=redis_client, key_prefix=key_prefix, secret_key=secret_key)
        self._bind(spec_id, attempt, task_id)

    def _bind(self, spec_id: str, attempt: int, task_id: str) -> None:
        # The session of run S under prefix P is the channel's own: same hash tag, so the
        # check and the write stay in one cluster slot.
        session = keys.SessionKeys(self.namespace, self.name)
        self._owner_keys = [k.encode("utf-8", "surrogateescape") for k in (session.running, session.root)]
        self.spec_id = spec_id
        self.attempt = int(attempt)
        self.task_id = task_id or spec_id
        self.superseded = False
        self._logged = False
        self.written = WrittenKeys()

    def _eval(self, name: str, names: list[Any], args: list[Any], key: str) -> Any:
        reply = self._script(f"fenced:{name}")(
            keys=[*names, *self._owner_keys], args=[*args, self.spec_id, self.attempt]
        )
        tag = reply[0]
        if tag == b"superseded":
            raise self._refused(key, reply[1].decode())
        if tag in _WROTE.get(name, ()):
            self.written.add(key)
        return reply

    def _refused(self, key: str, reason: str) -> AttemptSupersededError:
        first, self._logged = not self._logged, True
        if reason == "lost":
            self.superseded = True
        (log.warning if first else log.debug)(
            "task %s (run %s, attempt %d) is superseded: its write to channel key %r was dropped; %s",
            self.task_id, self.name, self.attempt, key,
            "its run has ended" if reason == "ended" else "another attempt owns the task now",
        )  # fmt: skip
        return AttemptSupersededError(self.task_id, self.attempt, key, self.name, reason)

    def _write(self, key: str, data: bytes, px: int | None) -> None:
        self._eval("set", [self._k(key)], [data, "" if px is None else str(px)], key)

    def _unlink(self, names: list[bytes], key: str) -> int:
        deleted = int(self._eval("unlink", names, [], key)[1])
        if deleted:  # a delete of a missing key changed nothing
            cut = len(self._k(""))
            for name in names:
                self.written.add(name[cut:].decode("utf-8", "surrogateescape"))
        return deleted

    def _new_lock(self, key: str, timeout: float) -> Any:
        lk = self._redis().lock(self._lock_key(key), timeout=self.lock_lease,
                                blocking_timeout=max(timeout, 0.0), lock_class=_FencedLock)  # fmt: skip
        lk.fence = (self, key)
        return lk

    def __repr__(self) -> str:
        return (
            f"FencedRedisChannel(name={self.name!r}, namespace={self.namespace!r}, "
            f"spec_id={self.spec_id!r}, attempt={self.attempt})"
        )

    # A pickled copy stays bound to its attempt: unpickled later, it must not write freely.
    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "fence": (self.spec_id, self.attempt, self.task_id)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._bind(*state["fence"])


class _FencedLock(Lock):
    """redis-py's lock whose acquire is the fenced SET NX PX (a superseded attempt raises)."""

    fence: tuple[FencedRedisChannel, str]

    def do_acquire(self, token: str) -> bool:
        channel, key = self.fence
        px = str(int(self.timeout * 1000)) if self.timeout else ""
        return bool(int(channel._eval("lock", [self.name], [token, px], key)[1]))


def superseded(channel: Any, exc: BaseException | None = None) -> bool:
    """Whether an attempt lost its activation to another attempt: its fenced channel refused
    a write for that (the task may have caught the error), or it ended with that error."""
    lost = isinstance(exc, AttemptSupersededError) and exc.reason == "lost"
    return lost or bool(getattr(channel, "superseded", False))
