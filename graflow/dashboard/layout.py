"""Where a workflow run's drawing puts each task, group box and edge (the dashboard's SVG).

``layout(shape)`` takes the run's shape, JSON-able::

    {"nodes": [{"id": "a", "kind": "task"}, {"id": "g", "kind": "group", "members": ["b", "c"]},
               {"id": "b", "kind": "task"}, {"id": "c", "kind": "task", "dynamic": True}, ...],
     "edges": [["a", "g"], ["g", "d"], ["d", "a"], ...]}

and returns, in whole pixels with the origin top-left::

    {"width": W, "height": H,
     "nodes": {id: {"x", "y", "w", "h"}},             # every task, its box's top-left corner
     "groups": {id: {"x", "y", "w", "h", "label"}},   # every group, a box round its members
     "edges": [{"from": u, "to": v, "points": [[x, y], ...], "back": bool}]}

A group's members are laid out inside its box (a label strip on top) as a level of their
own, nested groups likewise, and the box takes the group's place in the level above. Each
level is a layered drawing (``graflow.dashboard.sugiyama``): top to bottom, parallel
members side by side, more than ``max_row`` of them wrapped into further rows. An edge is
laid out in the innermost level holding both its ends, between the boxes holding them;
its polyline runs from the bottom of its source's box to the top of its target's, bending
round boxes in between (an end inside a group is reached straight through its group's
box; in a dense graph the longest edges run straight, see ``sugiyama.DUMMY_BUDGET``).
``back`` marks the edges that close a cycle (a depth-first search in node order meets
them): they go back up a lane on the right, and a self-loop circles its box's right side.

The shape is user data passed through, so the layout is lenient and never reads meaning
into an id: ids are only compared. Left out of the drawing, silently:

- a node entry that is not a mapping with a string ``"id"``, or repeats an earlier id;
- an edge that is not a pair of strings, names a node missing from ``"nodes"`` (the node
  list is what is drawn; an edge never adds a node), or repeats an earlier edge;
- an edge between a group and a node inside it (the box already shows that);
- a member naming a missing node, a node already in an earlier group (a node belongs to
  the first group, in node order, that lists it), or the group itself or one holding it.

A node whose ``"kind"`` is not ``"group"`` is a task; other keys (``"dynamic"``, a state)
are the web app's and not read here. The same shape always gives the same layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graflow.dashboard.sugiyama import BACK_DY, LOOP_GAP, ROW_GAP, Level, arrange

NODE_W = 150
NODE_H = 36
GROUP_PAD = 12  # between a group's box and its members, left, right and bottom
LABEL_H = 24  # the group's label strip, above its members

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass
class _Shape:
    is_group: dict[str, bool] = field(default_factory=dict)  # every node, in node order
    parent: dict[str, str] = field(default_factory=dict)  # member -> its group
    children: dict[str | None, list[str]] = field(default_factory=dict)  # None: the top level
    edges: list[tuple[str, str]] = field(default_factory=list)


def layout(shape: Mapping[str, Any], *, max_row: int = 24) -> dict[str, Any]:
    """The drawing of ``shape``: see the module docstring for both formats."""
    if max_row < 1:
        raise ValueError(f"max_row must be at least 1, not {max_row}")
    graph = _parse(shape)
    outer_first, depth = _containers(graph)
    index = {node: i for kids in graph.children.values() for i, node in enumerate(kids)}

    lifted: dict[str | None, dict[tuple[int, int], int]] = {c: {} for c in outer_first}
    placed: list[tuple[str, str, str | None, str, str, int]] = []
    for u, v in graph.edges:
        where = _lift(u, v, graph.parent, depth)
        if where is not None:
            container, a, b = where
            pairs = lifted[container]
            k = pairs.setdefault((index[a], index[b]), len(pairs))
            placed.append((u, v, container, a, b, k))

    levels: dict[str | None, Level] = {}
    size: dict[str, tuple[int, int]] = {}
    for container in reversed(outer_first):
        sizes = [size.get(node, (NODE_W, NODE_H)) for node in graph.children[container]]
        level = levels[container] = arrange(sizes, list(lifted[container]), max_row)
        if container is not None:
            width = max(level.width + 2 * GROUP_PAD, NODE_W)
            size[container] = (width, LABEL_H + level.height + GROUP_PAD)

    box: dict[str, Box] = {}
    origin: dict[str | None, tuple[int, int]] = {None: (0, 0)}
    for container in outer_first:
        ox, oy = origin[container]
        level = levels[container]
        for i, node in enumerate(graph.children[container]):
            w, h = size.get(node, (NODE_W, NODE_H))
            x, y = ox + level.x[i], oy + level.y[i]
            box[node] = (x, y, w, h)
            if graph.is_group[node]:  # its members' level, centred under the label
                origin[node] = (x + (w - levels[node].width) // 2, y + LABEL_H)

    def drawn(x: int, y: int, w: int, h: int) -> dict[str, Any]:
        return {"x": x, "y": y, "w": w, "h": h}

    def route(u: str, v: str, c: str | None, a: str, b: str, k: int) -> dict[str, Any]:
        points = _route(levels[c], origin[c], index[a], index[b], k, (box[u], box[a], box[b], box[v]))
        return {"from": u, "to": v, "points": points, "back": levels[c].back[k]}

    flags = graph.is_group.items()
    return {
        "width": levels[None].width,
        "height": levels[None].height,
        "nodes": {node: drawn(*box[node]) for node, group in flags if not group},
        "groups": {node: {**drawn(*box[node]), "label": node} for node, group in flags if group},
        "edges": [route(*edge) for edge in placed],
    }


def _parse(shape: Mapping[str, Any]) -> _Shape:
    graph = _Shape()
    members: dict[str, Any] = {}
    for entry in shape.get("nodes") or ():
        if not isinstance(entry, Mapping):
            continue
        node = entry.get("id")
        if not isinstance(node, str) or node in graph.is_group:
            continue
        graph.is_group[node] = entry.get("kind") == "group"
        if graph.is_group[node]:
            members[node] = entry.get("members")
            graph.children[node] = []
    for group, listed in members.items():
        for member in listed if isinstance(listed, list | tuple) else ():
            if (
                isinstance(member, str) and member in graph.is_group and member not in graph.parent
                and not _holds(member, group, graph.parent)
            ):  # fmt: skip
                graph.parent[member] = group
                graph.children[group].append(member)
    graph.children[None] = [node for node in graph.is_group if node not in graph.parent]
    seen: set[tuple[str, str]] = set()
    for edge in shape.get("edges") or ():
        if not isinstance(edge, list | tuple) or len(edge) != 2:
            continue
        u, v = edge
        known = isinstance(u, str) and isinstance(v, str) and u in graph.is_group and v in graph.is_group
        if known and (u, v) not in seen:
            seen.add((u, v))
            graph.edges.append((u, v))
    return graph


def _holds(outer: str, inner: str, parent: dict[str, str]) -> bool:
    """Is ``inner`` ``outer`` or inside it?"""
    node: str | None = inner
    while node is not None:
        if node == outer:
            return True
        node = parent.get(node)
    return False


def _containers(graph: _Shape) -> tuple[list[str | None], dict[str, int]]:
    """The levels, each before the groups inside it (None is the top), and each node's depth."""
    order: list[str | None] = []
    depth: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = [(None, 0)]
    while stack:
        container, d = stack.pop()
        order.append(container)
        for node in graph.children[container]:
            depth[node] = d
        inner = [node for node in graph.children[container] if graph.is_group[node]]
        stack.extend((node, d + 1) for node in reversed(inner))
    return order, depth


def _lift(
    u: str, v: str, parent: dict[str, str], depth: dict[str, int]
) -> tuple[str | None, str, str] | None:
    """The innermost level holding both ends and its items holding each, or None for an
    edge between a group and a node inside it."""
    a, b = u, v
    while depth[a] > depth[b]:
        a = parent[a]
    while depth[b] > depth[a]:
        b = parent[b]
    if a == b:
        return (parent.get(u), u, u) if u == v else None
    while parent.get(a) != parent.get(b):
        a, b = parent[a], parent[b]
    return parent.get(a), a, b


def _route(
    level: Level, origin: tuple[int, int], a: int, b: int, k: int, boxes: tuple[Box, Box, Box, Box]
) -> list[list[int]]:
    """Edge ``k`` of ``level``, from item ``a`` (holding the source) to item ``b`` (holding
    the target), drawn from the source's bottom to the target's top. ``boxes``: those of
    the source, item ``a``, item ``b`` and the target, in the drawing's coordinates."""
    ox, oy = origin
    (ux, uy, uw, uh), (_, ay, _, ah), (_, by, _, _), (vx, vy, vw, _) = boxes
    sx, ex = ux + uw // 2, vx + vw // 2
    if a == b:  # a loop: round the box's right-hand side
        below, right, above = uy + uh + LOOP_GAP, ux + uw + LOOP_GAP, uy - LOOP_GAP
        return [[sx, uy + uh], [sx, below], [right, below], [right, above], [sx, above], [sx, uy]]
    # Out of the source's band: down, and from an upper grid row along a corridor.
    points = [(sx, uy + uh), (sx, ay + ah)]
    x = sx
    if not level.last_row[a]:
        y = oy + level.row_bottom[a] + ROW_GAP // 2
        x = ox + level.corridor_right[a]
        points += [(sx, y), (x, y)]
    points.append((x, oy + level.band_bottom[level.layer[a]]))
    # Into the target's band, to a lower grid row along a corridor.
    band_top = oy + level.band_top[level.layer[b]]
    if level.first_row[b]:
        tail = [(ex, band_top)]
    else:
        y = oy + level.row_top[b] - ROW_GAP // 2
        corridor = ox + level.corridor_left[b]
        tail = [(corridor, band_top), (corridor, y), (ex, y)]
    tail += [(ex, by), (ex, vy)]
    if level.back[k]:
        lane = ox + level.lane[k]
        below = oy + level.band_bottom[level.layer[a]] + BACK_DY
        above = band_top - BACK_DY
        points += [(x, below), (lane, below), (lane, above), (tail[0][0], above)]
    else:
        for step, bend in enumerate(level.bends[k], level.layer[a] + 1):
            points += [(ox + bend, oy + level.band_top[step]), (ox + bend, oy + level.band_bottom[step])]
    points += tail
    route = [list(points[0])]
    for point in points[1:]:
        if list(point) != route[-1]:
            route.append(list(point))
    return route
