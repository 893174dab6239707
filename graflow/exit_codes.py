"""The documented exit codes of the `graflow` command and its one-line error format.

Shared by the ``graflow`` command and the worker processes it starts (the worker
package imports this module, never ``graflow.cli``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

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

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REDIS = 3
EXIT_NOT_FOUND = 4
EXIT_CANCELED = 5
#: ``graflow result``: the run has not finished yet.
EXIT_NOT_FINISHED = 6
#: ``graflow cancel``: the run had already ended; nothing was changed.
EXIT_ALREADY_ENDED = 7
EXIT_TIMEOUT = 124
#: stdout was closed by its reader (a pipe into ``head``): 128 + SIGPIPE, as shells report it.
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A user-facing error with its exit code; the message is ``<what> — <fix>``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for_state(state: str) -> int:
    """The exit code of a finished run: 0 completed or terminated, 1 failed, 5 canceled."""
    return {"failed": EXIT_FAILED, "canceled": EXIT_CANCELED}.get(state, EXIT_OK)


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


def reported(run: Callable[[], int], *, debug: bool, passthrough: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's body: what it raises becomes one line on stderr and its documented
    exit code (the traceback too when ``debug``); ``passthrough`` errors propagate."""
    try:
        return int(run())
    except passthrough:
        raise
    except CliError as exc:
        return fail(str(exc), exc.code, exc, debug=debug)
    except KeyboardInterrupt:
        return fail("interrupted", 130, None, debug=False)
    except BrokenPipeError:
        # The reader went away (`graflow runs | head`): stop quietly, as a shell tool does.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail too.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        return fail(str(exc), exit_code_for(exc), exc, debug=debug)


__all__ = [
    "EXIT_ALREADY_ENDED",
    "EXIT_BROKEN_PIPE",
    "EXIT_CANCELED",
    "EXIT_FAILED",
    "EXIT_NOT_FINISHED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REDIS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "error_line",
    "exit_code_for",
    "exit_code_for_state",
    "fail",
    "reported",
]
