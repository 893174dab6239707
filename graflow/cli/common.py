"""What every subcommand shares: exit codes and one-line errors (``graflow.exit_codes``),
the Redis URL, prefix and queue of the settings, loading a workflow by name."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from graflow import settings
from graflow.exit_codes import (
    EXIT_ALREADY_ENDED,
    EXIT_CANCELED,
    EXIT_FAILED,
    EXIT_NOT_FINISHED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REDIS,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    error_line,
    exit_code_for,
    exit_code_for_state,
    fail,
)

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph
    from graflow.core.workflow import WorkflowContext


def load_graph(target: str) -> TaskGraph:
    """``module:attr`` → a TaskGraph; attr is a WorkflowContext, a TaskGraph or a no-arg callable."""
    from graflow.core.workflow import WorkflowContext

    obj = load_workflow(target)
    return obj.graph if isinstance(obj, WorkflowContext) else obj


def load_workflow(target: str) -> TaskGraph | WorkflowContext:
    """``module:attr`` → the workflow (which keeps its name for ``graflow runs``) or a TaskGraph."""
    from graflow.core.graph import TaskGraph
    from graflow.core.workflow import WorkflowContext

    obj = load_target(target)
    if isinstance(obj, WorkflowContext | TaskGraph):
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


def json_safe(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``repr`` (results are any picklable object)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` → seconds (``CliError`` otherwise)."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = -1.0
    if seconds < 0 or seconds != seconds:
        raise CliError(f"bad duration {text!r} — use a number with s, m, h, d or w, e.g. 30m or 2h")
    return seconds


__all__ = [
    "EXIT_ALREADY_ENDED",
    "EXIT_CANCELED",
    "EXIT_FAILED",
    "EXIT_NOT_FINISHED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REDIS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "default_queue",
    "error_line",
    "exit_code_for",
    "exit_code_for_state",
    "fail",
    "json_safe",
    "key_prefix",
    "load_graph",
    "load_target",
    "load_workflow",
    "parse_duration",
    "pool_options",
    "print_result",
    "redis_url",
]


def pool_options(command: F) -> F:
    """``--url`` and ``--prefix``, as every command that reads the pool's runs takes them."""
    import click

    command = click.option("--prefix", default=None, help="key prefix (default: $GRAFLOW_KEY_PREFIX or graflow)")(command)
    return click.option("--url", default=None,
                        help="Redis URL (default: $GRAFLOW_REDIS_URL, $REDIS_URL, localhost)")(command)  # fmt: skip


def redis_url(arg: str | None) -> str:
    """``--url``, else GRAFLOW_REDIS_URL, else REDIS_URL, else the local default; a URL
    without a password gets ``REDIS_PASSWORD``."""
    from graflow.redisconn import with_default_password

    return with_default_password(arg or settings.current().url)


def key_prefix(arg: str | None) -> str:
    """``--prefix``, else GRAFLOW_KEY_PREFIX, else ``graflow``."""
    return arg or settings.current().key_prefix


def default_queue(prefix: str) -> str:
    """The queue ``graflow submit`` sends to: the first name in ``GRAFLOW_QUEUE``, else ``prefix``.

    Workers read the same variable (``graflow.settings``), so a producer and a
    pool configured from one ``.env`` agree on the queue.
    """
    names = settings.current().queues
    return names[0] if names else prefix
