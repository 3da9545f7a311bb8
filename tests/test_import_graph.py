"""No import circle anywhere in src/: every arrow points down the data flow.

Counts every import, at module level or inside a function (a deferred import is still a
dependency), between modules of the package. A package's `__init__` is its own node.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "runtime_semantics"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        return ".".join([*base, node.module] if node.module else base)
    return node.module or ""


def import_graph() -> nx.DiGraph:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        name = name.removesuffix(".__init__")
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                targets = [f"{target}.{alias.name}" for alias in node.names] + [target]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                # the longest prefix that is a module of the package
                while target and target not in modules and f"{target}.__init__" not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("runtime_semantics") and target != name and target != "runtime_semantics":
                    graph.add_edge(name, target)
                    break
    return graph


def test_src_has_no_import_circle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import circles: " + "; ".join(" -> ".join([*c, c[0]]) for c in sorted(cycles, key=len)[:10])


def test_the_graph_sees_deferred_imports():
    """A function-level import is an arrow too (the check would pass vacuously otherwise)."""
    graph = import_graph()
    assert graph.has_edge("runtime_semantics.launch", "runtime_semantics.cli")  # imported inside _worker
    assert graph.has_edge("runtime_semantics.cli", "runtime_semantics.training.train_stage")  # inside train_run
