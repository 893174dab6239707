"""``SequentialTask``: what ``>>`` returns (defined with the other building blocks)."""

from __future__ import annotations

from graflow.core.executable import SequentialTask, head, link, tail

__all__ = ["SequentialTask", "head", "link", "tail"]
