"""Upstream path of the graph drawings; they live in ``graflow.core.graph_draw``."""

from __future__ import annotations

from graflow.core.graph_draw import draw_ascii, draw_dot, draw_mermaid, draw_png

__all__ = ["draw_ascii", "draw_dot", "draw_mermaid", "draw_png"]
