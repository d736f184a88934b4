"""The package's layout: imports point down, no cycles, every module in a layer.

Read from the source with :mod:`ast` (nothing is imported): an import inside a function
counts too; one under ``if TYPE_CHECKING:`` does not (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eventisc"

#: The layers, lowest first. A module may import modules of its own layer or lower ones.
LAYERS: list[tuple[str, ...]] = [
    # values, errors and small helpers with no eventisc dependency above them
    ("secret_values", "errors", "_version", "_fork", "masking", "notification", "encoding", "logs",
     "settings", "environ", "registry", "_owners", "_spool_codec", "webhooks", "cloudevents",
     "tracing"),
    ("sandbox", "template", "schema"),
    ("filters",),
    ("listeners.base", "listeners"),
    ("listeners.*", "pool", "spool"),
    ("config", "metrics", "report", "heartbeat", "outbox", "outbox.sql", "outbox.connections",
     "outbox.writer", "outbox.admin"),
    ("delivery.*", "delivery"),
    ("routing", "reloading"),
    ("observe", "multiproc", "prometheus", "metrics_server", "outbox.*"),
    ("app",),
    ("testing", "pytest_plugin", "spool_cli", "outbox_cli", "demo", "cli", "__init__",
     "__main__", "contrib", "contrib.celery", "worker",
     "contrib.django", "contrib.django.*"),
]  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _layer(module: str) -> int:
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith(".*") and module.startswith(name[:-1])):
                return index
    raise AssertionError(f"eventisc.{module} is in no layer: add it to LAYERS in {__file__}")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The eventisc modules ``module`` imports (at run time)."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom):
                found.update(_targets(child, package, modules))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    name = alias.name.removeprefix("eventisc.")
                    if alias.name.startswith("eventisc.") and name in modules:
                        found.add(name)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(module)
    return found


def _targets(node: ast.ImportFrom, package: list[str], modules: dict[str, Path]) -> set[str]:
    if node.level:
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    elif node.module and node.module.startswith("eventisc"):
        base = []
        node_module = node.module.removeprefix("eventisc").lstrip(".")
        return _resolve(base, node_module, node, modules)
    else:
        return set()
    return _resolve(base, node.module or "", node, modules)


def _resolve(
    base: list[str], name: str, node: ast.ImportFrom, modules: dict[str, Path]
) -> set[str]:
    prefix = ".".join([*base, *([name] if name else [])])
    found = set()
    for alias in node.names:  # ``from . import x`` may import a module x
        candidate = f"{prefix}.{alias.name}" if prefix else alias.name
        if candidate in modules:
            found.add(candidate)
    if prefix in modules or not prefix:
        found.add(prefix or "__init__")
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_is_in_a_layer_and_imports_point_down():
    wrong = []
    for module, imported in sorted(_graph().items()):
        for target in sorted(imported):
            if _layer(target) > _layer(module):
                wrong.append(f"eventisc.{module} imports eventisc.{target}, a layer above it")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module", ["app", "routing", "delivery.steps"])
def test_the_checker_sees_imports(module):
    # Guards the checker itself: these modules import others, so an empty set means a bug.
    assert _graph()[module]
