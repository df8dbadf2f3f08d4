"""The package layout: contracts stand alone, workarounds stay in their folder, no import cycles.

The import graph is read from the source with :mod:`ast`: every ``import``
and ``from ... import`` of a project module, at module level or inside a
function, except under ``if TYPE_CHECKING:`` (annotations only, never run).

Every package also says in its ``__init__`` docstring what it holds, and
``streams/`` keeps its modules in subpackages by role rather than flat.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "features", "models", "simulator", "sinks", "streams")
WORKAROUNDS = "streams.workarounds"
# The app factory and the CLI entry points: the only places that install workarounds.
MAY_INSTALL_WORKAROUNDS = frozenset({"streams.app", "streams.cli"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements under ``node``, skipping the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for orelse in child.orelse:
                yield from _imports_in(orelse)
            continue
        yield from _imports_in(child)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def _target(name: str) -> str | None:
    """The project module that importing ``name`` runs (the longest existing prefix)."""
    modules = project_modules()
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Project module -> project modules it imports (at run time)."""
    graph = {}
    for module, path in project_modules().items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        targets = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from package import module`` depends on the module; otherwise on ``base``.
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in project_modules() else base
                    for alias in node.names
                ]
            for name in names:
                if (target := _target(name)) is not None and target != module:
                    targets.add(target)
        graph[module] = frozenset(targets)
    return graph


def import_cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(components)


def _one_cycle(graph: dict[str, frozenset[str]], component: list[str]) -> list[str]:
    """A shortest import path from the component's first module back to itself."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for imported in sorted(graph[module] & members):
                if imported == start:
                    return [*paths[module], start]
                if imported not in paths:
                    paths[imported] = [*paths[module], imported]
                    following.append(imported)
        frontier = following
    return component


def test_the_graph_sees_every_package() -> None:
    graph = import_graph()
    assert {module.partition(".")[0] for module in graph} == set(PACKAGES)
    assert "contracts.cdr" in graph["contracts.cdr_json"]
    assert "streams.app" in graph["streams.cli"]  # imported inside a function
    assert "streams.app" not in graph["streams.agents"]  # under TYPE_CHECKING only


def test_cycles_are_found() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
             "d": frozenset({"a"})}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert _one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = []
    for component in import_cycles(graph):
        cycle = _one_cycle(graph, component)
        others = sorted(set(component) - set(cycle))
        cycles.append(" -> ".join(cycle) + (f" (with {', '.join(others)})" if others else ""))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "module", sorted(m for m in project_modules() if m.startswith("contracts"))
)
def test_contracts_import_only_contracts(module: str) -> None:
    outside = sorted(m for m in import_graph()[module] if not m.startswith("contracts"))
    assert not outside, f"{module} imports {outside}"


def test_only_the_app_factory_and_the_cli_install_workarounds() -> None:
    importers = sorted(
        module
        for module, imported in import_graph().items()
        if not module.startswith(WORKAROUNDS)
        and module not in MAY_INSTALL_WORKAROUNDS
        and any(m == WORKAROUNDS or m.startswith(WORKAROUNDS + ".") for m in imported)
    )
    assert not importers, f"{importers} import from {WORKAROUNDS}"


def test_workarounds_import_nothing_of_callguard() -> None:
    for module, imported in import_graph().items():
        if module.startswith(WORKAROUNDS):
            assert {m for m in imported if not m.startswith(WORKAROUNDS)} == set(), module


# The reference engine (an oracle for the tests, not production code) and its feature stage.
REFERENCE_PACKAGES = ("features.reference", "streams.stages.reference")


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_reference(module: str) -> bool:
    return any(_in_package(module, package) for package in REFERENCE_PACKAGES)


def test_the_graph_sees_the_reference_engine() -> None:
    graph = import_graph()
    assert "features.reference.state" in graph["features.reference.caller_record"]
    assert "features.reference.caller_record" in graph["streams.stages.reference.feature_stage"]


def test_production_code_never_imports_the_reference_engine() -> None:
    """Only the reference packages import the reference engine (tests and bench/ may too)."""
    importers = sorted(
        module
        for module, imported in import_graph().items()
        if not _is_reference(module) and any(_is_reference(m) for m in imported)
    )
    assert not importers, f"{importers} import the reference engine {REFERENCE_PACKAGES}"


def test_features_import_nothing_of_the_worker_models_sinks_or_simulator() -> None:
    """As ``features/__init__.py`` says: the worker and training compute from the same code."""
    for module, imported in import_graph().items():
        if _in_package(module, "features"):
            outside = sorted(m for m in imported if m.partition(".")[0] not in (
                "contracts", "features"))
            assert not outside, f"{module} imports {outside}"


def _package_dirs() -> list[Path]:
    """Every folder of the project's packages that holds Python modules."""
    return sorted(
        {path.parent for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    )


@pytest.mark.parametrize(
    "folder", _package_dirs(), ids=lambda folder: str(folder.relative_to(ROOT))
)
def test_every_package_says_what_it_holds(folder: Path) -> None:
    """Each package and subpackage has an ``__init__.py`` with a docstring."""
    init = folder / "__init__.py"
    assert init.is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text(), str(init)))
    assert docstring and docstring.strip(), f"{init.relative_to(ROOT)} has no docstring"


STREAMS_TOP_LEVEL_MODULES = 10


def test_streams_does_not_grow_flat_again() -> None:
    """``streams/`` keeps at most 10 modules of its own, ``__init__`` and ``__main__`` included.

    The 10 are the wiring: __init__, __main__, app, agents, settings, topics,
    cli, review_cli, demo and broker. Code with a role of its own goes into the
    subpackage of that role (pipeline, stages, state, http, tuning, workarounds)
    or a new one.
    """
    modules = sorted(path.name for path in (ROOT / "streams").glob("*.py"))
    assert len(modules) <= STREAMS_TOP_LEVEL_MODULES, (
        f"streams/ holds {len(modules)} modules: {modules}"
    )
