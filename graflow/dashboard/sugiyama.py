"""One level of a layered drawing: boxes of known size and the edges between them.

``graflow.dashboard.layout`` calls ``arrange`` for the inside of each group, innermost
first, then for the top level. The steps are Sugiyama's, each in its plainest fast form:

1. cycles: an edge to an item still on the depth-first stack (roots and successors in
   their given order) is a back edge; it takes no part in the layering and is drawn up a
   lane on the right-hand side (a loop, from an item to itself, circles its box instead);
2. layers: longest path from the sources;
3. an edge spanning several layers is split by zero-width dummies (within a budget
   linear in the item count), so it bends round the boxes in between instead of crossing
   them;
4. order within layers: a few barycenter sweeps down and up;
5. x: each layer is pulled towards its neighbours' centres, keeping its order and gaps
   (weighted isotonic regression by pool-adjacent-violators), a few sweeps down and up.
   A layer of more than ``max_row`` boxes is a grid of ``max_row`` columns instead, so
   a fan-out of thousands grows downward, not sideways;
6. y: one band per layer, a grid's rows inside it, boxes aligned on their row's top.

Everything is in whole pixels, relative to the level's top-left corner. Deterministic:
ties are broken by the given order, never by hashing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

GAP_X = 24  # between boxes side by side, and between a grid's columns
GAP_Y = 56  # between layers
ROW_GAP = 24  # between the rows of a grid
DUMMY_GAP = 12  # between a bend of a long edge and its neighbour
LANE_GAP = 12  # between the vertical runs of back edges
BACK_DY = 16  # a back edge runs this far below its source's band and above its target's
BACK_PAD = 24  # room for that run above the first layer and below the last
LOOP_GAP = 12  # how far a loop (an edge from a box to itself) runs round its box

ORDER_SWEEPS = 4
PLACE_SWEEPS = 3
DUMMY_WEIGHT = 4.0  # long edges pull harder, so they stay straight
IDLE_WEIGHT = 0.01  # a box without neighbours in the layer looked at stays put, but yields
DUMMY_BUDGET_PER_ITEM = 2  # dummies allowed per item (plus DUMMY_BUDGET): past them, the
DUMMY_BUDGET = 1000  # longest edges run straight, so the work stays linear in the graph


@dataclass
class Level:
    """Where ``arrange`` put things. Per item: ``x``, ``y`` (top-left), ``layer``, the top
    and bottom of its row (a grid row, else its layer's band), whether that row is its
    layer's first or last, and in a grid the x of the free corridors either side of its
    column. Per edge: ``back``, the x of its ``lane`` (back edges but loops, else -1), and
    the x of its ``bends`` in the layers strictly between its ends."""

    width: int = 0
    height: int = 0
    x: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    layer: list[int] = field(default_factory=list)
    band_top: list[int] = field(default_factory=list)
    band_bottom: list[int] = field(default_factory=list)
    row_top: list[int] = field(default_factory=list)
    row_bottom: list[int] = field(default_factory=list)
    first_row: list[bool] = field(default_factory=list)
    last_row: list[bool] = field(default_factory=list)
    corridor_left: list[int] = field(default_factory=list)
    corridor_right: list[int] = field(default_factory=list)
    back: list[bool] = field(default_factory=list)
    lane: list[int] = field(default_factory=list)
    bends: list[list[int]] = field(default_factory=list)


@dataclass(slots=True)
class _Unit:
    """What step 5 moves as one: a box, a dummy, or a whole grid."""

    members: list[int]
    rel: list[float]  # each member's centre relative to the unit's centre
    width: int
    dummy: bool
    grid: bool = False
    isolated: bool = False  # no edge at all: it may go anywhere in its layer
    centre: float = 0.0


@dataclass
class _Grid:
    unit: _Unit
    row_offset: list[int]  # each row's top relative to the band's top
    row_height: list[int]
    cell: dict[int, tuple[int, int, int, int]]  # member -> row, left in unit, column left, column right


def arrange(sizes: Sequence[tuple[int, int]], edges: Sequence[tuple[int, int]], max_row: int) -> Level:
    """Lay out items of the given (width, height) joined by edges (pairs of item indexes,
    no repeats; ``(i, i)`` is a loop)."""
    n = len(sizes)
    if n == 0:
        return Level()
    out: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (a, b) in enumerate(edges):
        out[a].append((b, k))
    back, topo = _back_edges(out, len(edges))
    layer = [0] * n
    for a in topo:
        for b, k in out[a]:
            if not back[k] and layer[b] <= layer[a]:
                layer[b] = layer[a] + 1

    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    item_layer = layer[:]
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    bends: list[list[int]] = [[] for _ in edges]
    budget = DUMMY_BUDGET_PER_ITEM * n + DUMMY_BUDGET
    forward = sorted((layer[b] - layer[a], k) for k, (a, b) in enumerate(edges) if not back[k])
    for span, k in forward:  # shortest first: most edges bent for the budget
        if span - 1 > budget:
            break
        budget -= span - 1
        a, b = edges[k]
        prev = a
        for depth in range(layer[a] + 1, layer[b]):
            dummy = len(item_layer)
            item_layer.append(depth)
            widths.append(0)
            heights.append(0)
            preds.append([prev])
            succs.append([])
            succs[prev].append(dummy)
            bends[k].append(dummy)
            prev = dummy
        succs[prev].append(b)
        preds[b].append(prev)

    layers: list[list[int]] = [[] for _ in range(max(layer) + 1)]
    for v, depth in enumerate(item_layer):
        layers[depth].append(v)
    _order(layers, preds, succs, len(item_layer))
    return _coordinates(n, layers, widths, heights, preds, succs, layer, edges, back, bends, max_row)


def _back_edges(out: list[list[tuple[int, int]]], count: int) -> tuple[list[bool], list[int]]:
    """Back edges of a depth-first search from each unvisited item in order, and the items
    in reverse post-order (a topological order once the back edges are left out)."""
    back = [False] * count
    state = [0] * len(out)  # 0 unseen, 1 on the stack, 2 done
    post: list[int] = []
    for root in range(len(out)):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, todo = stack[-1]
            for b, k in todo:
                if state[b] == 1:
                    back[k] = True
                elif state[b] == 0:
                    state[b] = 1
                    stack.append((b, iter(out[b])))
                    break
            else:
                state[node] = 2
                post.append(node)
                stack.pop()
    post.reverse()
    return back, post


def _order(layers: list[list[int]], preds: list[list[int]], succs: list[list[int]], total: int) -> None:
    pos = [0] * total
    for row in layers:
        for i, v in enumerate(row):
            pos[v] = i
    for _ in range(ORDER_SWEEPS):
        moved = False
        for depth in range(1, len(layers)):
            moved = _sort(layers[depth], preds, pos) or moved
        for depth in range(len(layers) - 2, -1, -1):
            moved = _sort(layers[depth], succs, pos) or moved
        if not moved:
            break


def _sort(row: list[int], nbrs: list[list[int]], pos: list[int]) -> bool:
    """Order a layer by the mean position of each item's neighbours (its own if none);
    whether the order changed."""
    if len(row) < 2:
        return False
    keyed = []
    for v in row:
        nb = nbrs[v]
        if len(nb) == 1:
            keyed.append((float(pos[nb[0]]), pos[v], v))
        else:
            keyed.append((sum(pos[u] for u in nb) / len(nb) if nb else float(pos[v]), pos[v], v))
    keyed.sort()
    moved = False
    for i, (_, _, v) in enumerate(keyed):
        if row[i] != v:
            row[i] = v
            pos[v] = i
            moved = True
    return moved


def _units(row: list[int], n: int, widths: list[int], heights: list[int], max_row: int) -> tuple[list[_Unit], _Grid | None]:
    real = [v for v in row if v < n]
    if len(real) <= max_row:
        return [_Unit([v], [0.0], widths[v], v >= n) for v in row], None
    cols = max_row
    rows = -(-len(real) // cols)
    col_w = [0] * cols
    row_h = [0] * rows
    for i, v in enumerate(real):
        col_w[i % cols] = max(col_w[i % cols], widths[v])
        row_h[i // cols] = max(row_h[i // cols], heights[v])
    col_left = [0] * cols
    for c in range(1, cols):
        col_left[c] = col_left[c - 1] + col_w[c - 1] + GAP_X
    grid_w = col_left[-1] + col_w[-1]
    row_offset = [0] * rows
    for r in range(1, rows):
        row_offset[r] = row_offset[r - 1] + row_h[r - 1] + ROW_GAP
    cell: dict[int, tuple[int, int, int, int]] = {}
    rel: list[float] = []
    for i, v in enumerate(real):
        c = i % cols
        left = col_left[c] + (col_w[c] - widths[v]) // 2
        cell[v] = (i // cols, left, col_left[c], col_left[c] + col_w[c])
        rel.append(left + widths[v] / 2 - grid_w / 2)
    grid = _Grid(_Unit(real, rel, grid_w, False, grid=True), row_offset, row_h, cell)
    # Bends of long edges run past the grid: on the side where most of their order lies.
    before: list[_Unit] = []
    after: list[_Unit] = []
    seen = 0
    for v in row:
        if v < n:
            seen += 1
        else:
            (before if seen < len(real) / 2 else after).append(_Unit([v], [0.0], 0, True))
    return [*before, grid.unit, *after], grid


def _gap(a: _Unit, b: _Unit) -> int:
    return GAP_X if a.grid or b.grid or not (a.dummy or b.dummy) else DUMMY_GAP


def _place(units: list[_Unit], offsets: list[float], nbrs: list[list[int]], cx: list[float]) -> float:
    """Move a layer's units as near their neighbours' mean centre as order and gaps allow;
    how far the furthest moved.

    Solved for ``centre - offset`` (``offsets``: the centres of the layer packed from 0),
    which the gaps require to be non-decreasing."""
    targets: list[float] = []
    weights: list[float] = []
    pulled: list[bool] = []  # has neighbours in the layer looked at
    for unit, offset in zip(units, offsets, strict=True):
        total = 0.0
        count = 0
        if unit.grid:
            for v, r in zip(unit.members, unit.rel, strict=True):
                nb = nbrs[v]
                if nb:
                    total += sum(cx[u] for u in nb) / len(nb) - r
                    count += 1
        else:  # the common case, quicker
            nb = nbrs[unit.members[0]]
            if nb:
                total = cx[nb[0]] if len(nb) == 1 else sum(cx[u] for u in nb) / len(nb)
                count = 1
        if count:
            targets.append(total / count - offset)
            weights.append(count * (DUMMY_WEIGHT if unit.dummy else 1.0))
        else:
            targets.append(unit.centre - offset)
            weights.append(IDLE_WEIGHT)
        pulled.append(count > 0)
    # A unit without any edge closes up on the pulled unit before it (the first: after it).
    if any(pulled):
        anchor = pulled.index(True)
        for i, unit in enumerate(units):
            if pulled[i]:
                anchor = i
            elif unit.isolated:
                targets[i] = targets[anchor]
    moved = 0.0
    solved = _isotonic(targets, weights) if len(units) > 1 else targets
    for unit, z, offset in zip(units, solved, offsets, strict=True):
        centre = z + offset
        shift = abs(centre - unit.centre)
        if shift > moved:
            moved = shift
        unit.centre = centre
        if unit.grid:
            for v, r in zip(unit.members, unit.rel, strict=True):
                cx[v] = centre + r
        else:
            cx[unit.members[0]] = centre
    return moved


def _isotonic(values: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence nearest ``values`` in weighted least squares (PAV)."""
    means: list[float] = []
    mass: list[float] = []
    counts: list[int] = []
    for value, weight in zip(values, weights, strict=True):
        count = 1
        while means and means[-1] > value:
            m, w, c = means.pop(), mass.pop(), counts.pop()
            value = (m * w + value * weight) / (w + weight)
            weight += w
            count += c
        means.append(value)
        mass.append(weight)
        counts.append(count)
    result: list[float] = []
    for m, c in zip(means, counts, strict=True):
        result.extend([m] * c)
    return result


def _coordinates(
    n: int, layers: list[list[int]], widths: list[int], heights: list[int],
    preds: list[list[int]], succs: list[list[int]], layer: list[int],
    edges: Sequence[tuple[int, int]], back: list[bool], bend_items: list[list[int]], max_row: int,
) -> Level:  # fmt: skip
    total = len(widths)
    built = [_units(row, n, widths, heights, max_row) for row in layers]
    for units, _ in built:
        for unit in units:
            unit.isolated = not any(preds[v] or succs[v] for v in unit.members)
    cx = [0.0] * total
    packed: list[list[float]] = []
    for units, _ in built:  # packed, centred on 0
        offsets = [0.0] * len(units)
        for i in range(1, len(units)):
            prev, unit = units[i - 1], units[i]
            offsets[i] = offsets[i - 1] + (prev.width + unit.width) / 2 + _gap(prev, unit)
        packed.append(offsets)
        for unit, offset in zip(units, offsets, strict=True):
            unit.centre = offset - offsets[-1] / 2
            for v, r in zip(unit.members, unit.rel, strict=True):
                cx[v] = unit.centre + r
    for _ in range(PLACE_SWEEPS):
        moved = 0.0
        for depth in range(1, len(built)):
            moved = max(moved, _place(built[depth][0], packed[depth], preds, cx))
        for depth in range(len(built) - 2, -1, -1):
            moved = max(moved, _place(built[depth][0], packed[depth], succs, cx))
        if moved < 0.5:
            break

    # Whole pixels; a grid's outer corridors are inside the level.
    lefts: list[list[int]] = []
    low = math.inf
    high = -math.inf
    for units, grid in built:
        margin = GAP_X // 2 if grid is not None and len(grid.row_height) > 1 else 0
        row_lefts = [math.floor(u.centre - u.width / 2 + 0.5) for u in units]
        lefts.append(row_lefts)
        low = min(low, row_lefts[0] - margin)
        high = max(high, row_lefts[-1] + units[-1].width + margin)
    shift = -int(low)
    content_w = int(high) + shift

    level = Level()
    level.layer = layer
    level.back = back
    x = [0] * total
    level.corridor_left = [-1] * n
    level.corridor_right = [-1] * n
    row_of = [0] * n
    for (units, grid), row_lefts in zip(built, lefts, strict=True):
        for unit, left in zip(units, row_lefts, strict=True):
            left += shift
            if unit.grid and grid is not None:
                for v in unit.members:
                    r, off, col_left, col_right = grid.cell[v]
                    x[v] = left + off
                    row_of[v] = r
                    level.corridor_left[v] = left + col_left - GAP_X // 2
                    level.corridor_right[v] = left + col_right + GAP_X // 2
            else:
                x[unit.members[0]] = left

    # Back edges share a lane when the layers they span do not meet. A loop instead circles
    # its box on the right, in the gap (``LOOP_GAP``) beside it.
    margin = 2 * LOOP_GAP if any(a == b for a, b in edges) else 0
    lanes: list[tuple[int, int]] = []
    level.lane = [-1] * len(edges)
    spans = sorted((layer[b], layer[a], k) for k, (a, b) in enumerate(edges) if back[k] and a != b)
    count = 0
    for top, bottom, k in spans:
        if lanes and lanes[0][0] < top:
            _, lane = heapq.heappop(lanes)
        else:
            lane, count = count, count + 1
        heapq.heappush(lanes, (bottom, lane))
        level.lane[k] = content_w + margin + LANE_GAP * (lane + 1)
    level.width = content_w + margin + (LANE_GAP * (count + 1) if count else 0)

    last = len(layers) - 1
    y_pos = BACK_PAD if any(back[k] and layer[b] == 0 for k, (_, b) in enumerate(edges)) else 0
    for depth, (_, grid) in enumerate(built):
        level.band_top.append(y_pos)
        if grid is not None:
            y_pos += grid.row_offset[-1] + grid.row_height[-1]
        else:
            y_pos += max(heights[v] for v in layers[depth] if v < n)
        level.band_bottom.append(y_pos)
        y_pos += GAP_Y
    bottom_pad = any(back[k] and layer[a] == last for k, (a, _) in enumerate(edges))
    level.height = level.band_bottom[-1] + (BACK_PAD if bottom_pad else 0)

    level.x = x[:n]
    level.y = [0] * n
    level.row_top = [0] * n
    level.row_bottom = [0] * n
    level.first_row = [True] * n
    level.last_row = [True] * n
    for depth, (_, grid) in enumerate(built):
        top = level.band_top[depth]
        for v in layers[depth]:
            if v >= n:
                continue
            if grid is None:
                level.y[v] = level.row_top[v] = top
                level.row_bottom[v] = level.band_bottom[depth]
                continue
            r = row_of[v]
            level.y[v] = level.row_top[v] = top + grid.row_offset[r]
            level.row_bottom[v] = level.row_top[v] + grid.row_height[r]
            level.first_row[v] = r == 0
            level.last_row[v] = r == len(grid.row_height) - 1
    level.bends = [[x[d] for d in chain] for chain in bend_items]
    return level
