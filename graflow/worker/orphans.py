"""A worker process that never outlives its parent (the supervisor, or for rq's
scheduler process its worker): Linux's parent-death signal."""

from __future__ import annotations

import os
import signal
import sys


def stop_with_parent(parent: int) -> None:
    """Ask the kernel for a SIGTERM when the supervisor dies (Linux), so a worker never
    outlives its command: it finishes the task it runs (warm shutdown) and exits."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["stop_with_parent"]
