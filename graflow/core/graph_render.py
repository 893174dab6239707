"""Graph pictures that need optional packages: PNG and a window (``graflow[viz]``:
matplotlib and networkx), a pygraphviz ``AGraph`` (pygraphviz, not a graflow extra).

Upstream renders PNGs with pygraphviz and Mermaid pictures through the mermaid.ink web
service. graflow draws PNGs with matplotlib, builds an ``AGraph`` from ``draw_dot``'s
text when pygraphviz is there, and sends nothing over the network: ``draw_mermaid_png``
says so and names the alternatives.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

from graflow.core.graph_draw import draw_dot
from graflow.core.graph_view import as_view
from graflow.exceptions import MissingDependencyError, UnsupportedFeatureError


def _plot(graph: Any, ax: Any, node_labels: dict[Any, str] | None, node_colors: dict[Any, str] | None) -> None:
    """Nodes, edges and (dashed) group-to-member links of ``graph`` on a matplotlib axis."""
    import networkx as nx

    view = as_view(graph)
    g = nx.DiGraph()
    for node in view.nodes:
        g.add_node(node)
    g.add_edges_from(view.edges)
    membership = [(node, m.task_id) for node, group in view.groups().items() for m in group.tasks]
    g.add_edges_from(membership)
    pos = nx.spring_layout(g, seed=1)
    colors = [(node_colors or {}).get(n, "lightblue") for n in g.nodes]
    labels = {n: (node_labels or {}).get(n, str(n)) for n in g.nodes}
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=1600)
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=9)
    nx.draw_networkx_edges(g, pos, edgelist=view.edges, ax=ax, arrows=True, node_size=1600)
    nx.draw_networkx_edges(g, pos, edgelist=membership, ax=ax, style="dashed", arrows=True, node_size=1600)
    ax.set_axis_off()


def _need_viz(what: str) -> None:
    try:
        importlib.import_module("matplotlib")
        importlib.import_module("networkx")
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} needs matplotlib and networkx, which are not installed; pip install 'graflow[viz]' "
            "(draw_mermaid and draw_dot need nothing)",
            cause=exc,
        ) from exc


def draw_png(
    graph: Any,
    output_path: str | None = None,
    node_labels: dict[Any, str] | None = None,
    node_colors: dict[Any, str] | None = None,
) -> bytes:
    """The graph as PNG bytes, also written to ``output_path`` when given (``graflow[viz]``).

    ``node_labels`` and ``node_colors`` (default lightblue) are per node, as upstream's.
    Upstream returns None when it writes a file; the bytes are returned either way here."""
    _need_viz("draw_png")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    _plot(graph, fig.add_subplot(), node_labels, node_colors)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    if output_path is not None:
        Path(output_path).write_bytes(data)
    return data


def draw_task_graph(graph: Any, title: str = "Task Graph") -> None:
    """Show the graph in a matplotlib window (``graflow[viz]``)."""
    _need_viz("draw_task_graph")
    import matplotlib.pyplot as plt

    _fig, ax = plt.subplots(figsize=(8, 6))
    _plot(graph, ax, None, None)
    ax.set_title(title)
    plt.show()


def create_agraph(
    graph: Any,
    node_labels: dict[Any, str] | None = None,
    node_colors: dict[Any, str] | None = None,
) -> Any:
    """A pygraphviz ``AGraph`` of ``draw_dot``'s graph (needs pygraphviz)."""
    try:
        pgv = importlib.import_module("pygraphviz")
    except ImportError as exc:
        raise MissingDependencyError(
            "create_agraph needs pygraphviz, which graflow does not install (it builds against "
            "the Graphviz C library): pip install pygraphviz, or use draw_dot(graph) for the "
            "same graph as DOT text and draw_png for a picture",
            cause=exc,
        ) from exc
    return pgv.AGraph(string=draw_dot(graph, node_labels=node_labels, node_colors=node_colors))


def draw_mermaid_png(graph: Any, output_path: str | None = None, **_options: Any) -> bytes:
    """Not provided: upstream renders it by sending the graph to the mermaid.ink web service."""
    raise UnsupportedFeatureError(
        "draw_mermaid_png is not provided: it would send the graph to the mermaid.ink web service; "
        "render draw_mermaid(graph) with the Mermaid CLI (mmdc -i graph.mmd -o graph.png), or use "
        "draw_png(graph) (pip install 'graflow[viz]')"
    )


__all__ = ["create_agraph", "draw_mermaid_png", "draw_png", "draw_task_graph"]
