"""The import rules of docs/architecture.md, checked on robustlit's import graph read from the source.

The graph is built with :mod:`ast` (nothing is imported): one node per module of ``robustlit/``, one edge per
``import`` / ``from ... import`` statement, at module level *and* inside functions (a deferred import is still a
dependency: it only moves the failure from import time to call time, which is how the cycles this test forbids
used to hide). ``from package import name`` is an edge to ``package.name`` where that is a module, else to the
package's ``__init__``. Two kinds of edge are left out of the cycle check, and only of it: imports under
``if TYPE_CHECKING:`` (never executed; annotations may name each other's types) and the implicit import of a
parent package that Python performs before a submodule (every file of a package with an eager ``__init__``
would otherwise sit on a cycle). The layer rules count every edge, annotations included.

Rules (see docs/architecture.md, "Import rules"):

- no import cycle among robustlit's modules;
- ``methods/`` and ``callbacks/`` do not import each other (a method never knows its evaluation, nor the reverse);
- ``attacks/`` does not import ``losses/`` (training objectives are built on attacks, not the other way round);
- the shared layers do not import ``mixed/`` (the mixed-classifier family is a client of them; only the package's
  ``__init__`` and ``cli.py``, which know all parts, may name it);
- the pure layers (``losses``, ``certify``, ``attacks``, ``models``, ``audit``) import no Lightning, neither
  directly nor through another robustlit module they import (the runtime check of the same rule is
  ``tests/test_architecture.py``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "robustlit"

PURE_LAYERS = ("robustlit.losses", "robustlit.certify", "robustlit.attacks", "robustlit.models", "robustlit.audit")
LIGHTNING = ("lightning", "pytorch_lightning")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of the file (any depth), with whether it sits under ``if TYPE_CHECKING:``."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, type_only))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def build_graph(root: Path = ROOT, package: str = "robustlit") -> tuple[set[str], list[Edge], dict[str, set[str]]]:
    """(modules, edges between them, third-party top-level packages each module imports)."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    modules = set(files)
    edges: list[Edge] = []
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_only in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative import: resolve against this module's package
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                ]
            for target in targets:
                if target.split(".")[0] != package:
                    external[name].add(target.split(".")[0])
                    continue
                while target not in modules and "." in target:  # ``import robustlit.x.y`` of a name in x.y
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    edges.append(Edge(name, target, node.lineno, type_only))
    return modules, edges, external


def find_cycle(modules: set[str], edges: list[Edge]) -> list[str] | None:
    """One cycle of the runtime import graph as [a, b, ..., a], or None (iterative depth-first search)."""
    successors: dict[str, list[str]] = {name: [] for name in modules}
    for edge in edges:
        if not edge.type_only and edge.target not in successors[edge.source]:
            successors[edge.source].append(edge.target)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(modules):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(successors[start]))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return [*path[path.index(step) :], step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(successors[step])))
    return None


def find_cycles(modules: set[str], edges: list[Edge]) -> list[list[str]]:
    """Cycles enough to break every loop: find one, drop its closing edge, repeat."""
    remaining, cycles = [e for e in edges if not e.type_only], []
    while (cycle := find_cycle(modules, remaining)) is not None:
        cycles.append(cycle)
        remaining = [e for e in remaining if (e.source, e.target) != (cycle[-2], cycle[-1])]
    return cycles


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def _where(edge: Edge) -> str:
    return f"{edge.source} (line {edge.line}) -> {edge.target}"


@pytest.fixture(scope="module")
def graph() -> tuple[set[str], list[Edge], dict[str, set[str]]]:
    return build_graph()


def test_the_graph_sees_the_package(graph):
    """The reader is not blind: known edges of every kind are present."""
    modules, edges, external = graph
    assert {"robustlit.cli", "robustlit.attacks.pgd", "robustlit.mixed.module"} <= modules
    pairs = {(e.source, e.target) for e in edges}
    assert ("robustlit.attacks.pgd", "robustlit.attacks.eval_mode") in pairs  # module-level
    assert ("robustlit", "robustlit.evaluation") in pairs  # function-level (PEP 562 __getattr__)
    assert "lightning" in external["robustlit.methods.base"]


def test_no_import_cycle(graph):
    modules, edges, _ = graph
    cycles = find_cycles(modules, edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize(
    ("importer", "imported", "why"),
    [
        ("robustlit.methods", "robustlit.callbacks", "a method does not know how it is evaluated"),
        ("robustlit.callbacks", "robustlit.methods", "an evaluation callback works on any LightningModule"),
        ("robustlit.attacks", "robustlit.losses", "training objectives are built on attacks, not the reverse"),
    ],
)
def test_layer_does_not_import(graph, importer, imported, why):
    _, edges, _ = graph
    bad = sorted({_where(e) for e in edges if in_layer(e.source, importer) and in_layer(e.target, imported)})
    assert not bad, f"{importer} must not import {imported} ({why}):\n" + "\n".join(bad)


def test_shared_layers_do_not_import_mixed(graph):
    """Only the mixed family itself, ``cli.py`` and the package ``__init__`` may name ``robustlit.mixed``."""
    _, edges, _ = graph
    allowed = ("robustlit.mixed", "robustlit.cli")
    bad = sorted(
        {
            _where(e)
            for e in edges
            if in_layer(e.target, "robustlit.mixed")
            and e.source != "robustlit"
            and not any(in_layer(e.source, layer) for layer in allowed)
        }
    )
    assert not bad, "shared layers must not import robustlit.mixed (it builds on them):\n" + "\n".join(bad)


def test_pure_layers_reach_no_lightning(graph):
    """No module of a pure layer imports Lightning, nor any robustlit module from which Lightning is reachable."""
    modules, edges, external = graph
    successors: dict[str, set[str]] = {name: set() for name in modules}
    for edge in edges:
        successors[edge.source].add(edge.target)
    bad = []
    for start in sorted(m for m in modules if any(in_layer(m, layer) for layer in PURE_LAYERS)):
        parent = {start: start}
        queue = [start]
        while queue:
            current = queue.pop(0)
            if external[current] & set(LIGHTNING):
                chain = [current]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                bad.append(" -> ".join(reversed(chain)) + " -> lightning")
                break
            for following in sorted(successors[current] - parent.keys()):
                parent[following] = current
                queue.append(following)
    assert not bad, "pure layers must not reach Lightning:\n" + "\n".join(bad)


def test_the_rules_can_fail(tmp_path):
    """The checks catch what they are meant to: a cycle, a deferred import, a relative import."""
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from toy.b import f\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.a\n")
    modules, edges, _ = build_graph(tmp_path, "toy")
    assert find_cycles(modules, edges) == [["toy.a", "toy.b", "toy.a"]]
    assert [(e.source, e.target, e.type_only) for e in edges if e.source == "toy.c"] == [("toy.c", "toy.a", True)]
    (package / "b.py").write_text("def f():\n    pass\n")
    assert find_cycles(*build_graph(tmp_path, "toy")[:2]) == []
