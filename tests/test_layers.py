"""The tree is the map, and these rules keep it so: imports point down the
layers, there is no import cycle, and the storage seam is typed (no ``Any``,
no ``cast``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "wonderq"
# What each layer may import from the package (besides itself and the foundation).
FOUNDATION = {"wonderq.settings", "wonderq.errors", "wonderq.models", "wonderq.clock"}
MAY_IMPORT = {
    "wonderq.edge": set(),
    "wonderq.backends": set(),
    "wonderq.broker": {"wonderq.edge", "wonderq.backends"},
    "wonderq.client": {"wonderq.broker.wire"},
    "wonderq.consumer": {"wonderq.client"},
    "wonderq.apps": {"wonderq.edge", "wonderq.client", "wonderq.broker.names"},
    "wonderq.cli": {"wonderq.client", "wonderq.edge", "wonderq.backends", "wonderq.broker", "wonderq.apps"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The wonderq modules a file imports (at run time or for type checking alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wonderq"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (PACKAGE.parent / node.module.replace(".", "/") / a.name).with_suffix(".py").exists()
                         or (PACKAGE.parent / node.module.replace(".", "/") / a.name).is_dir())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wonderq"))
    return found


MODULES = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str | None:
    return next((name for name in MAY_IMPORT if module == name or module.startswith(name + ".")), None)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m)))
def test_imports_point_down_the_layers(module: str) -> None:
    own = layer(module)
    assert own is not None
    allowed = FOUNDATION | MAY_IMPORT[own] | {own, "wonderq"}
    wrong = sorted(i for i in MODULES[module] if not any(i == a or i.startswith(a + ".") for a in allowed))
    assert not wrong, f"{module} imports {wrong}"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in deps if i in MODULES and i != m} for m, deps in MODULES.items()}
    # a package's __init__ re-exporting its own module is not a cycle between layers
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not d.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


SEAMS = ("backends", "broker", "edge", "client")  # where layers meet: no Any, no cast


@pytest.mark.parametrize("path", sorted(str(p.relative_to(PACKAGE)) for seam in SEAMS
                                        for p in (PACKAGE / seam).rglob("*.py")))
def test_the_seams_are_typed(path: str) -> None:
    tree = ast.parse((PACKAGE / path).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "Any" not in names and "cast" not in names, path
