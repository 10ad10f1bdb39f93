"""The shape of the code itself: no import circles among the package's modules (functions' own
imports included, type hints under TYPE_CHECKING excepted), and no module in pyro_vae/ over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    """pyro_vae/sources/named.py -> pyro_vae.sources.named; cli/ installs as pyro_vae.cli."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "cli":
        parts = ("pyro_vae", "cli", *parts[1:])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every pyro_vae module (or name in one) that ``path`` imports anywhere but under TYPE_CHECKING."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.update([target, *(f"{target}.{alias.name}" for alias in node.names)])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {module for module in found if module.startswith("pyro_vae")}


def import_graph() -> dict[str, set[str]]:
    files = [*(ROOT / "pyro_vae").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    graph = {module_name(path): imported_modules(path) for path in files}
    return {name: {module for module in imports if module in graph and module != name} for name, imports in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each back edge of a depth-first search, as the circle it closes."""
    found, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                found.append([*stack[stack.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_import_graph_reads_relative_and_lazy_imports():
    graph = import_graph()
    assert "pyro_vae.sources.named" in graph["pyro_vae.sources"]  # from .named import ...
    assert "pyro_vae.storage" in graph["pyro_vae.sources.named"]  # from ..storage import ...
    assert "pyro_vae.plotting" in graph["pyro_vae.compare"]  # an import inside a function


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_no_module_over_400_lines():
    long = {str(path.relative_to(ROOT)): lines for path in (ROOT / "pyro_vae").rglob("*.py")
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}  # fmt: skip
    assert long == {}
