"""The ``graflow`` command: one subcommand per module, one-line errors, documented exit codes.

Parsing is click's. A subcommand is a module of this package defining ``command`` (a click
command whose callback is wrapped by ``handler``) and named in ``COMMANDS``; ``handler``
turns the parsed flags into one namespace and every error into its one line
``graflow: error: <what> — <fix>`` and exit code (``graflow.exit_codes``). Flags override
the environment through ``graflow.settings``, which alone reads the variables.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import click

from graflow.exit_codes import EXIT_USAGE, fail, reported

__all__ = ["COMMANDS", "cli", "handler", "main"]

#: The subcommand modules, in the order of ``graflow --help``.
COMMANDS = ("checkpoints", "resume", "worker", "submit", "runs", "workers", "status", "logs", "result", "cancel",
            "dashboard")
#: Modules a build may leave out (the pool); the others must be there.
_OPTIONAL = frozenset({"worker", "submit", "runs", "workers", "status", "logs", "result", "cancel", "dashboard"})
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def handler(run: Callable[[Any], int]) -> Callable[..., int]:
    """A click callback running ``run(args)`` (``args``: the parsed flags as attributes),
    with the CLI's error handling: a ``CliError`` or any other error is one line on stderr
    and its documented exit code (the traceback with ``--log-level DEBUG``)."""

    @functools.wraps(run)
    def callback(**params: Any) -> int:
        root = click.get_current_context().find_root()
        level = str(root.params.get("log_level") or "WARNING").upper()
        args = SimpleNamespace(log_level=level, **params)
        return reported(lambda: run(args), debug=level == "DEBUG", passthrough=(click.ClickException,))

    return callback


class _Commands(click.Group):
    """Lists its subcommands in ``COMMANDS`` order, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_Commands,
    name="graflow",
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings=_CONTEXT,
    help="Run graflow workflows: workers, submission, status, task output, checkpoints and resume.",
)
@click.option("--version", is_flag=True, help="print the graflow version and exit")
@click.option(
    "--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR; DEBUG shows tracebacks"
)
@click.pass_context
def cli(ctx: click.Context, version: bool, log_level: str) -> None:
    level = str(log_level).upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if version:
        from graflow.version import package_version

        click.echo(package_version())
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help(), err=True)
        ctx.exit(EXIT_USAGE)


def _add_commands() -> None:
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"graflow.cli.{name}")
        except ModuleNotFoundError as exc:
            if name in _OPTIONAL and exc.name == f"graflow.cli.{name}":
                continue
            raise
        cli.add_command(module.command, name)


_add_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``graflow`` with ``argv`` (default: the process's arguments); the exit code."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="graflow",
                        standalone_mode=False)  # fmt: skip
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "graflow"
        message = exc.format_message().rstrip(".")
        print(f"graflow: error: {message} — see `{where} --help`", file=sys.stderr)
        return EXIT_USAGE
    except click.ClickException as exc:
        return fail(exc.format_message(), exc.exit_code, None, debug=False)
    except click.Abort:
        return fail("interrupted", 130, None, debug=False)
    return int(code or 0)
