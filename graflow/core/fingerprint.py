"""The graph's definition fingerprint: same code, same fingerprint, in any process.

Unlike ``graph_hash`` (the sha256 of one pickled blob, closure values included), the
fingerprint hashes only the definition: node kinds, function code, edges, group
members and policies. Line numbers and file names are left out, so moving code
around a file does not count as a change.
"""

from __future__ import annotations

import hashlib
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            h.update(repr(const).encode())


def function_code(func: Any) -> str:
    """``module:qualname#`` plus the sha256 of the function's bytecode, constants and names."""
    target = getattr(func, "__wrapped__", func)
    module = getattr(target, "__module__", "") or ""
    qualname = getattr(target, "__qualname__", type(target).__qualname__)
    code = getattr(target, "__code__", None)
    h = hashlib.sha256()
    if code is not None:
        _code_digest(code, h)
    else:
        h.update(f"{type(target).__module__}:{type(target).__qualname__}".encode())
    return f"{module}:{qualname}#{h.hexdigest()}"


def graph_fingerprint(graph: TaskGraph) -> str:
    import msgspec

    from graflow.core.group import ParallelGroup

    nodes: list[list[str]] = []
    groups: list[list[Any]] = []
    for node_id in sorted(graph.nodes):
        task = graph.get_node(node_id)
        if isinstance(task, ParallelGroup):
            nodes.append([node_id, "group", ""])
            canonical = getattr(task.policy, "canonical", None)
            policy = canonical() if callable(canonical) else type(task.policy).__qualname__
            groups.append([node_id, [m.task_id for m in task.tasks], policy])
        elif hasattr(task, "func"):
            nodes.append([node_id, "task", function_code(task.func)])
        else:
            nodes.append([node_id, "placeholder", f"{type(task).__module__}:{type(task).__qualname__}"])
    edges = sorted([u, v] for u, v in graph.edges)
    doc = msgspec.json.encode({"nodes": nodes, "edges": edges, "groups": groups})
    return hashlib.sha256(doc).hexdigest()


__all__ = ["function_code", "graph_fingerprint"]
