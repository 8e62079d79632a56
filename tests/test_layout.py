"""The house: each top-level package is one stage and every import points down (keytrail → dashboard → analytics
→ ingest), the dashboard reads through analytics only, no stage imports a library that belongs to another, and no
modules import each other in a circle. Imports inside functions count as much as those at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"ingest": 1, "analytics": 2, "dashboard": 3, "keytrail": 4}
# What each stage may import of the others (beyond itself), and third-party libraries it must never import.
ALLOWED = {"ingest": set(), "analytics": {"ingest"}, "dashboard": {"analytics"}, "keytrail": {"analytics", "ingest"}}
FORBIDDEN_LIBRARIES = {"ingest": {"streamlit"}, "analytics": {"boto3", "botocore", "streamlit"}, "dashboard": {"boto3"}}


def modules() -> dict[str, Path]:
    """Every module of the four packages by dotted name."""
    found = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports(path: Path) -> set[str]:
    """The absolute module names a file imports, resolved to the longest known module or package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
            names.add(node.module)
    return names


def internal(name: str) -> str | None:
    """The module of this tree that an imported name refers to (None for a third-party import)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {mod: {t for n in imports(path) if (t := internal(n)) and t != mod} for mod, path in MODULES.items()}


def test_the_four_stages_are_found() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(FLOORS)
    assert "ingest.lake.store" in MODULES and "keytrail.jobs.nightly" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    stage = module.split(".")[0]
    wrong = sorted(t for t in GRAPH[module] if t.split(".")[0] not in ALLOWED[stage] | {stage})
    where = MODULES[module].relative_to(ROOT)
    assert not wrong, f"{where} ({stage}) imports {wrong}: a stage above it, or one it reads through analytics"
    libraries = {n.split(".")[0] for n in imports(MODULES[module])} & FORBIDDEN_LIBRARIES.get(stage, set())
    assert not libraries, f"{MODULES[module].relative_to(ROOT)} imports {sorted(libraries)}"


def test_no_import_cycles() -> None:
    """Depth-first search for a back edge; the message names the circle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for target in sorted(GRAPH[mod]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(target) :], target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[mod] = 2

    for mod in sorted(GRAPH):
        if mod not in state:
            visit(mod)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk itself catches what it is for: an import inside a function, and a from-import of a module."""
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from analytics import rollups\n    import keytrail.jobs.nightly\n")
    assert {internal(n) for n in imports(sample)} >= {"analytics.rollups", "keytrail.jobs.nightly"}
