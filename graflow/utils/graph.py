"""Upstream path of the graph drawings; they live in ``graflow.core.graph_draw``,
``graph_info`` and ``graph_render``."""

from __future__ import annotations

from graflow.core.graph_draw import draw_ascii, draw_dot, draw_mermaid
from graflow.core.graph_info import build_graph, show_graph_info, visualize_dependencies
from graflow.core.graph_render import create_agraph, draw_mermaid_png, draw_png, draw_task_graph

__all__ = [
    "build_graph",
    "create_agraph",
    "draw_ascii",
    "draw_dot",
    "draw_mermaid",
    "draw_mermaid_png",
    "draw_png",
    "draw_task_graph",
    "show_graph_info",
    "visualize_dependencies",
]
