"""Upstream path of the in-process FIFO; it lives in ``graflow.core.local_queue``."""

from __future__ import annotations

from graflow.core.local_queue import LocalTaskQueue

__all__ = ["LocalTaskQueue"]
