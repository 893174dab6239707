"""Imported by a worker (``--import skew_clock``): its ``time.time`` runs
``GRAFLOW_TEST_CLOCK_SKEW`` seconds off, as on a host whose clock is wrong. Supervisor and
worker processes both inherit it (they fork after the import)."""

from __future__ import annotations

import os
import time

_SKEW = float(os.environ.get("GRAFLOW_TEST_CLOCK_SKEW") or 0)
_real_time = time.time


def _skewed() -> float:
    return _real_time() + _SKEW


time.time = _skewed
