"""The installed package's version, read from its metadata once (it costs more than ``import graflow``)."""

from __future__ import annotations

from functools import cache


@cache
def package_version() -> str:
    """``graflow``'s distribution version, or ``0+unknown`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graflow")
    except PackageNotFoundError:
        return "0+unknown"


__all__ = ["package_version"]
