"""One pooled run's state in Redis: creation, the atomic steps, and consistent reads.

Its keys are listed in docs/keys.md.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec

from graflow import keys, settings
from graflow.defaults import DEFAULT_SESSION_TTL
from graflow.distributed import liveness, scripts
from graflow.limits import send_checked
from graflow.redisconn import as_text

logger = logging.getLogger("graflow.distributed")
FINAL_STATES = frozenset({"completed", "failed", "canceled", "terminated"})

_scripts: dict[str, Any] = {}
_scripts_lock = threading.Lock()
_json = msgspec.json.Encoder()


def session_ttl() -> int:
    return settings.current().session_ttl


def _script(client: Any, name: str) -> Any:
    script = _scripts.get(name)
    if script is None:
        with _scripts_lock:
            script = _scripts.get(name)
            if script is None:
                script = _scripts[name] = client.register_script(getattr(scripts, name))
    return script


def with_retry(fn: Any, what: str) -> Any:
    """Call ``fn`` until Redis answers: redis-py's ``Retry`` with exponential back-off
    (0.05 s doubling up to 2 s) for up to ``GRAFLOW_REDIS_RETRY_FOR`` seconds (60), after
    which the last connection error is raised. Steps are idempotent (first commit wins),
    so retrying cannot apply one twice."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    backoff = ExponentialBackoff(cap=2.0, base=0.025)  # compute(n) = 0.025 * 2**n: 0.05 first
    deadline = time.monotonic() + settings.current().redis_retry_for
    failures = 0

    def fail(exc: Exception) -> None:
        # Called before each back-off: the retry stops (re-raising) once the next
        # attempt would start past the deadline.
        nonlocal failures
        failures += 1
        delay = backoff.compute(failures)
        if time.monotonic() + delay > deadline:
            raise exc
        logger.warning("%s: Redis unreachable (%s); retrying in %.2fs", what, exc, delay)

    retry = Retry(backoff, -1, (redis.ConnectionError, redis.TimeoutError))
    return retry.call_with_retry(fn, fail)


def _decode(raw: Any) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(raw)
    return result


class SessionStore:
    """Reads and atomic writes of one session; ``client`` is a binary redis-py client."""

    def __init__(self, client: Any, prefix: str, session_id: str) -> None:
        self.client = client
        self.prefix = prefix
        self.session_id = session_id
        self.keys = keys.SessionKeys(prefix, session_id)

    def _run(self, name: str, argv: list[Any], largest: tuple[str, int] | None = None) -> dict[str, Any]:
        """Run step ``name`` (retried through an outage). ``largest``: (key, size) of its
        biggest blob, sized before sending so Redis refusing it is not taken for an outage."""
        script = _script(self.client, name)

        def call() -> Any:
            return script(keys=[self.keys.root], args=argv, client=self.client)

        def send() -> Any:
            return call() if largest is None else send_checked(self.client, largest[0], largest[1], call)

        raw = with_retry(send, f"session step {name}")
        out = _decode(raw)
        if out.get("status") == "finished":
            # The run just ended: its graph's TTL starts now (graflow.distributed.liveness).
            # The step is committed whatever happens here; the reaper's sweep repairs a miss.
            try:
                with_retry(lambda: liveness.release(self.client, self.prefix, self.session_id), "release of a run's graph")
            except Exception:
                logger.warning("session %s ended; its graph's TTL starts at the next sweep", self.session_id, exc_info=True)
        return out

    # -- creation ------------------------------------------------------------------
    def create(
        self, fields: dict[str, Any], pending: dict[str, bytes], *, replace: bool = False, pipeline: Any = None
    ) -> None:
        """Write a new session (state ``queued``) and its first activations in one transaction
        (queued on ``pipeline`` when given: the caller adds to it and executes it)."""
        pipe = pipeline if pipeline is not None else self.client.pipeline(transaction=True)
        if replace:
            for name in (self.keys.pending, self.keys.running, self.keys.handover):
                pipe.delete(name)
        now = time.time()
        meta = {"state": "queued", "created_at": now, "updated_at": now, "seq": 0, **fields}
        pipe.hset(self.keys.meta, mapping={k: _field(v) for k, v in meta.items()})
        if pending:
            pipe.hset(self.keys.pending, mapping=pending)
        if pipeline is None:
            pipe.execute()

    # -- the atomic steps ----------------------------------------------------------
    def start(self, spec_id: str, worker: str, attempt: int, base_id: str, count_cycle: bool) -> dict[str, Any]:
        argv = [spec_id, worker, attempt, time.time(), base_id, "1" if count_cycle else "0"]
        return self._run("START", argv)

    def commit(self, control: dict[str, Any], blobs: list[bytes], names: list[str] | None = None) -> dict[str, Any]:
        """The COMMIT step; ``names`` label ``blobs`` (channel keys) for a size error."""
        control.setdefault("now", time.time())
        control.setdefault("ttl", session_ttl())
        return self._run("COMMIT", [_json.encode(control), *blobs], _largest(blobs, names))

    def fail(self, control: dict[str, Any], blobs: list[bytes] | None = None) -> dict[str, Any]:
        control.setdefault("now", time.time())
        control.setdefault("ttl", session_ttl())
        return self._run("FAIL", [_json.encode(control), *(blobs or [])])

    def group_start(self, control: dict[str, Any]) -> dict[str, Any]:
        control.setdefault("now", time.time())
        return self._run("GROUP_START", [_json.encode(control)])

    def redeliver(
        self, spec_id: str, attempt: int, new_spec: bytes, worker: str, *, unrunnable: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Put a lost attempt's activation back to pending as ``new_spec`` (idempotent).

        ``unrunnable`` ({task_id, error}): the attempt was not lost but could not load its
        task on ``worker``; the event says so (``unrunnable``) instead of ``redelivered``.
        """
        control: dict[str, Any] = {"spec_id": spec_id, "attempt": attempt, "spec": new_spec.decode(),
                                   "worker": worker, "now": time.time()}  # fmt: skip
        if unrunnable:
            control["unrunnable"] = unrunnable
        return self._run("REDELIVER", [_json.encode(control)])

    def note_checkpoint(self, location: str, clear: tuple[str, ...] = ()) -> bool:
        """Record the run's latest checkpoint (and drop the ``clear`` fields); False when
        the session no longer exists, which is then left alone."""
        return self._run("NOTE_CHECKPOINT", [location, *clear]).get("status") == "ok"

    def end_run(
        self,
        state: str,
        stop_reason: str,
        message: str = "",
        fields: dict[str, str] | None = None,
        *,
        error_blob: bytes = b"",
        force: bool = False,
    ) -> dict[str, Any]:
        """End the run from outside a task (cancel, a rejected payload, a lost graph).

        ``fields`` (e.g. ``error_type``, ``failed_task``) and ``error_blob`` are written in
        the same step, and only when this call ends the run: a finished run's record is
        never altered, unless ``force`` (for the worker whose own step just ended it).
        """
        extra = _json.encode(fields).decode() if fields else ""
        argv = [state, stop_reason, message, time.time(), session_ttl(), extra, error_blob, "1" if force else "0"]
        return self._run("END_RUN", argv)

    # -- reads ---------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.exists(self.keys.meta))

    def meta(self) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.meta)
        return {as_text(k): as_text(v) for k, v in raw.items() if as_text(k) != "error_blob"}

    def error_blob(self) -> bytes | None:
        blob: bytes | None = self.client.hget(self.keys.meta, "error_blob")
        return blob

    def status_snapshot(self) -> tuple[dict[str, str], int, int, int]:
        """(meta, completed, pending, running) read in one MULTI for a consistent view."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.meta)
        pipe.zcard(self.keys.completed)
        pipe.hlen(self.keys.pending)
        pipe.hlen(self.keys.running)
        meta, completed, pending, running = pipe.execute()
        fields = {as_text(k): as_text(v) for k, v in meta.items() if as_text(k) != "error_blob"}
        return fields, int(completed), int(pending), int(running)

    def snapshot(self) -> dict[str, Any]:
        """The scheduling state in one MULTI (the same fields the commit script snapshots)."""
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(k.meta, "steps")
        pipe.zrange(k.completed, 0, -1)
        for name in (k.cycles, k.retries, k.joins):
            pipe.hgetall(name)
        pipe.smembers(k.known)
        pipe.hvals(k.pending)
        pipe.hvals(k.running)
        steps, completed, cycles, retries, joins, known, pending, running = pipe.execute()

        def flat(d: dict[Any, Any]) -> list[Any]:
            return [x for kv in d.items() for x in kv]

        return {
            "steps": int(steps or 0),
            "completed": [as_text(c) for c in completed],
            "cycles": flat(cycles),
            "retries": flat(retries),
            "joins": flat(joins),
            "known": [as_text(t) for t in known],
            "pending": pending,
            "running": running,
        }

    def group(self, run: str) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.group(run))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    def is_known(self, task_id: str) -> bool:
        return bool(self.client.sismember(self.keys.known, task_id))

    def dynamic_blob(self, task_id: str, version: str | None = None) -> bytes | None:
        """A dynamic task's definition: the given version, else the latest."""
        blob: bytes | None = None
        if version:
            blob = self.client.get(self.keys.dynamic_task(task_id, version))
        if blob is None:
            blob = self.client.get(self.keys.dynamic_task(task_id))
        return blob

    def pending_specs(self) -> list[bytes]:
        return list(self.client.hvals(self.keys.pending))

    def completed(self) -> list[str]:
        return [as_text(t) for t in self.client.zrange(self.keys.completed, 0, -1)]

    def events(self, count: int = 20) -> list[dict[str, Any]]:
        """The last ``count`` events, oldest first."""
        out = []
        for entry_id, fields in reversed(self.client.xrevrange(self.keys.log, count=count)):
            data = {as_text(k): as_text(v) for k, v in fields.items()}
            ms = int(as_text(entry_id).split("-")[0])
            out.append({"time": ms / 1000.0, "event": data.get("event", ""), "data": _decode(data.get("data", "{}"))})
        return out

    def channel_keys(self) -> list[bytes]:
        """The session's channel data and locks, found by SCAN. The session id is data: the
        patterns escape it, and only keys whose hash tag is exactly the session id count,
        so no id (``*``, ``a}:b``…) can select another run's keys."""
        own = self.session_id.encode("utf-8", "surrogateescape")
        found: dict[bytes, None] = {}
        for pattern in keys.session_channel_pattern(self.prefix, self.session_id):
            for name in self.client.scan_iter(match=pattern, count=1000):
                if keys.hash_tag(name) == own:
                    found[name] = None  # SCAN may repeat a key
        return list(found)

    def expire_all(self, ttl: int | None = None) -> None:
        """Give the session's channel data and locks the session TTL (the scripts cover the rest)."""
        ttl = session_ttl() if ttl is None else ttl
        pipe = self.client.pipeline(transaction=False)
        for name in self.channel_keys():
            pipe.expire(name, ttl, nx=True)  # a TTL the task chose itself stays
        pipe.execute()

    def persist_channel(self) -> None:
        """Drop the expiry a finished run gave its channel data (the run is live again)."""
        pipe = self.client.pipeline(transaction=False)
        for name in self.channel_keys():
            pipe.persist(name)
        pipe.execute()

    def purge(self) -> int:
        """Delete every key of the session; returns how many."""
        names: list[Any] = list(self.keys.fixed())
        names += [self.keys.dynamic_task(as_text(t)) for t in self.client.smembers(self.keys.known)]
        names += [self.keys.group(as_text(g)) for g in self.client.smembers(self.keys.groups)]
        names += list(self.client.smembers(self.keys.dynkeys))
        names += self.channel_keys()
        liveness.release(self.client, self.prefix, self.session_id)
        liveness.forget(self.client, self.prefix, self.session_id)
        return int(self.client.unlink(*names)) if names else 0


def _largest(blobs: list[bytes], names: list[str] | None) -> tuple[str, int] | None:
    """(name, size) of the biggest blob, for ``send_checked``; None without blobs."""
    if not blobs:
        return None
    index = max(range(len(blobs)), key=lambda i: len(blobs[i]))
    name = names[index] if names and index < len(names) else f"blob {index + 1} of the step"
    return name, len(blobs[index])


def _field(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


__all__ = ["DEFAULT_SESSION_TTL", "FINAL_STATES", "SessionStore", "session_ttl", "with_retry"]
