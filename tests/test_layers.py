"""Every import points down: the packages and modules of shop/ form a graph without a cycle.

A node is a package directly under shop/ (`shop.store`, `shop.payments`, …) or a top-level module
(`shop.mirror`, `shop.database`, …); `shop` itself is the app factory (shop/__init__.py). Every import
counts, those inside functions too (an import hidden in a function to dodge a cycle is still the
cycle). When this fails, it names the cycle: move the shared piece down (a ground-floor module), or
let the lower layer offer a hook the upper one registers with (as the mirror's tombstone erasers).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from shop import PROJECT_ROOT

SHOP = PROJECT_ROOT / "shop"


def _node(module: str) -> str | None:
    """The graph node of a dotted module name inside shop/, or None for anything outside it."""
    parts = module.split(".")
    if parts[0] != "shop":
        return None
    if len(parts) == 1:
        return "shop"
    return f"shop.{parts[1]}"


def _module_of(path: Path) -> str:
    relative = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PROJECT_ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every module `path` imports (absolute names), at module level or inside a function; `package`:
    the one it belongs to (from its place under shop/ when not given)."""
    if package is None:
        package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per dot after the first
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from shop import mirror` imports the module shop.mirror, not the factory in shop/__init__.py.
            submodules = {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
            found |= submodules
            if len(submodules) < len(node.names):  # some names are the module's own (a class, a constant)
                found.add(base)
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SHOP.rglob("*.py")):
        source = _node(_module_of(path))
        assert source is not None
        for imported in _imports(path):
            target = _node(imported)
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def _witness(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """Which imports make the cycle, for the failure message."""
    members = set(component)
    return [f"{source} -> {target}" for source in component for target in sorted(graph[source] & members)]


def test_no_package_imports_one_that_depends_on_it():
    graph = import_graph()
    problems = {" / ".join(component): _witness(graph, component) for component in cycles(graph)}
    assert problems == {}, f"imports that run back up (cycles): {problems}"


def test_only_the_app_factory_imports_the_development_tools():
    """devtools/ (the local Clerk and Stripe stand-ins, the embedded PostgreSQL) stays out of the product:
    shop/__init__.py imports it lazily when a development setting turns it on; nothing else may."""
    importers = sorted(
        _module_of(path)
        for path in SHOP.rglob("*.py")
        if path != SHOP / "__init__.py" and any(name.split(".")[0] == "devtools" for name in _imports(path))
    )
    assert importers == []


def test_the_check_sees_a_cycle_and_an_import_inside_a_function(tmp_path):
    graph = {"shop.mail": {"shop.store"}, "shop.store": {"shop.mail", "shop.database"}, "shop.database": set()}
    assert cycles(graph) == [["shop.mail", "shop.store"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from shop.store.models import Order\n    from .models import User\n")
    assert _imports(module, package="shop.mail") == {"shop.store.models", "shop.mail.models"}
