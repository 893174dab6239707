"""No import cycle inside graflow/worker: each module can be read (and loaded) on its own.

Function-level imports count (a cycle deferred to call time is still a cycle);
imports under ``if TYPE_CHECKING:`` do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "graflow" / "worker"


def _imports(path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found & modules


def test_no_import_cycle_in_graflow_worker() -> None:
    paths = {f"graflow.worker.{p.stem}": p for p in WORKER.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path, set(paths)) for name, path in paths.items()}
    cycles: list[list[str]] = []

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append([*trail, start])
            elif nxt not in trail and nxt > start:
                walk(start, nxt, [*trail, nxt])

    for name in sorted(graph):
        walk(name, name, [name])
    assert cycles == []
    assert graph["graflow.worker.supervisor"]  # the check sees imports
