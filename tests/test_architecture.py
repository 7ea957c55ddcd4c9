"""The architecture's rules, checked on the import graph (grimp) and on the files themselves.

- No import cycle between modules of the service's packages. Two modules in a cycle cannot be
  read, tested or moved one without the other. Imports inside functions and under
  `TYPE_CHECKING` count: moving an import into a function hides a dependency, it does not
  remove it.
- `schemas` (the data contract) and `pseudonymise` (the privacy primitives) serve the Dagster
  code location and the LA's own checker alike, so neither imports Dagster or `ingest`, and
  `pseudonymise` does not import `schemas`.
- No module over 600 lines, tests included.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

PACKAGES = ("ingest", "schemas", "pseudonymise", "synthetic", "benchmarks")
ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600

# (package, what it must not import): a name stands for its whole family of distributions,
# so "dagster" also covers dagster_postgres, dagster_webserver and the rest.
FORBIDDEN_IMPORTS = (
    ("schemas", "dagster"),
    ("schemas", "ingest"),
    ("pseudonymise", "dagster"),
    ("pseudonymise", "ingest"),
    ("pseudonymise", "schemas"),
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        assert Path(spec.origin).is_relative_to(ROOT), f"{package} is not this checkout's"
    built = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    assert "dagster" in built.modules, "external packages are missing from the graph"
    return built


def _internal_modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m.split(".")[0] in PACKAGES}


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively; each in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _import_lines(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    lines = sorted({detail["line_number"] for detail in details})
    return ", ".join(str(line) for line in lines)


def _describe_tangle(graph: grimp.ImportGraph, component: list[str]) -> list[str]:
    """The modules of one strongly connected tangle and every import between them."""
    members = set(component)
    described = [f"  tangle of {len(component)}: {', '.join(component)}"]
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            lines = _import_lines(graph, importer, imported)
            described.append(f"    {importer} -> {imported}  (line {lines})")
    return described


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    internal = _internal_modules(graph)
    edges = {m: graph.find_modules_directly_imported_by(m) & internal for m in internal}
    tangles = [c for c in _strongly_connected(edges) if len(c) > 1 or c[0] in edges[c[0]]]

    described = [line for component in tangles for line in _describe_tangle(graph, component)]
    assert not tangles, "import cycles between modules:\n" + "\n".join(described)


def _belongs_to(module: str, name: str) -> bool:
    top = module.split(".")[0]
    return top == name or top.startswith(f"{name}_")


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN_IMPORTS)
def test_package_does_not_import(graph: grimp.ImportGraph, package: str, forbidden: str) -> None:
    modules = sorted({package} | graph.find_descendants(package))
    found = [
        f"  {importer} imports {imported}  (line {_import_lines(graph, importer, imported)})"
        for importer in modules
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if _belongs_to(imported, forbidden)
    ]

    assert not found, f"{package} must not import {forbidden}:\n" + "\n".join(found)


def _python_files() -> list[Path]:
    folders = [ROOT / package for package in PACKAGES] + [ROOT / "tests"]
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


def test_no_module_over_600_lines() -> None:
    too_long = {
        path.relative_to(ROOT): lines
        for path in _python_files()
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES
    }

    assert not too_long, f"modules over {MAX_LINES} lines:\n" + "\n".join(
        f"  {path}: {lines}" for path, lines in sorted(too_long.items())
    )
