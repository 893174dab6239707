"""The layers of docs/architecture.md, checked on the source: no upward import, no cycle.

Every ``import`` in ``graflow/`` counts — at module level, inside functions and under
``TYPE_CHECKING`` — for the layer rule. Cycles are checked on the imports that run
(``TYPE_CHECKING`` blocks never do), at module granularity.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from graflow.core.scheduler import strongly_connected

ROOT = Path(__file__).resolve().parents[1] / "graflow"

# Bottom to top. A module belongs to the first layer with a prefix matching its name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", (
        "graflow.exceptions", "graflow.exit_codes", "graflow.defaults", "graflow.settings", "graflow.settings_values",
        "graflow.identifiers",
        "graflow.version", "graflow.keys", "graflow.limits", "graflow.crash",
        "graflow.codec", "graflow.codec_keys", "graflow.codec_origin", "graflow.redisconn", "graflow.redisconfig",
        "graflow.wire",
    )),
    ("state", ("graflow.channels", "graflow.storage")),
    # graflow.trace: the core calls it at run time; it names core types only under TYPE_CHECKING.
    ("core", ("graflow.core", "graflow.trace")),
    ("pool", ("graflow.distributed",)),
    ("workers", ("graflow.worker",)),
    ("dashboard", ("graflow.dashboard",)),
    ("cli", ("graflow.cli", "graflow.__main__")),
    # Upstream module paths kept as re-exports, and the package root that wires the
    # layers together (it points the core at the pool driver).
    ("edge", ("graflow.queue", "graflow.coordination", "graflow.utils", "graflow")),
]


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    runs: bool  # False under ``if TYPE_CHECKING:``


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "graflow"):
            return rank
    if module == "graflow":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _resolve(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # ``from pkg import mod`` imports the submodule when there is one.
        names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("graflow"):
            yield name


def imports() -> list[Import]:
    found = []
    for module, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _resolve(module, path.name == "__init__.py", node):
                    if target != module:
                        found.append(Import(module, target, node.lineno, id(node) not in skipped))
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (the scheduler's Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for edge in edges:
        graph[edge.source].add(edge.target)
    return [sorted(c) for c in strongly_connected(sorted(graph), graph) if len(c) > 1]


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = sorted({
        f"{e.source}:{e.line} imports {e.target} ({LAYERS[layer_of(e.source)][0]} -> {LAYERS[layer_of(e.target)][0]})"
        for e in imports()
        if layer_of(e.target) > layer_of(e.source)
    })
    assert not upward, "upward imports (see docs/architecture.md):\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    found = cycles([e for e in imports() if e.runs])
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_function_level_imports_and_cycles() -> None:
    # The checks above are only as good as the parser: prove it sees what it must.
    edges = imports()
    seen = {(e.source, e.target, e.runs) for e in edges}
    assert ("graflow.core.context", "graflow.core.engine", True) in seen  # inside a method
    assert ("graflow.core.engine", "graflow.core.context", False) in seen  # under TYPE_CHECKING
    a_cycle = [Import("graflow.core.engine", "graflow.core.context", 1, True), *edges]
    assert any("graflow.core.engine" in c for c in cycles([e for e in a_cycle if e.runs]))


def test_the_upstream_paths_are_thin_re_exports() -> None:
    # The edge packages hold no code of their own: a change belongs in the layer below.
    for module, path in MODULES.items():
        if layer_of(module) != len(LAYERS) - 1 or module == "graflow":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bodies = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom | ast.Expr | ast.Assign)]
        assert not bodies, f"{module} defines {[type(n).__name__ for n in bodies]}; move it into its layer"
