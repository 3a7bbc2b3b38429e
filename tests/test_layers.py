"""Imports inside the package only go down the layers and never form a cycle (read from the source, nothing run).

Layers, bottom first: the dependency-free utilities (metrics among them), then data -> geo -> prior/models/losses
-> strategies -> train -> evaluate -> results -> report. A module may import its own layer or a lower one; the
utilities import only each other.
Every import counts, including those inside functions and under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "geocontrast"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
UTILITIES = (
    "__init__",
    "atomic",
    "cli",
    "determinism",
    "distributed",
    "metrics",
    "npy_rows",
    "registry",
    "runtime",
    "settings",
)
LAYERS = {
    **dict.fromkeys(UTILITIES, 0),
    "data": 1,
    "geo": 2,
    "models": 3,
    "losses": 3,
    "prior": 3,
    "strategies": 4,
    "train": 5,
    "evaluate": 6,
    "results": 7,
    "report": 8,
}
"""Layer of each top-level module or subpackage of geocontrast; a new one must be placed here."""


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__)."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) for every import of a package module in ``path``, resolved to the module file imported:
    ``from a.b import c`` names ``a.b.c`` where that is a module, else ``a.b``."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package, up level - 1 more
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found += [(node.lineno, target) for target in dict.fromkeys(targets) if target.split(".")[0] == PACKAGE]
    return found


def import_graph(root: Path = ROOT) -> dict[str, list[tuple[int, str]]]:
    modules = package_modules(root)
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        raise KeyError(f"{module}: no layer for {top!r}; place it in LAYERS of tests/test_layers.py")
    return LAYERS[top]


def upward_imports(graph: dict[str, list[tuple[int, str]]], modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, imports in graph.items():
        for line, target in imports:
            if layer_of(target) > layer_of(name) or (layer_of(name) == 0 and layer_of(target) > 0):
                problems.append(f"{modules[name]}:{line}: {name} imports {target}, a higher layer")
    return problems


def import_cycles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """One cycle (as a closed path of modules) per strongly connected group of modules (Tarjan's algorithm)."""
    edges = {name: sorted({target for _, target in imports if target in graph}) for name, imports in graph.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1 or node in edges[node]:
                groups.append(set(group))

    for node in edges:
        if node not in index:
            visit(node)
    return [closed_path(group, edges) for group in groups]


def closed_path(group: set[str], edges: dict[str, list[str]]) -> list[str]:
    """A path inside ``group`` from its first module back to itself (breadth first, so a shortest one)."""
    start = min(group)
    previous = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target in group and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not a cycle")


def describe_cycle(cycle: list[str], graph: dict[str, list[tuple[int, str]]], modules: dict[str, Path]) -> str:
    steps = []
    for name, target in zip(cycle, cycle[1:]):
        line = next(line for line, imported in graph[name] if imported == target)
        steps.append(f"{modules[name]}:{line} imports {target}")
    return "import cycle: " + "; ".join(steps)


def test_every_module_has_a_layer():
    for name in package_modules():
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    modules = package_modules()
    assert upward_imports(import_graph(), modules) == []


def test_no_import_cycle():
    graph, modules = import_graph(), package_modules()
    assert [describe_cycle(cycle, graph, modules) for cycle in import_cycles(graph)] == []


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / PACKAGE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / PACKAGE


def test_checks_catch_a_cycle_and_an_upward_import_inside_a_function(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "losses.py": "def gather():\n    from geocontrast.train.distributed import gather\n",
            "train/__init__.py": "",
            "train/distributed.py": "from geocontrast.strategies import PairBatch\n",
            "strategies/__init__.py": "from . import contrastive\n",
            "strategies/contrastive.py": "import geocontrast.losses\n",
        },
    )
    modules, graph = package_modules(package), import_graph(package)
    assert upward_imports(graph, modules) == [
        f"{package / 'losses.py'}:2: {PACKAGE}.losses imports {PACKAGE}.train.distributed, a higher layer"
    ]
    (cycle,) = import_cycles(graph)
    assert describe_cycle(cycle, graph, modules) == (
        f"import cycle: {package / 'losses.py'}:2 imports {PACKAGE}.train.distributed; "
        f"{package / 'train/distributed.py'}:1 imports {PACKAGE}.strategies; "
        f"{package / 'strategies/__init__.py'}:1 imports {PACKAGE}.strategies.contrastive; "
        f"{package / 'strategies/contrastive.py'}:1 imports {PACKAGE}.losses"
    )


def test_a_utility_may_not_import_a_layer(tmp_path):
    package = write_package(tmp_path, {"__init__.py": "", "runtime.py": "from geocontrast.data import cache\n"})
    (problem,) = upward_imports(import_graph(package), package_modules(package))
    assert "geocontrast.runtime imports geocontrast.data" in problem


def test_an_unplaced_module_is_named(tmp_path):
    package = write_package(tmp_path, {"__init__.py": "", "extras.py": ""})
    with pytest.raises(KeyError, match="geocontrast.extras: no layer for 'extras'"):
        for name in package_modules(package):
            layer_of(name)
