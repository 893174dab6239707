"""Upstream's serialization module, now backed by the signed envelope.

Kept as a thin re-export so ``graflow.core`` and upstream user code share one codec.
"""

from graflow.codec import dump, dumps, load, loads

__all__ = ["dump", "dumps", "load", "loads"]
