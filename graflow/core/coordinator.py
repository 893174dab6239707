"""Coordination backends for parallel groups (upstream names)."""

from __future__ import annotations

from enum import Enum


class CoordinationBackend(str, Enum):
    """Where a group's branches run."""

    REDIS = "redis"
    THREADING = "threading"
    DIRECT = "direct"

    @classmethod
    def parse(cls, value: str | CoordinationBackend) -> CoordinationBackend:
        """Accept a member or a case-insensitive name; ``ValueError`` otherwise."""
        if isinstance(value, CoordinationBackend):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ValueError(
            f"unknown parallel backend {value!r}: use 'threading', 'direct' or 'redis'"
        )


__all__ = ["CoordinationBackend"]
