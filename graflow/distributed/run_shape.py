"""A run's graph as plain JSON: what the dashboard draws, with no code in it.

The graph itself is a cloudpickle that only a process holding the workflow's modules can
load (and should load only when it trusts the key it is signed with). Its *shape* —
node ids, which nodes are groups and of which members, the edges — is written beside the
session at submit (``keys.SessionKeys.shape``), so a viewer reads a run without
unpickling anything. Dynamic tasks join it at run time through ``:known`` and
``:parents`` (filled by ``COMMIT``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph


def shape_of(graph: TaskGraph) -> dict[str, Any]:
    """``{"nodes": [{"id", "kind", "members"?}], "edges": [[u, v], ...]}``: every node, group
    members included (each once, groups nesting), in graph order."""
    from graflow.core.group import ParallelGroup

    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(node_id: str, task: Any) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        if isinstance(task, ParallelGroup):
            members = [str(m.task_id) for m in task.tasks]
            nodes.append({"id": node_id, "kind": "group", "members": members})
            for member in task.tasks:
                add(str(member.task_id), member)
        else:
            nodes.append({"id": node_id, "kind": "task"})

    for node_id in graph.nodes:
        add(str(node_id), graph.task(node_id))
    edges = [[str(u), str(v)] for u, v in graph.edges]
    return {"nodes": nodes, "edges": edges}


def encode_shape(graph: TaskGraph) -> bytes:
    return msgspec.json.encode(shape_of(graph))


def decode_shape(raw: bytes | str | None) -> dict[str, Any]:
    """The stored shape, or an empty one (a run submitted before shapes were kept, or a
    value that is not one: the view then draws the tasks it learns of, without edges)."""
    empty: dict[str, Any] = {"nodes": [], "edges": []}
    if not raw:
        return empty
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return empty
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not isinstance(doc.get("edges"), list):
        return empty
    nodes = [n for n in doc["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]
    edges = [e for e in doc["edges"] if isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)]
    return {"nodes": nodes, "edges": edges}


__all__ = ["decode_shape", "encode_shape", "shape_of"]
