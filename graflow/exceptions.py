"""Every public exception and warning of graflow.

Messages name the object at fault (file, key, task id, or URL with the password
masked) and the fix. Where upstream Graflow raised a builtin, the class here also
subclasses that builtin so upstream ``except`` clauses keep working.
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from typing import Any

__all__ = [
    "AttemptSupersededError",
    "ChannelError",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointSignatureError",
    "CheckpointVersionError",
    "ConfigError",
    "CycleLimitExceededError",
    "DuplicateTaskError",
    "GraflowError",
    "GraflowRuntimeError",
    "GraflowWarning",
    "GraflowWorkflowCanceledError",
    "GraphChangedError",
    "GraphChangedWarning",
    "GraphCompilationError",
    "InvalidIdentifierError",
    "MaxStepsExceeded",
    "MissingDependencyError",
    "ParallelGroupError",
    "PayloadError",
    "PayloadSignatureError",
    "RedisUnavailableError",
    "RetryLimitExceededError",
    "SerializationError",
    "SessionNotFoundError",
    "TaskError",
    "TaskTimeoutError",
    "TaskUnrunnableError",
    "UnsignedPayloadWarning",
    "UnsupportedCheckpointLocationError",
    "UnsupportedFeatureError",
    "ValueTooLargeError",
    "WorkerLostError",
    "WorkflowFailedError",
    "as_runtime_error",
    "warn",
]


class GraflowError(Exception):
    """Root of graflow's errors; ``str()`` appends the cause."""

    def __init__(self, message: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        if self.cause is not None:
            return f"{self.message} (caused by {type(self.cause).__name__}: {self.cause})"
        return self.message

    def __reduce__(self) -> Any:
        # Exceptions with keyword-only state must survive pickling (results,
        # checkpoints and the wire all carry them).
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[GraflowError], state: dict[str, Any]) -> GraflowError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, state.get("message", ""))
    obj.__dict__.update(state)
    return obj


class GraflowRuntimeError(GraflowError):
    """A run failed."""

    def __init__(
        self, message: str = "", cause: BaseException | None = None, task_id: str | None = None
    ) -> None:
        super().__init__(message, cause)
        self.task_id = task_id


class TaskError(GraflowRuntimeError):
    """A task failed: upstream's ``TaskError(task_id, message, cause=None)``.

    ``str()`` reads ``Error in task '<task_id>': <message>`` (plus the cause), as upstream;
    ``message`` keeps that full text. Keyword calls (``message=``, ``task_id=``) still work.
    """

    def __init__(
        self, task_id: str | None = None, message: str = "", cause: BaseException | None = None
    ) -> None:
        text = f"Error in task '{task_id}': {message}" if task_id is not None else message
        super().__init__(text, cause, task_id)


class CycleLimitExceededError(GraflowRuntimeError):
    def __init__(self, task_id: str, cycle_count: int, max_cycles: int) -> None:
        super().__init__(
            f"task {task_id!r} reached its cycle limit ({cycle_count}/{max_cycles}); "
            "raise max_cycles on the task or stop iterating earlier",
            task_id=task_id,
        )
        self.cycle_count = cycle_count
        self.max_cycles = max_cycles


class RetryLimitExceededError(GraflowRuntimeError):
    def __init__(
        self, task_id: str, retry_count: int, max_retries: int, last_error: BaseException | None = None
    ) -> None:
        why = f": {last_error!r}" if last_error is not None else ""
        super().__init__(
            f"task {task_id!r} failed after {retry_count} attempts (max_retries={max_retries}){why}",
            cause=last_error,
            task_id=task_id,
        )
        self.retry_count = retry_count
        self.max_retries = max_retries
        self.last_error = last_error


class ParallelGroupError(GraflowRuntimeError):
    def __init__(
        self,
        message: str,
        group_id: str | None = None,
        failed_tasks: list[tuple[str, str]] | None = None,
        successful_tasks: list[str] | None = None,
    ) -> None:
        super().__init__(message, task_id=group_id)
        self.group_id = group_id
        self.failed_tasks = list(failed_tasks or [])
        self.successful_tasks = list(successful_tasks or [])


class GraflowWorkflowCanceledError(GraflowRuntimeError):
    def __init__(self, message: str = "workflow canceled", task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)


class WorkflowFailedError(GraflowRuntimeError):
    """``WorkflowRun.wait()`` on a failed run; ``cause`` is the task's error when loadable."""

    def __init__(
        self,
        message: str,
        task_id: str | None = None,
        error_type: str | None = None,
        remote_traceback: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause, task_id=task_id)
        self.error_type = error_type
        self.remote_traceback = remote_traceback


class WorkerLostError(GraflowRuntimeError):
    def __init__(self, task_id: str, attempts: int, last_worker: str | None = None) -> None:
        super().__init__(
            f"task {task_id!r} was lost with its worker {attempts} times "
            f"(last worker: {last_worker or 'unknown'}); it may crash the worker process "
            "(poison task) — fix the task or raise --max-redeliveries",
            task_id=task_id,
        )
        self.attempts = attempts
        self.last_worker = last_worker


class TaskUnrunnableError(GraflowRuntimeError):
    """A worker cannot load a task's code: its module does not import there, or the
    payload carries code pickled by value under another Python minor version. Counted as a
    failed attempt; the run fails once the redelivery limit is spent, instead of hanging."""

    def __init__(self, message: str, task_id: str | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message, cause=cause, task_id=task_id)


class TaskTimeoutError(GraflowRuntimeError, TimeoutError):
    """An attempt ran longer than its task's ``timeout`` (or the worker's ``--task-timeout``)."""

    def __init__(self, task_id: str, timeout: float, attempt: int | None = None) -> None:
        at = f" (attempt {attempt})" if attempt else ""
        super().__init__(
            f"task {task_id!r} ran longer than its timeout of {timeout:g} s{at} and was stopped; "
            "raise @task(timeout=...) or --task-timeout, or make the task finish sooner",
            task_id=task_id,
        )
        self.timeout = timeout
        self.attempt = attempt


class AttemptSupersededError(GraflowRuntimeError):
    """A pooled attempt wrote to its run's channel after it stopped owning its task
    (``reason`` "lost": its lease expired and another attempt took over) or after its run
    ended ("ended"): the write was dropped. Raised in the late task so it stops early."""

    def __init__(self, task_id: str, attempt: int, key: str, session_id: str = "", reason: str = "lost") -> None:
        run = f" of run {session_id}" if session_id else ""
        why = ("its run has ended" if reason == "ended" else
               "this attempt no longer owns the task (another attempt took it over after its lease expired)")  # fmt: skip
        super().__init__(
            f"task {task_id!r}{run}, attempt {attempt}: write to channel key {key!r} dropped, {why}; "
            "let the task end (do not catch this error): the data stays as the attempt that owns "
            "the task, or the finished run, left it",
            task_id=task_id,
        )
        self.attempt = attempt
        self.key = key
        self.session_id = session_id
        self.reason = reason


class GraphCompilationError(GraflowError):
    """The graph cannot be run as given (no start node, several, unknown id)."""


class DuplicateTaskError(GraflowError):
    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"task id {task_id!r} is already in this workflow's graph; "
            "give the task another id (@task('other_id') or task_id=...)"
        )
        self.task_id = task_id


class ConfigError(GraflowError, ValueError):
    """Bad configuration: unknown handler, backend or channel type; a short key."""


class InvalidIdentifierError(ConfigError):
    """A session id, key prefix or queue name outside the allowed form (refused before
    anything is written): it is data that becomes part of Redis key names."""


class SerializationError(GraflowError):
    """A task or graph that cannot be pickled."""


class PayloadError(SerializationError, pickle.UnpicklingError):
    """A corrupt or foreign payload envelope."""


class PayloadSignatureError(PayloadError):
    """An unsigned, tampered or wrongly keyed payload."""


class ChannelError(GraflowError):
    """Channel misuse."""


class RedisUnavailableError(ChannelError, ConnectionError):
    def __init__(self, url: str, cause: BaseException | None = None, detail: str = "") -> None:
        what = detail or "cannot reach Redis"
        super().__init__(
            f"{what} at {url}; start Redis there or point GRAFLOW_REDIS_URL/--url at a "
            "running server (check host, port, password and TLS)",
            cause,
        )
        self.url = url


class ValueTooLargeError(ChannelError, ValueError):
    """A value over the configured maximum size (``GRAFLOW_MAX_VALUE_BYTES``), refused
    before it is sent, so an oversized write is never mistaken for a Redis outage."""

    def __init__(self, key: str, size: int, limit: int, *, by_redis: bool = False) -> None:
        if by_redis:  # the local limit let it through; the server's own limit did not
            message = (
                f"value for {key!r} is {size:,} bytes, over Redis's proto-max-bulk-len of {limit:,} "
                "bytes (Redis closed the connection); store large data outside Redis and keep a "
                "reference in the channel, or set GRAFLOW_MAX_VALUE_BYTES at or below Redis's "
                "proto-max-bulk-len so such values fail before they are sent"
            )
        else:
            message = (
                f"value for {key!r} is {size:,} bytes, over the limit of {limit:,} bytes; store large "
                "data outside Redis (a file or object store) and keep a reference in the channel, or "
                "raise GRAFLOW_MAX_VALUE_BYTES (Redis's proto-max-bulk-len must allow it)"
            )
        super().__init__(message)
        self.key = key
        self.size = size
        self.limit = limit


class SessionNotFoundError(GraflowError, KeyError):
    def __init__(self, session_id: str, where: str = "") -> None:
        at = f" in {where}" if where else ""
        super().__init__(
            f"no graflow session {session_id!r}{at}; check the session id, the Redis URL "
            "and the key prefix (finished sessions expire after GRAFLOW_SESSION_TTL)"
        )
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError would quote the message
        return GraflowError.__str__(self)


class CheckpointError(GraflowError):
    """Any checkpoint problem."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    def __str__(self) -> str:
        return GraflowError.__str__(self)


class CheckpointCorruptError(CheckpointError, json.JSONDecodeError, pickle.UnpicklingError):
    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        # Not GraflowError.__init__: its super().__init__(message) would reach
        # json.JSONDecodeError.__init__, which needs (msg, doc, pos).
        Exception.__init__(self, message)
        self.message = message
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause
        # json.JSONDecodeError attributes, so code catching it can read them.
        self.msg = message
        self.doc = ""
        self.pos = 0
        self.lineno = 0
        self.colno = 0

    def __str__(self) -> str:
        return GraflowError.__str__(self)


class CheckpointVersionError(CheckpointError):
    """A ``schema_version`` this release cannot read."""


class GraphChangedError(CheckpointError):
    """The graph to run differs from the checkpoint's (``strict_graph=True``)."""


class CheckpointSignatureError(CheckpointError, PayloadSignatureError):
    def __str__(self) -> str:
        return GraflowError.__str__(self)


class UnsupportedCheckpointLocationError(CheckpointError, NotImplementedError):
    def __str__(self) -> str:
        return GraflowError.__str__(self)


class MissingDependencyError(GraflowError, ImportError):
    """A feature needs an optional package that is not installed (the message names the
    extra); an ``ImportError``, as upstream raised."""


class UnsupportedFeatureError(GraflowError, NotImplementedError):
    """An upstream feature graflow deliberately does not provide (the message says why and
    what to use instead)."""


class GraflowWarning(UserWarning):
    """Base of graflow's warnings."""


class MaxStepsExceeded(GraflowWarning):
    """A run stopped at ``max_steps`` with work left (see docs/execution.md)."""


class GraphChangedWarning(GraflowWarning):
    """A resumed checkpoint's graph fingerprint differs (see docs/checkpoints.md)."""


class UnsignedPayloadWarning(GraflowWarning):
    """A pickle was loaded from Redis without a signing key."""


# One warning, one line. ``warn`` both logs (the record operators see, in the log format
# of the CLI, the worker or the application, or on stderr when logging is not configured)
# and issues the warning (for programs that catch or filter it). Both used to reach stderr,
# so every warning printed twice. The log line is the display: graflow's warnings are not
# *shown* by default, as DeprecationWarning is not (the filter is appended, so every filter
# a user sets wins: ``warnings.simplefilter``, ``pytest.warns``, ``filterwarnings`` marks, and
# ``-W error::UserWarning`` or PYTHONWARNINGS on the command line still see it).
warnings.filterwarnings("ignore", category=GraflowWarning, append=True)


def warn(
    category: type[GraflowWarning], message: str, logger: logging.Logger, stacklevel: int = 3
) -> None:
    """Log a graflow warning and issue it: the log line is what is shown (see above); the
    warning is there to be caught or turned into an error (then it raises, unlogged)."""
    warnings.warn(category(message), stacklevel=stacklevel)
    logger.warning(message)


def as_runtime_error(ex: BaseException) -> GraflowRuntimeError:
    """Wrap any exception as a ``GraflowRuntimeError`` (returned unchanged if it is one)."""
    if isinstance(ex, GraflowRuntimeError):
        return ex
    return GraflowRuntimeError(f"An error occurred: {ex}", cause=ex)
