"""The agent's modules import one way: no cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import chokepoint.instrument

PACKAGE = "chokepoint.instrument"
ROOT = Path(chokepoint.instrument.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def imported(tree: ast.AST, here: str, is_package: bool, known: set[str]) -> set[str]:
    """Every agent module ``tree`` imports, at module level or in any function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(paths)
    return {name: imported(ast.parse(path.read_text()), name, path.name == "__init__.py", known) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == PACKAGE:  # the package's __init__ re-exports the agent; importing a submodule runs it first anyway
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert f"{PACKAGE}.compat" in graph[f"{PACKAGE}.kafka_process"]  # imported inside a function there
    assert f"{PACKAGE}.plan" in graph[f"{PACKAGE}.http_client_spans"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_the_agents_modules():
    assert find_cycle(import_graph()) is None


def test_no_module_looks_the_agent_up():
    users = [name for name, path in ((module_name(p), p) for p in ROOT.rglob("*.py")) if "current_agent(" in path.read_text() and not name.endswith(".agent")]
    assert users == []
