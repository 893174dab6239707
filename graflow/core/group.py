"""``ParallelGroup``: a node whose members run as parallel branches (see docs/execution.md).

Defined with the other building blocks in ``graflow.core.executable``.
"""

from __future__ import annotations

from graflow.core.executable import ParallelGroup, combine

__all__ = ["ParallelGroup", "combine"]
