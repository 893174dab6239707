"""``--import crash_on_fork``: every process forked after the import dies at once (SIGKILL).

A stand-in for a library that is not fork-safe (it crashes the first time a forked
process touches it): the ``graflow worker`` supervisor imports it and survives, each
worker process it forks dies before it serves anything, a crash loop.
"""

from __future__ import annotations

import os
import signal


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


os.register_at_fork(after_in_child=_die)
