"""The dashboard's graph layout (``graflow.dashboard.layout``): what a drawing must hold.

Every case goes through ``check``: each task and group drawn once, in whole pixels, inside
the drawing; members inside their group's box; no two boxes overlapping unless one group
holds the other; each edge from the bottom of its source's box to the top of its target's,
never through a box it does not end at (where the layout promises that).
"""

from __future__ import annotations

import copy
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from graflow.dashboard.layout import NODE_H, NODE_W, layout

Rect = tuple[int, int, int, int]
CELL = 256  # the side of a bucket of the spatial index


def task(node: str, **extra: Any) -> dict[str, Any]:
    return {"id": node, "kind": "task", **extra}


def group(node: str, members: list[str]) -> dict[str, Any]:
    return {"id": node, "kind": "group", "members": members}


def chain_shape(ids: list[str]) -> dict[str, Any]:
    return {"nodes": [task(i) for i in ids], "edges": [[a, b] for a, b in pairwise(ids)]}


# -- the checks ---------------------------------------------------------------------------


def _cells(x0: float, y0: float, x1: float, y1: float) -> Iterator[tuple[int, int]]:
    for cx in range(math.floor(x0 / CELL), math.floor(x1 / CELL) + 1):
        for cy in range(math.floor(y0 / CELL), math.floor(y1 / CELL) + 1):
            yield cx, cy


def index(rects: dict[str, Rect]) -> dict[tuple[int, int], list[str]]:
    """A uniform grid of buckets: each cell lists the rectangles touching it."""
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for name, (x, y, w, h) in rects.items():
        for cell in _cells(x, y, x + w, y + h):
            buckets[cell].append(name)
    return buckets


def overlapping(rects: dict[str, Rect]) -> set[tuple[str, str]]:
    """Pairs of rectangles whose interiors meet; only those sharing a bucket are compared,
    so a drawing of thousands of boxes is checked in about linear time."""
    found: set[tuple[str, str]] = set()
    for names in index(rects).values():
        for i, a in enumerate(names):
            ax, ay, aw, ah = rects[a]
            for b in names[i + 1 :]:
                bx, by, bw, bh = rects[b]
                if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                    found.add((a, b) if a < b else (b, a))
    return found


def crosses(p: list[int], q: list[int], rect: Rect) -> bool:
    """Does segment pq pass through the inside of rect (not just along its border)?"""
    x, y, w, h = rect
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for delta, low, high, start in ((dx, x, x + w, p[0]), (dy, y, y + h, p[1])):
        if delta == 0:
            if not low <= start <= high:
                return False
            continue
        a, b = (low - start) / delta, (high - start) / delta
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t0 > t1:
        return False
    t = (t0 + t1) / 2  # the middle of the clipped part is inside iff any of it is
    mx, my = p[0] + t * dx, p[1] + t * dy
    return x < mx < x + w and y < my < y + h


def box(drawing: dict[str, Any], node: str) -> Rect:
    b = drawing["nodes"].get(node) or drawing["groups"][node]
    return b["x"], b["y"], b["w"], b["h"]


def check(shape: dict[str, Any], drawing: dict[str, Any], *, through_boxes: bool = False) -> None:
    """The invariants of every drawing (``through_boxes``: edges may cross boxes)."""
    json.dumps(drawing)  # what the web app sends
    tasks = [n["id"] for n in shape.get("nodes", []) if n.get("kind") != "group"]
    groups = [n["id"] for n in shape.get("nodes", []) if n.get("kind") == "group"]
    assert list(drawing["nodes"]) == tasks
    assert list(drawing["groups"]) == groups
    width, height = drawing["width"], drawing["height"]
    rects = {n: box(drawing, n) for n in [*tasks, *groups]}
    for name, (x, y, w, h) in rects.items():
        assert all(isinstance(v, int) for v in (x, y, w, h)), name
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, name
    for name in tasks:
        assert rects[name][2:] == (NODE_W, NODE_H)
    for name in groups:
        assert drawing["groups"][name]["label"] == name

    holder: dict[str, str] = {}
    for n in shape.get("nodes", []):
        for member in n.get("members", []) if n.get("kind") == "group" else []:
            holder.setdefault(member, n["id"])

    def holds(outer: str, inner: str) -> bool:
        while inner in holder:
            inner = holder[inner]
            if inner == outer:
                return True
        return False

    for member, g in holder.items():
        mx, my, mw, mh = rects[member]
        gx, gy, gw, gh = rects[g]
        assert gx < mx and mx + mw < gx + gw and gy < my and my + mh < gy + gh, (member, g)
    bad = {(a, b) for a, b in overlapping(rects) if not holds(a, b) and not holds(b, a)}
    assert not bad, f"overlapping boxes: {sorted(bad)[:5]}"

    buckets = index({n: rects[n] for n in tasks})
    for edge in drawing["edges"]:
        u, v, points = edge["from"], edge["to"], edge["points"]
        assert len(points) >= 2 and all(isinstance(c, int) for p in points for c in p)
        assert all(0 <= px <= width and 0 <= py <= height for px, py in points), edge
        ux, uy, uw, uh = rects[u]
        vx, vy, vw, _ = rects[v]
        assert points[0][1] == uy + uh and ux <= points[0][0] <= ux + uw, edge
        assert points[-1][1] == vy and vx <= points[-1][0] <= vx + vw, edge
        if through_boxes:
            continue
        for p, q in pairwise(points):
            near = {n for c in _cells(min(p[0], q[0]), min(p[1], q[1]), max(p[0], q[0]), max(p[1], q[1])) for n in buckets.get(c, ())}
            hit = [n for n in near if n not in (u, v) and not holds(u, n) and not holds(v, n) and crosses(p, q, rects[n])]
            assert not hit, f"{u} -> {v} runs through {hit}"


def edge_of(drawing: dict[str, Any], u: str, v: str) -> dict[str, Any]:
    return next(e for e in drawing["edges"] if (e["from"], e["to"]) == (u, v))


def laid_out(shape: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    drawing = layout(shape, **kwargs)
    check(shape, drawing)
    return drawing


# -- the cases ----------------------------------------------------------------------------


def test_a_chain_runs_straight_down() -> None:
    d = laid_out(chain_shape(["a", "b", "c", "d"]))
    xs = {d["nodes"][n]["x"] for n in "abcd"}
    ys = [d["nodes"][n]["y"] for n in "abcd"]
    assert len(xs) == 1 and ys == sorted(ys) and len(set(ys)) == 4
    assert d["width"] == NODE_W
    assert not any(e["back"] for e in d["edges"])
    assert [len(e["points"]) for e in d["edges"]] == [2, 2, 2]  # straight


def test_a_diamond_puts_the_branches_side_by_side_between_fork_and_join() -> None:
    shape = {"nodes": [task(n) for n in "abcd"], "edges": [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]]}
    d = laid_out(shape)
    a, b, c, j = (d["nodes"][n] for n in "abcd")
    assert a["y"] < b["y"] == c["y"] < j["y"]
    assert b["x"] + NODE_W <= c["x"]
    # Fork and join centred over the branches.
    assert a["x"] == j["x"] == (b["x"] + c["x"]) // 2


def test_a_long_edge_bends_round_the_boxes_it_passes() -> None:
    shape = {"nodes": [task(n) for n in "abcd"], "edges": [["a", "b"], ["b", "c"], ["c", "d"], ["a", "d"]]}
    d = laid_out(shape)  # check: a -> d does not run through b or c
    assert len(edge_of(d, "a", "d")["points"]) > 2


def test_a_group_of_a_thousand_wraps_into_rows_of_max_row() -> None:
    members = [f"m{i}" for i in range(1000)]
    shape = {
        "nodes": [task("start"), group("ParallelGroup_1", members), *[task(m) for m in members], task("end")],
        "edges": [["start", "ParallelGroup_1"], ["ParallelGroup_1", "end"]],
    }
    for max_row in (24, 10):
        d = laid_out(shape, max_row=max_row)
        g = d["groups"]["ParallelGroup_1"]
        assert g["w"] <= max_row * (NODE_W + 24) + 24
        assert d["width"] <= g["w"] + 2 * NODE_W
        rows = {d["nodes"][m]["y"] for m in members}
        columns = {d["nodes"][m]["x"] for m in members}
        assert len(rows) == math.ceil(1000 / max_row) and len(columns) == max_row
        assert d["nodes"]["start"]["y"] < g["y"] and g["y"] + g["h"] < d["nodes"]["end"]["y"]


def test_a_thousand_dynamic_successors_wrap_and_are_reached_between_the_rows() -> None:
    spawned = [f"dyn_{i}" for i in range(1000)]
    shape = {
        "nodes": [task("spawner"), *[task(s, dynamic=True) for s in spawned], task("collect")],
        "edges": [["spawner", s] for s in spawned] + [[s, "collect"] for s in spawned],
    }
    d = laid_out(shape)  # check: no edge runs through a box, though most enter a lower row
    assert d["width"] <= 24 * (NODE_W + 24) + 2 * 24
    spawner, collect = d["nodes"]["spawner"], d["nodes"]["collect"]
    assert all(spawner["y"] < d["nodes"][s]["y"] < collect["y"] for s in spawned)
    assert len({d["nodes"][s]["y"] for s in spawned}) == math.ceil(1000 / 24)


def test_dynamic_tasks_hang_below_the_task_that_made_them() -> None:
    shape = {
        "nodes": [task("a"), task("b"), task("d1", dynamic=True), task("d2", dynamic=True), task("c")],
        "edges": [["a", "b"], ["b", "c"], ["b", "d1"], ["d1", "d2"]],
    }
    d = laid_out(shape)
    assert d["nodes"]["b"]["y"] < d["nodes"]["d1"]["y"] < d["nodes"]["d2"]["y"]


def test_nested_groups_are_boxes_in_boxes() -> None:
    shape = {
        "nodes": [
            task("start"),
            group("outer", ["x", "inner", "inner2"]),
            task("x"),
            group("inner", ["p", "q", "r"]),
            task("p"), task("q"), task("r"),
            group("inner2", ["deep"]),
            group("deep", ["s"]),
            task("s"),
            group("empty", []),
            task("end"),
        ],
        "edges": [["start", "outer"], ["outer", "end"], ["x", "inner"], ["p", "q"], ["empty", "end"]],
    }  # fmt: skip
    d = laid_out(shape)
    outer, inner = d["groups"]["outer"], d["groups"]["inner"]
    assert d["nodes"]["x"]["y"] < inner["y"]  # x -> inner inside outer
    assert d["nodes"]["p"]["y"] < d["nodes"]["q"]["y"] and d["nodes"]["r"]["y"] == d["nodes"]["p"]["y"]
    assert d["nodes"]["start"]["y"] < outer["y"] and outer["y"] + outer["h"] < d["nodes"]["end"]["y"]
    assert d["groups"]["empty"]["w"] == NODE_W and d["groups"]["empty"]["h"] == NODE_H


def test_an_edge_between_members_of_different_groups_runs_between_them() -> None:
    shape = {
        "nodes": [group("g1", ["a", "b"]), task("a"), task("b"), group("g2", ["c"]), task("c"), task("z")],
        "edges": [["a", "c"], ["b", "z"]],
    }
    d = layout(shape)
    check(shape, d, through_boxes=True)  # drawn from inside its source's box
    assert d["groups"]["g1"]["y"] < d["groups"]["g2"]["y"]
    assert d["groups"]["g1"]["y"] < d["nodes"]["z"]["y"]


def test_a_loop_marks_the_edge_that_closes_it_and_draws_it_upward() -> None:
    shape = {
        "nodes": [task("a"), group("ParallelGroup_1", ["b", "c"]), task("b"), task("c"), task("d"), task("e")],
        "edges": [["a", "ParallelGroup_1"], ["ParallelGroup_1", "d"], ["d", "e"], ["e", "a"]],
    }
    d = laid_out(shape)
    assert [(e["from"], e["to"]) for e in d["edges"] if e["back"]] == [("e", "a")]
    back = edge_of(d, "e", "a")["points"]
    assert back[-1][1] < back[0][1]
    # It goes up beside the drawing, right of every box.
    right = max(x + w for x, _, w, _ in (box(d, n) for n in ["a", "ParallelGroup_1", "d", "e"]))
    assert max(x for x, _ in back) > right
    ys = [d["nodes"][n]["y"] for n in "ade"]
    assert ys == sorted(ys)


def test_a_self_loop_is_a_back_edge_round_its_box() -> None:
    shape = {"nodes": [task("a"), task("b"), group("g", ["c"]), task("c")], "edges": [["a", "b"], ["b", "b"], ["c", "c"]]}
    d = laid_out(shape)
    assert edge_of(d, "b", "b")["back"] and edge_of(d, "c", "c")["back"]
    assert not edge_of(d, "a", "b")["back"]


def test_the_back_edge_depends_on_node_order() -> None:
    edges = [["a", "b"], ["b", "a"]]
    first = layout({"nodes": [task("a"), task("b")], "edges": edges})
    second = layout({"nodes": [task("b"), task("a")], "edges": edges})
    assert [e["back"] for e in first["edges"]] == [False, True]
    assert [e["back"] for e in second["edges"]] == [True, False]


def test_the_empty_shape() -> None:
    shapes: list[dict[str, Any]] = [{}, {"nodes": [], "edges": []}, {"nodes": None, "edges": None}]
    for shape in shapes:
        assert layout(shape) == {"width": 0, "height": 0, "nodes": {}, "groups": {}, "edges": []}


def test_what_the_layout_leaves_out() -> None:
    shape = {
        "nodes": [
            task("a"), task("b"), task("a"),  # a repeated id: the first counts
            "not a node", {"kind": "task"}, {"id": 7},
            group("g", ["m", "ghost", "g", "m"]), task("m"),
            group("h", ["m", "g"]),  # m is already g's; h inside g inside h: no
        ],
        "edges": [
            ["a", "b"], ["a", "b"], ["a", "ghost"], ["ghost", "b"], ["a"], "ab", [1, 2], [["a"], "b"],
            ["g", "m"], ["m", "g"],  # a group and its member: the box shows it
        ],
    }  # fmt: skip
    d = layout(shape)
    assert list(d["nodes"]) == ["a", "b", "m"] and list(d["groups"]) == ["g", "h"]
    assert [(e["from"], e["to"]) for e in d["edges"]] == [("a", "b")]
    g, m = d["groups"]["g"], d["nodes"]["m"]
    assert g["x"] < m["x"] and m["y"] + m["h"] < g["y"] + g["h"]
    with pytest.raises(ValueError, match="max_row"):
        layout(shape, max_row=0)


def test_ids_are_opaque_strings() -> None:
    ids = ["", " ", "<script>alert(1)</script>", "a\nb", "nodes", "__proto__", "0", "\u00e9\u4e2d\U0001f600", "x" * 500]
    shape = chain_shape(ids)
    shape["nodes"].append(group("group", ["members"]))
    shape["nodes"].append(task("members"))
    d = laid_out(shape)
    assert list(d["nodes"]) == [*ids, "members"]
    assert [(e["from"], e["to"]) for e in d["edges"]] == list(pairwise(ids))


def test_the_same_shape_gives_the_same_drawing() -> None:
    members = [f"m{i}" for i in range(40)]
    shape = {
        "nodes": [task(n) for n in "abcdef"] + [group("g", members)] + [task(m) for m in members],
        "edges": [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"], ["a", "d"], ["d", "g"], ["g", "e"],
                  ["e", "f"], ["f", "b"], ["f", "f"], ["c", "e"]],
    }  # fmt: skip
    first = laid_out(shape, max_row=8)
    assert layout(copy.deepcopy(shape), max_row=8) == first
    assert json.dumps(layout(json.loads(json.dumps(shape)), max_row=8)) == json.dumps(first)


def test_a_larger_random_workflow_keeps_every_invariant() -> None:
    import random

    rnd = random.Random(7)
    ids = [f"n{i}" for i in range(300)]
    nodes: list[dict[str, Any]] = [task(i) for i in ids]
    edges = []
    for i in range(1, len(ids)):
        for _ in range(rnd.choice([1, 1, 2])):
            edges.append([ids[max(0, i - rnd.randint(1, 15))], ids[i]])
        if rnd.random() < 0.05:
            edges.append([ids[i], ids[i - rnd.randint(0, 6)]])  # loops, self-loops too
    for g in range(6):
        members = [f"g{g}_{k}" for k in range(rnd.randint(1, 30))]
        nodes += [group(f"G{g}", members), *[task(m) for m in members]]
        edges += [[rnd.choice(ids), f"G{g}"], [f"G{g}", rnd.choice(ids)]]
    shape = {"nodes": nodes, "edges": edges}
    d = laid_out(shape, max_row=12)
    assert any(e["back"] for e in d["edges"])


def test_a_dense_graph_stays_within_the_dummy_budget() -> None:
    # Every task feeds every later one: far more long-edge bends than the budget allows,
    # so the longest edges run straight (through boxes) and the work stays linear.
    ids = [f"t{i}" for i in range(80)]
    shape = {"nodes": [task(i) for i in ids], "edges": [[a, b] for i, a in enumerate(ids) for b in ids[i + 1 :]]}
    d = layout(shape)
    check(shape, d, through_boxes=True)
    assert [d["nodes"][i]["y"] for i in ids] == sorted({d["nodes"][i]["y"] for i in ids})
    assert any(len(e["points"]) == 2 and e["to"] != f"t{int(e['from'][1:]) + 1}" for e in d["edges"])
