"""No import cycles in ``orchestrator``: the graph of every module's imports (read from the AST, imports
inside functions included, ``if TYPE_CHECKING:`` blocks excluded since they never run) has no cycle.

import-linter's layers keep packages in order; this test also catches cycles inside one package and the
function-level imports that hide a cycle from a module-level reading. ``ALLOWED`` lists the lazy imports kept
on purpose, each with its reason; an edge listed there must still exist (a stale entry fails)."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).parent

#: (importer, imported) edges ignored when looking for cycles: lazy imports kept on purpose.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: Collection[str]) -> Iterator[str]:
    """The modules ``tree`` imports. ``from pkg import sub`` is an import of the module ``pkg.sub`` when that
    is a module (as import-linter reads it), else of ``pkg``; a name outside ``modules`` is cut back to the
    nearest module that holds it."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for imported in _imports(tree, name, path.name == "__init__.py", files):
            target = imported
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name and (name, target) not in ALLOWED:
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_find_cycles_sees_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" ⇄ ".join(c) for c in cycles)


def test_allowed_lazy_imports_still_exist() -> None:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    for importer, imported in ALLOWED:
        path = files[importer]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert imported in set(_imports(tree, importer, path.name == "__init__.py", files)), (importer, imported)
