"""The import graph of cdpoc: no cycles (every import counted, also those inside functions or for type
checking only), and the terminal's live views built in one module (cdpoc.ui)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cdpoc"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The cdpoc modules one module imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from cdpoc import status` imports the module cdpoc.status; `from cdpoc.x import f` imports cdpoc.x.
            candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_cdpoc() -> None:
    edges = {name: imported(name, path) for name, path in MODULES.items()}
    assert edges["cdpoc.statusrender"] >= {"cdpoc.statusviews", "cdpoc.statussnapshot"}  # the finder sees imports
    assert cycles(edges) == []


def test_rendering_a_status_snapshot_needs_no_collection() -> None:
    edges = {name: imported(name, path) for name, path in MODULES.items()}
    reachable, todo = set(), ["cdpoc.statusrender"]
    while todo:
        for target in edges[todo.pop()] - reachable:
            reachable.add(target)
            todo.append(target)
    assert not reachable & {"cdpoc.status", "cdpoc.statuscollect", "cdpoc.statuswatch", "cdpoc.statusprobe"}
    assert not any(module.startswith("cdpoc.aws") for module in reachable)


@pytest.mark.parametrize(
    "module",
    ["cdpoc.statusviews", "cdpoc.statushealth", "cdpoc.statussnapshot", "cdpoc.statusrender", "cdpoc.status"],
)
def test_each_status_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=PACKAGE.parent)


def imported_names(path: Path) -> set[str]:
    """Every dotted name an import statement in the file names: modules, and module.attribute for from-imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_ui_builds_a_live_view() -> None:
    users = sorted(
        name
        for name, path in MODULES.items()
        if any(n == "rich.live" or n.startswith("rich.live.") for n in imported_names(path))
    )
    assert users == ["cdpoc.ui"]


def test_every_package_of_cdpoc_is_in_the_distribution() -> None:
    """pyproject lists the packages by hand: one left out installs fine in editable mode (as the tests run)
    and is missing from a real install."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "cdpoc").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk - listed == set()
