"""The house rules of the code: rooms small enough to read, and imports that point one way.

Every module of the three packages stays under :data:`MAX_LINES`, and no module imports itself back through others:
the walk below reads every ``import`` with :mod:`ast`, at module level, inside functions (lazy imports) and under
``if TYPE_CHECKING:`` alike, so a circle cannot hide behind a deferred import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data_utils", "model_utils", "mser")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` (a package is its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that ``name`` imports anywhere in its file (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {t for t in targets if t in modules and t != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_point_one_way_with_lazy_and_type_only_imports_counted():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_walls_hold():
    """data_utils never imports TensorFlow or Keras, metrics is numpy-only, and the library never imports mser."""
    modules = _modules()
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
        if name.startswith("data_utils"):
            assert not imported & {"tensorflow", "keras", "model_utils"}, name
        if not name.startswith("mser"):
            assert "mser" not in imported, name
        if name == "model_utils.metrics":
            assert imported <= {"__future__", "numpy", "typing", "math", "dataclasses", "collections"}, imported


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_a_circle_and_only_a_circle(graph, expected):
    assert _cycles(graph) == expected


def test_a_lazy_import_inside_a_function_counts(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from .other import thing\n")
    assert _imports("pkg.m", path, {"pkg.m": path, "pkg.other": path}) == {"pkg.other"}
