"""Shared helpers for the one-command benchmarks: timing and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``runs`` runs (after ``warmup`` untimed runs)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def emit(name: str, results: dict[str, Any]) -> None:
    json.dump({"benchmark": name, "machine": machine(), **results}, sys.stdout, indent=2)
    sys.stdout.write("\n")
