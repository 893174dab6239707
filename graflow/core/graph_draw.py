"""Graph drawings as plain text: ASCII, Mermaid and Graphviz DOT; PNG needs ``graflow[viz]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph


def _label(graph: TaskGraph, node_id: str) -> str:
    members = graph.group_members().get(node_id)
    return f"{node_id} [{' | '.join(members)}]" if members else node_id


def draw_ascii(graph: TaskGraph) -> str:
    """One line per node in a depth-first walk from the start candidates; back edges marked."""
    if len(graph) == 0:
        return "(empty graph)"
    lines: list[str] = []
    seen: set[str] = set()
    members = graph.all_group_member_ids()

    def walk(node: str, depth: int) -> None:
        indent = "    " * depth
        if node in seen:
            lines.append(f"{indent}+-> {node} (loop)")
            return
        seen.add(node)
        prefix = "+-> " if depth else ""
        lines.append(f"{indent}{prefix}{_label(graph, node)}")
        for succ in graph.successors(node):
            walk(succ, depth + 1)

    starts = graph.get_start_nodes() or graph.nodes[:1]
    for start in starts:
        walk(start, 0)
    for node in graph.nodes:
        if node not in seen and node not in members:
            walk(node, 0)
    return "\n".join(lines)


def _mermaid_id(node_id: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in node_id)


def draw_mermaid(graph: TaskGraph) -> str:
    """A Mermaid flowchart; groups are subgraphs."""
    out = ["flowchart TD"]
    groups = graph.group_members()
    for node in graph.nodes:
        if node in groups:
            out.append(f"    subgraph {_mermaid_id(node)}[\"{node}\"]")
            out.extend(f"        {_mermaid_id(m)}[\"{m}\"]" for m in groups[node])
            out.append("    end")
        else:
            out.append(f"    {_mermaid_id(node)}[\"{node}\"]")
    out.extend(f"    {_mermaid_id(u)} --> {_mermaid_id(v)}" for u, v in graph.edges)
    return "\n".join(out)


def draw_dot(graph: TaskGraph) -> str:
    """A Graphviz DOT digraph; groups are clusters."""
    out = ["digraph graflow {", "    rankdir=TB;"]
    groups = graph.group_members()
    for i, node in enumerate(graph.nodes):
        if node in groups:
            out.append(f"    subgraph cluster_{i} {{ label=\"{node}\";")
            out.extend(f"        \"{m}\";" for m in groups[node])
            out.append("    }")
        out.append(f"    \"{node}\";")
    out.extend(f"    \"{u}\" -> \"{v}\";" for u, v in graph.edges)
    out.append("}")
    return "\n".join(out)


def draw_png(graph: TaskGraph, path: str) -> str:
    """Render to a PNG file with networkx and matplotlib (``pip install 'graflow[viz]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import networkx as nx
    except ImportError as exc:
        raise ImportError("draw_png needs matplotlib and networkx: pip install 'graflow[viz]'") from exc
    g: Any = graph.nx_graph()
    fig = plt.figure(figsize=(8, 6))
    nx.draw_networkx(g, pos=nx.spring_layout(g, seed=1), node_color="#cde", arrows=True)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["draw_ascii", "draw_dot", "draw_mermaid", "draw_png"]
