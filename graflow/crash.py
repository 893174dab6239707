"""Crash injection for failover tests: die at a named point, exactly once.

Set ``GRAFLOW_CRASH_AT=<point>`` (comma-separated for several) and the process
calls ``os._exit(CRASH_EXIT_CODE)`` the first time it reaches that point: no
cleanup, no finally blocks, no flushing, as if the machine had lost power there.
With ``GRAFLOW_CRASH_ONCE_FILE=<path>`` the crash happens only if that file can be
created (so one crash per test even with many processes). The points themselves
are documented where they fire.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 137


def crash_point(name: str) -> None:
    """Exit the process at once if ``GRAFLOW_CRASH_AT`` names this point."""
    armed = os.environ.get("GRAFLOW_CRASH_AT")
    if not armed or name not in armed.split(","):
        return
    once = os.environ.get("GRAFLOW_CRASH_ONCE_FILE")
    if once:
        try:
            fd = os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{name} {os.getpid()}\n".encode())
        os.close(fd)
    os._exit(CRASH_EXIT_CODE)


__all__ = ["CRASH_EXIT_CODE", "crash_point"]
