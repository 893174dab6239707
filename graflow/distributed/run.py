"""``WorkflowRun``: follow, wait for, cancel or purge a pooled run from any process."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graflow import keys
from graflow.codec import Purpose, SecretKey, loads
from graflow.distributed.outage import RedisOutage
from graflow.distributed.run_logs import LogEntry, follow_logs, read_logs
from graflow.distributed.run_view import number as _num
from graflow.distributed.session import FINAL_STATES, SessionStore
from graflow.exceptions import (
    GraflowRuntimeError,
    GraflowWorkflowCanceledError,
    MaxStepsExceeded,
    SessionNotFoundError,
    WorkflowFailedError,
    warn,
)

if TYPE_CHECKING:
    from graflow.channels.redis_channel import RedisChannel
    from graflow.core.graph import TaskGraph
    from graflow.distributed.run_view import Event, RunningAttempt, RunSummary

logger = logging.getLogger("graflow.distributed")


@dataclass
class RunStatus:
    """One consistent read of a run's state."""

    session_id: str
    state: str
    stop_reason: str | None = None
    steps: int = 0
    max_steps: int = 0
    completed: int = 0
    pending: int = 0
    running: int = 0
    failed_task: str | None = None
    error: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    last_checkpoint: str | None = None
    workflow: str | None = None
    error_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def max_steps_reached(self) -> bool:
        return self.stop_reason == "max_steps"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(done=self.done, max_steps_reached=self.max_steps_reached)
        return out


#: How long ``wait()`` waits for a checkpoint that the run's last step asked for. Past it,
#: the writer is presumed dead (its flag stays; the run's state is final regardless).
CHECKPOINT_GRACE = 30.0


def _checkpoint_in_flight(status: RunStatus) -> bool:
    try:
        since = float(status.extra.get("checkpointing") or 0)
    except ValueError:
        return False
    return since > 0 and time.time() - since < CHECKPOINT_GRACE


def connect(redis: str | Any) -> tuple[Any, str]:
    """A binary client that answers (``RedisUnavailableError`` otherwise) and the URL it
    is shown by (no password), for a URL or a redis-py client of either
    ``decode_responses``: the caller's client is used as is or a binary twin derived."""
    from graflow.redisconn import ConnectionDescriptor, client_from, wrap_connection_errors

    if isinstance(redis, str):
        client, url = client_from(url=redis), redis
    else:
        client, url = client_from(redis_client=redis), ConnectionDescriptor.from_client(redis).to_url()
    with wrap_connection_errors(url):
        client.ping()
    return client, url


class WorkflowRun:
    """A handle on a run executing on the pool."""

    def __init__(
        self,
        session_id: str,
        *,
        client: Any = None,
        redis_url: str = "redis://localhost:6379/0",
        key_prefix: str = keys.DEFAULT_PREFIX,
        secret_key: SecretKey = None,
    ) -> None:
        from graflow.identifiers import check_key_prefix, check_session_id

        # Ids are data, never patterns: refused before any command reaches Redis.
        check_session_id(session_id)
        check_key_prefix(key_prefix)
        self.session_id = session_id
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.secret_key = secret_key
        self.client = client if client is not None else connect(redis_url)[0]
        self.store = SessionStore(self.client, key_prefix, session_id)
        self._channel: RedisChannel | None = None

    @classmethod
    def attach(
        cls,
        session_id: str,
        redis_url: str = "redis://localhost:6379/0",
        *,
        key_prefix: str = keys.DEFAULT_PREFIX,
        secret_key: SecretKey = None,
    ) -> WorkflowRun:
        run = cls(session_id, redis_url=redis_url, key_prefix=key_prefix, secret_key=secret_key)
        if not run._guard(run.store.exists):
            from graflow.redisconn import mask_url

            raise SessionNotFoundError(session_id, f"{mask_url(redis_url)} under prefix {key_prefix!r}")
        return run

    @classmethod
    def resume(
        cls,
        checkpoint: str,
        redis_url: str | None = None,
        *,
        queue: str | None = None,
        secret_key: SecretKey = None,
        graph: TaskGraph | None = None,
        strict_graph: bool = False,
        force: bool = False,
    ) -> WorkflowRun:
        """Put a Redis-backed checkpoint's pending work back on the pool."""
        from graflow.distributed.pool_resume import resume_on_pool

        resumed = resume_on_pool(
            checkpoint, redis_url, queue=queue, secret_key=secret_key, graph=graph,
            strict_graph=strict_graph, force=force,
        )  # fmt: skip
        return cls(resumed.session_id, client=resumed.client, redis_url=resumed.redis_url,
                   key_prefix=resumed.key_prefix, secret_key=secret_key)  # fmt: skip

    @staticmethod
    def list_runs(
        redis: str | Any = "redis://localhost:6379/0",
        *,
        key_prefix: str = keys.DEFAULT_PREFIX,
        states: tuple[str, ...] = (),
        workflow: str | None = None,
        since: float | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        """The runs under ``key_prefix``, newest first (what ``graflow runs`` prints):
        ``states`` and ``workflow`` filter, ``since`` is a unix time; runs stay listed until
        their keys expire. ``redis``: a URL or a redis-py client."""
        from graflow.distributed.run_view import list_runs
        from graflow.identifiers import check_key_prefix
        from graflow.redisconn import wrap_connection_errors

        check_key_prefix(key_prefix)
        client, url = connect(redis)
        with wrap_connection_errors(url):
            return list_runs(client, key_prefix, states=states, workflow=workflow, since=since, limit=limit)

    def _guard(self, fn: Any, *args: Any) -> Any:
        from graflow.redisconn import wrap_connection_errors

        with wrap_connection_errors(self.redis_url):
            return fn(*args)

    @property
    def channel(self) -> RedisChannel:
        if self._channel is None:
            from graflow.channels.redis_channel import RedisChannel

            self._channel = RedisChannel(
                self.session_id, redis_client=self.client, key_prefix=self.key_prefix, secret_key=self.secret_key
            )
        return self._channel

    def status(self) -> RunStatus:
        meta, completed, pending, running = self._guard(self.store.status_snapshot)
        if not meta:
            raise SessionNotFoundError(self.session_id)
        return RunStatus(
            session_id=self.session_id,
            state=meta.get("state", "unknown"),
            stop_reason=meta.get("stop_reason") or None,
            steps=int(meta.get("steps") or 0),
            max_steps=int(meta.get("max_steps") or 0),
            completed=completed,
            pending=pending,
            running=running,
            failed_task=meta.get("failed_task") or None,
            error=meta.get("error") or None,
            created_at=_num(meta.get("created_at")),
            updated_at=_num(meta.get("updated_at")),
            last_checkpoint=meta.get("last_checkpoint") or None,
            workflow=meta.get("workflow_name") or None,
            error_type=meta.get("error_type") or None,
            extra=meta,
        )

    def summary(self) -> RunSummary:
        """The run as ``graflow runs`` lists it (progress, workers involved, timings)."""
        from graflow.distributed.run_view import summaries

        found: RunSummary | None = self._guard(summaries, self.client, self.key_prefix, [self.session_id])[0]
        if found is None:
            raise SessionNotFoundError(self.session_id)
        return found

    def running_attempts(self) -> list[RunningAttempt]:
        """Attempts running now, with their worker; ``lost`` once a lease has expired."""
        from graflow.distributed.run_view import running_attempts

        return self._guard(running_attempts, self.client, self.key_prefix, self.session_id)  # type: ignore[no-any-return]

    def events(self, *, after: str | None = None, count: int | None = None) -> list[Event]:
        """The run's events, oldest first: the last ``count`` (all by default) or those after
        event id ``after``. Each names its task (``Event.task``)."""
        from graflow.distributed.run_view import events

        return self._guard(lambda: events(self.client, self.key_prefix, self.session_id, after=after, count=count))  # type: ignore[no-any-return]

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self._guard(self.channel.get, f"{task_id}.__result__", default)

    def _final_result(self, status: RunStatus) -> Any:
        if status.state in ("completed", "terminated"):
            if status.max_steps_reached:
                warn(
                    MaxStepsExceeded,
                    f"session {self.session_id} stopped at max_steps={status.max_steps}; "
                    "resume it from a checkpoint with a higher limit to continue",
                    logger,
                )
            last = status.extra.get("last_task")
            return self.get_result(last) if last else None
        if status.state == "canceled":
            raise GraflowWorkflowCanceledError(status.error or "workflow canceled", status.failed_task)
        cause = None
        blob = self._guard(self.store.error_blob)
        if blob:
            try:
                cause = loads(blob, Purpose.VALUE, secret_key=self.secret_key, source="the run's error", from_redis=True)
            except Exception:
                cause = None
        if not isinstance(cause, BaseException):
            cause = None
        where = f"run {self.session_id} failed" + (f" in task {status.failed_task!r}" if status.failed_task else "")
        raise WorkflowFailedError(
            # With a cause, str() appends "(caused by <type>: <error>)"; repeating the
            # error text here as well would print it twice.
            where if cause is not None else f"{where}: {status.error}",
            task_id=status.failed_task,
            error_type=status.extra.get("error_type") or None,
            remote_traceback=status.extra.get("traceback") or None,
            cause=cause,
        )

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return its result or raise its error.

        A Redis outage is waited out, with backoff, for as long as ``timeout`` allows
        (forever without one): the workers ride it out too, so the run goes on. One
        warning is logged when Redis becomes unreachable and one when it is back. Errors
        that are not an outage (bad credentials, an unknown session) raise at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = RedisOutage(self.redis_url, "the run goes on on the workers, still waiting")
        while True:
            try:
                return self._wait_connected(deadline, timeout, outage)
            except Exception as exc:
                time.sleep(outage.failed(exc, deadline))  # re-raises what is not an outage

    def _wait_connected(self, deadline: float | None, timeout: float | None, outage: RedisOutage) -> Any:
        """Wait on one pub/sub connection; a lost Redis ends it with the error."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            self._guard(pubsub.subscribe, self.store.keys.events)
            while True:
                status = self.status()
                outage.ok()
                left = None if deadline is None else deadline - time.monotonic()
                expired = left is not None and left <= 0
                if status.done:
                    # The worker whose step ended the run may still be writing the checkpoint
                    # that step asked for: return once it exists (or has failed the run).
                    if expired or not _checkpoint_in_flight(status):
                        return self._final_result(status)
                    time.sleep(0.02 if left is None else max(0.0, min(0.02, left)))
                    continue
                if expired:
                    raise TimeoutError(
                        f"run {self.session_id} still {status.state} after {timeout}s "
                        f"({status.completed} completed, {status.pending} pending, {status.running} running)"
                    )
                self._guard(pubsub.get_message, True, 1.0 if left is None else max(0.0, min(1.0, left)))
        finally:
            with contextlib.suppress(Exception):  # its connection may be gone with Redis
                pubsub.close()

    def logs(self, task_id: str | None = None) -> list[LogEntry]:
        """What the run's task attempts wrote so far (stdout, stderr, logging), oldest first,
        of one task when ``task_id`` is given (see ``graflow.distributed.run_logs``)."""
        return list(self._guard(read_logs, self.client, self.key_prefix, self.session_id, task_id))

    def follow_logs(self, task_id: str | None = None) -> Iterator[LogEntry]:
        """``logs`` as it is written, until the run has ended and its output with it."""
        from graflow.redisconn import wrap_connection_errors

        with wrap_connection_errors(self.redis_url):
            yield from follow_logs(self.client, self.key_prefix, self.session_id, task_id)

    def result(self) -> Any:
        return self.wait(timeout=0)

    def cancel(self, reason: str = "canceled by user", *, wait: bool = False, timeout: float | None = None) -> bool:
        """End the run now: queued jobs are dropped; running tasks are stopped by their
        worker's heartbeat within ``heartbeat/3`` s (graflow.worker.attempt_watch) and
        schedule nothing; the workers take their next jobs. False when the run had already
        ended (nothing changes). ``wait``: return once no attempt of the run is running
        (``TimeoutError`` after ``timeout`` seconds)."""
        outcome = self._guard(self.store.end_run, "canceled", "run_canceled", reason)
        if outcome.get("status") != "finished":
            return False
        self._drop_jobs(outcome.get("pending") or [])
        self._guard(self.store.expire_all)
        if wait:
            self.wait_stopped(timeout)
        return True

    def wait_stopped(self, timeout: float | None = None, poll: float = 0.1) -> None:
        """Block until no attempt of the run is running (each stopped attempt leaves the
        session's running set; a lost worker's leaves it when the pool reaps its lease)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._guard(self.client.hlen, self.store.keys.running):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.session_id} still has running attempts after {timeout}s")
            time.sleep(poll)

    def _drop_jobs(self, pending: list[Any]) -> None:
        from graflow.distributed import dispatch

        for raw in pending:
            try:
                dispatch.drop(self.client, [raw])
            except Exception:
                logger.debug("could not drop a queued job of %s", self.session_id, exc_info=True)

    def purge(self, force: bool = False) -> None:
        """Delete every key of the session."""
        status = self.status()
        if not status.done and not force:
            raise GraflowRuntimeError(
                f"run {self.session_id} is still {status.state}; cancel it first or purge(force=True)"
            )
        self._guard(self.store.purge)

    def __repr__(self) -> str:
        return f"WorkflowRun({self.session_id!r})"


__all__ = ["RunStatus", "WorkflowRun", "connect"]
