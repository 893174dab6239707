"""The ``graflow`` command: one subcommand per module, one-line errors, documented exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from graflow.cli.common import EXIT_USAGE, CliError, exit_code_for, fail

COMMANDS = ("checkpoints", "resume", "worker", "submit", "status")


def build_parser() -> argparse.ArgumentParser:
    from graflow.cli import checkpoints, resume

    parser = argparse.ArgumentParser(
        prog="graflow",
        description="Run graflow workflows: workers, submission, status, checkpoints and resume.",
    )
    parser.add_argument("--version", action="store_true", help="print the graflow version and exit")
    parser.add_argument(
        "--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR; DEBUG shows tracebacks"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    checkpoints.register(sub)
    resume.register(sub)
    for name in ("worker", "submit", "status"):
        module = _optional(name)
        if module is not None:
            module.register(sub)
    return parser


def _optional(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"graflow.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"graflow.cli.{name}":
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = str(args.log_level).upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.version:
        import graflow

        print(graflow.__version__)
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except CliError as exc:
        return fail(str(exc), exc.code, exc, debug=level == "DEBUG")
    except KeyboardInterrupt:
        return fail("interrupted", 130, None, debug=False)
    except Exception as exc:
        return fail(str(exc), exit_code_for(exc), exc, debug=level == "DEBUG")


__all__ = ["COMMANDS", "main"]
