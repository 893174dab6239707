"""Graph drawings as plain text: ASCII, Mermaid and Graphviz DOT.

Each takes a ``TaskGraph``, a workflow, or an ``nx.DiGraph`` (``graph_view.as_view``)
with upstream's keyword arguments. Mermaid follows upstream's output line for line
(groups are subgraphs); DOT carries upstream's attributes but is written here, without
pygraphviz; ASCII is graflow's own indented walk (upstream needs grandalf), except for
an empty graph and a graph without edges, which look like upstream's. PNG and the
other renderers that need optional packages are in ``graph_render``.
"""

from __future__ import annotations

import html
import re
from typing import Any

from graflow.core.graph_view import GraphView, as_view, container_view


def draw_ascii(graph: Any) -> str:
    """One line per node in a depth-first walk from the start nodes: ``+->`` to a successor,
    ``::`` to a group's member, ``(loop)`` where the walk meets a node again."""
    view = as_view(graph)
    if len(view) == 0:
        return "Empty graph"
    groups = view.groups()
    if not view.edges and not groups:
        return _boxes([str(n) for n in view.nodes])
    lines: list[str] = []
    seen: set[Any] = set()
    members = view.members()

    def walk(node: Any, depth: int, arrow: str) -> None:
        indent = "    " * depth
        if node in seen:
            lines.append(f"{indent}{arrow}{node} (loop)")
            return
        seen.add(node)
        group = groups.get(node)
        lines.append(f"{indent}{arrow}{node} [{' | '.join(group.member_ids)}]" if group else f"{indent}{arrow}{node}")
        for member in group.member_ids if group else ():
            walk(member, depth + 1, ":: ")  # a member, and what it leads to inside the group
        for succ in view.successors(node):
            walk(succ, depth + 1, "+-> ")

    starts = [n for n in view.nodes if not view.predecessors(n) and n not in members]
    for node in [*starts, *view.nodes]:
        if node not in seen and node not in members:
            walk(node, 0, "")
    return "\n".join(lines)


def _boxes(names: list[str]) -> str:
    """Upstream's drawing of nodes without edges: a column of boxes."""
    width = max(len(n) for n in names) + 2
    rule = "+" + "-" * width + "+\n"
    rows = []
    for name in names:
        text = name[: width - 2]
        left = (width - len(text)) // 2
        rows.append(f"|{' ' * left}{text}{' ' * (width - len(text) - left)}|")
    return rule + f"\n{rule}".join(rows) + f"\n{rule}"


_MERMAID_RESERVED = frozenset({
    "graph", "subgraph", "direction", "click", "class", "classDef", "style", "linkStyle", "fill",
    "stroke", "color", "end", "start", "TD", "TB", "BT", "RL", "LR", "flowchart",
})  # fmt: skip

_MERMAID_STYLES = (
    "    classDef first fill:#e1f5fe,stroke:#01579b,stroke-width:2px;\n"
    "    classDef last fill:#fff3e0,stroke:#e65100,stroke-width:2px;\n"
    "    classDef parallelGroup fill:#f3e5f5,stroke:#4a148c,stroke-width:3px;\n"
    "    classDef default fill:#f9f9f9,stroke:#333,stroke-width:1px;\n"
)


class _MermaidIds:
    """Upstream's node ids: non-word characters become ``_``; a clash or a keyword gets ``_<n>``."""

    def __init__(self, nodes: list[Any]) -> None:
        self._ids: dict[str, str] = {}
        self._used = {self._escape(str(n)) for n in nodes}

    @staticmethod
    def _escape(label: str) -> str:
        return re.sub(r"[^a-zA-Z-_0-9]", "_", label)

    def __call__(self, label: str) -> str:
        known = self._ids.get(label)
        if known is not None:
            return known
        escaped = candidate = self._escape(label)
        if escaped in _MERMAID_RESERVED or candidate in self._used:
            counter = 1
            while (candidate := f"{escaped}_{counter}") in self._used:
                counter += 1
        self._ids[label] = candidate
        self._used.add(candidate)
        return candidate


def draw_mermaid(
    graph: Any,
    title: str = "Graph",
    *,
    with_styles: bool = True,
    node_colors: dict[Any, str] | None = None,
    wrap_label_n_words: int = 9,
) -> str:
    """A Mermaid flowchart, as upstream writes it: groups are subgraphs, the first start
    node and the last end node are styled, ``node_colors`` fill nodes (with styles on)."""
    view = as_view(graph)
    if len(view) == 0:
        return "graph TD;\n    EmptyGraph[Empty Graph];\n"
    ids = _MermaidIds(view.nodes)
    display, boxes = container_view(view)
    out = ["---\nconfig:\n  flowchart:\n    curve: linear\n---\n"] if with_styles else []
    out.append("graph TD;\n")
    if title != "Graph":
        out.append(f"    %% {title}\n")
    nodes = display.nodes
    starts = [n for n in nodes if not display.predecessors(n)]
    ends = [n for n in nodes if not display.successors(n)]
    first = starts[0] if starts else None
    last = ends[-1] if ends else None
    in_boxes = {str(t) for box in boxes.values() for t in box["tasks"]}
    for group_id, box in boxes.items():
        box_id = ids(group_id)
        out.append(f'    subgraph {box_id}[" {box["label"]} "]\n        direction TB\n')
        for task_id in box["tasks"]:
            if task_id in display:
                out.append(f"        {ids(str(task_id))}[{_quote(str(task_id))}];\n")
        out.append(f"    end\n    class {box_id} parallelGroup;\n")
    for node in nodes:
        name = str(node)
        if name in in_boxes or name in boxes:
            continue
        if node == first:
            out.append(f"    {ids(name)}([{_quote(name)}]):::first;\n")
        elif node == last:
            out.append(f"    {ids(name)}([{_quote(name)}]):::last;\n")
        else:
            out.append(f"    {ids(name)}[{_quote(name)}];\n")
    out.extend(_mermaid_edges(display, boxes, in_boxes, ids, wrap_label_n_words))
    if with_styles:
        out.append(_MERMAID_STYLES)
        for node, color in (node_colors or {}).items():
            node_id = ids(str(node))
            out.append(f"    classDef {node_id}_style fill:{color};\n    class {node_id} {node_id}_style;\n")
    return "".join(out)


def _quote(label: str) -> str:
    return label.replace('"', '\\"')


def _mermaid_edges(
    display: GraphView, boxes: dict[str, Any], in_boxes: set[str], ids: _MermaidIds, wrap: int
) -> list[str]:
    out = []
    for u, v in display.edges:
        a, b = str(u), str(v)
        if a in boxes and b in in_boxes:
            continue  # a group to its own members: the subgraph shows them
        label = display.label(u, v)
        if label and a not in boxes and b not in boxes and len(label.split()) > wrap:
            words = label.split()
            label = "<br>".join(" ".join(words[i : i + wrap]) for i in range(0, len(words), wrap))
        arrow = f" -- {label} --> " if label else " --> "
        out.append(f"    {ids(a)}{arrow}{ids(b)};\n")
    return out


def draw_dot(
    graph: Any,
    node_labels: dict[Any, str] | None = None,
    node_colors: dict[Any, str] | None = None,
) -> str:
    """A Graphviz DOT digraph with upstream's look: groups are clusters (edges to a group
    end at its box), ``node_labels`` and ``node_colors`` (default lightblue) per node."""
    view = as_view(graph)
    if len(view) == 0:
        return 'digraph "" {\n    Empty [label="Empty Graph", style=filled, fillcolor=lightgray];\n}\n'
    display, boxes = container_view(view)
    labels = node_labels or {}
    colors = node_colors or {}

    def node_line(node: Any, indent: str) -> str:
        text = html.escape(str(labels.get(node, node))).replace("\n", "<BR/>")
        color = colors.get(node, "lightblue")
        return (
            f"{indent}{_dot_id(node)} [label=<<B>{text}</B>>, style=filled, fillcolor={_dot_id(color)}, "
            "fontsize=12, fontname=arial];\n"
        )

    out = ['digraph "" {\n', "    graph [compound=true, nodesep=0.5, ranksep=1.2];\n"]
    cluster: dict[str, str] = {}
    for i, (group_id, box) in enumerate(boxes.items()):
        cluster[group_id] = f"cluster_{i}"
        out.append(
            f"    subgraph cluster_{i} {{\n        graph [label={_dot_id(box['label'])}, style=filled, "
            'fillcolor="#f3e5f5", color="#4a148c", penwidth=2.5, labeljust=l, labelloc=t];\n'
        )
        out.extend(node_line(t, "        ") for t in box["tasks"] if t in display)
        out.append("    }\n")
    in_boxes = {str(t) for box in boxes.values() for t in box["tasks"]}
    out.extend(node_line(n, "    ") for n in display.nodes if str(n) not in in_boxes and str(n) not in boxes)
    edge_attrs = "fontsize=10, fontname=arial"
    for u, v in display.edges:
        a, b = str(u), str(v)
        if b in boxes and a not in boxes and boxes[b]["tasks"]:
            out.append(f"    {_dot_id(u)} -> {_dot_id(boxes[b]['tasks'][0])} [lhead={cluster[b]}, {edge_attrs}];\n")
        elif a in boxes and b not in boxes and boxes[a]["tasks"]:
            out.append(f"    {_dot_id(boxes[a]['tasks'][0])} -> {_dot_id(v)} [ltail={cluster[a]}, {edge_attrs}];\n")
        elif a not in boxes and b not in boxes:
            out.append(f"    {_dot_id(u)} -> {_dot_id(v)} [{edge_attrs}];\n")
    out.append("}\n")
    return "".join(out)


def _dot_id(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


__all__ = ["draw_ascii", "draw_dot", "draw_mermaid"]
