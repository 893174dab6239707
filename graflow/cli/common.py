"""What every subcommand shares: exit codes, one-line errors, loading a workflow by name."""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from graflow.exceptions import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSignatureError,
    CheckpointVersionError,
    ConfigError,
    GraflowWorkflowCanceledError,
    GraphChangedError,
    GraphCompilationError,
    PayloadError,
    RedisUnavailableError,
    SessionNotFoundError,
    UnsupportedCheckpointLocationError,
)

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REDIS = 3
EXIT_NOT_FOUND = 4
EXIT_CANCELED = 5
EXIT_TIMEOUT = 124


class CliError(Exception):
    """A user-facing error with its exit code; the message is ``<what> — <fix>``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error (the README's CLI table)."""
    if isinstance(exc, RedisUnavailableError):
        return EXIT_REDIS
    if isinstance(exc, CheckpointNotFoundError | SessionNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(
        exc,
        CheckpointCorruptError
        | CheckpointVersionError
        | CheckpointSignatureError
        | GraphChangedError
        | PayloadError
        | UnsupportedCheckpointLocationError
        | GraphCompilationError
        | ConfigError,
    ):
        return EXIT_USAGE
    if isinstance(exc, GraflowWorkflowCanceledError):
        return EXIT_CANCELED
    if isinstance(exc, TimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, CheckpointError):
        return EXIT_USAGE
    return EXIT_FAILED


def fail(message: str, code: int, exc: BaseException | None, *, debug: bool) -> int:
    if debug and exc is not None:
        traceback.print_exception(exc)
    line = error_line(message, exc is not None and not debug)
    print(f"graflow: error: {line}", file=sys.stderr)
    return code


def error_line(message: str, traceback_hint: bool = False) -> str:
    """``message`` on one line as ``<what> — <fix>``. graflow's error messages are
    written ``<what>; <fix>``: the first ``"; "`` becomes the dash, unless one is there.
    An error that names no fix (one from user code, say) gets the way to its traceback."""
    text = " ".join(message.split())
    if " — " not in text:
        what, separator, fix = text.partition("; ")
        if separator:
            text = f"{what} — {fix}"
        elif traceback_hint:
            text = f"{text or 'unexpected error'} — run `graflow --log-level DEBUG …` again for the traceback"
    return text


def load_graph(target: str) -> TaskGraph:
    """``module:attr`` → a TaskGraph; attr is a WorkflowContext, a TaskGraph or a no-arg callable."""
    from graflow.core.graph import TaskGraph
    from graflow.core.workflow import WorkflowContext

    obj = load_target(target)
    if isinstance(obj, WorkflowContext):
        return obj.graph
    if isinstance(obj, TaskGraph):
        return obj
    raise CliError(f"{target} is a {type(obj).__name__}, not a workflow — point at a WorkflowContext, a TaskGraph or a function returning one")


def load_target(target: str) -> Any:
    from graflow.core.graph import TaskGraph
    from graflow.core.workflow import WorkflowContext

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"bad workflow reference {target!r} — use module:attribute, e.g. myapp.flows:wf")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CliError(f"cannot import module {module_name!r}: {exc} — check the name and PYTHONPATH") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r} — check the name") from None
    if callable(obj) and not isinstance(obj, WorkflowContext | TaskGraph):
        obj = obj()
    return obj


def print_result(result: Any) -> None:
    try:
        print(json.dumps(result))
    except (TypeError, ValueError):
        print(repr(result))


__all__ = [
    "EXIT_CANCELED",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REDIS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "exit_code_for",
    "fail",
    "load_graph",
    "load_target",
    "print_result",
]


def redis_url(arg: str | None) -> str:
    """``--url``, else GRAFLOW_REDIS_URL, else REDIS_URL, else the local default."""
    from graflow.redisconn import with_default_password

    url = arg or os.environ.get("GRAFLOW_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://localhost:6379/0"
    return with_default_password(url)


def key_prefix(arg: str | None) -> str:
    return arg or os.environ.get("GRAFLOW_KEY_PREFIX") or "graflow"


def default_queue(prefix: str) -> str:
    """The queue ``graflow submit`` sends to: the first name in ``GRAFLOW_QUEUE``, else ``prefix``.

    Workers read the same variable (``graflow.worker.settings``), so a producer and a
    pool configured from one ``.env`` agree on the queue.
    """
    names = [n.strip() for n in (os.environ.get("GRAFLOW_QUEUE") or "").split(",") if n.strip()]
    return names[0] if names else prefix
