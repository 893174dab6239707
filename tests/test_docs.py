"""docs/ stays usable: no citations of an outside contract, no dead links, no stale module paths.

The code points to docs/ pages instead of to numbered sections of a document that does not
ship with the repository; these checks keep it that way, and keep the pages' links and the
module map of docs/architecture.md true to the tree. Plain file reads, no imports.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SECTION_SIGN = "\u00a7"  # written as an escape so this file passes its own check
CODE_DIRS = ("graflow", "tests", "benchmarks", "examples")

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def python_files() -> list[Path]:
    files: list[Path] = []
    for name in CODE_DIRS:
        files += [p for p in (ROOT / name).rglob("*.py") if "__pycache__" not in p.parts]
    return files


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(h) for h in HEADING.findall(text)}


def links(path: Path) -> list[str]:
    """Link targets of a markdown file, outside code blocks and code spans."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub(lambda m: "x" * len(m.group(0)) if "](" in m.group(0) else m.group(0), text)
    return LINK.findall(text)


def test_docs_exist() -> None:
    names = {p.name for p in DOCS.glob("*.md")}
    assert {"README.md", "architecture.md", "life-of-a-task.md", "keys.md", "failover.md",
            "checkpoints.md"} <= names  # fmt: skip
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_section_citations() -> None:
    """Nothing cites numbered sections of a document outside the repository."""
    found = []
    for path in [*python_files(), *markdown_files()]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SECTION_SIGN in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "point to a docs/ page instead:\n" + "\n".join(found)


def test_relative_links_resolve() -> None:
    """Every relative link in README.md and docs/ names an existing file (and heading)."""
    broken = []
    for path in markdown_files():
        for target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)} -> {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{where}: no heading with that anchor")
    assert not broken, "\n".join(broken)


def _module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _defines(module: Path, name: str) -> bool:
    pattern = rf"^\s*(?:def|class|async def)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, module.read_text(encoding="utf-8"), re.M) is not None


def test_module_paths_in_architecture_exist() -> None:
    """Each ``graflow/…`` path and ``graflow.x.y`` name in architecture.md is in the tree
    (a dotted name may end in a function, class or constant of its module)."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for rel in set(re.findall(r"(?<![\w./])graflow/[\w/]*\w(?:\.py)?/?", text)):
        if not (ROOT / rel).exists():
            missing.append(rel)
    for dotted in set(re.findall(r"(?<![\w/])graflow(?:\.\w+)+", text)):
        if _module_file(dotted) is not None:
            continue
        parent, _, attr = dotted.rpartition(".")
        module = _module_file(parent)
        if module is None or not _defines(module, attr):
            missing.append(dotted)
    assert not missing, f"docs/architecture.md names what the tree lacks: {sorted(missing)}"
