"""The wire ``TaskSpec`` under its pool-side name; it lives in ``graflow.wire`` (ground layer)."""

from __future__ import annotations

from graflow.wire import WIRE_VERSION, TaskSpec, decode, encode

__all__ = ["WIRE_VERSION", "TaskSpec", "decode", "encode"]
