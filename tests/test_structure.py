"""The package's shape, read from its source: no import cycles, a configuration that imports
nothing of the rest, small modules, and one module that names PROMETHEUS_MULTIPROC_DIR.

Every module is parsed with `ast`; an import counts wherever it is written (at the top, inside a
function, under `if TYPE_CHECKING:`), relative imports are resolved, and `from package import
name` counts the submodule `package.name` when there is one. A package's `__init__` running
before its submodules is not counted: only the imports written in the code are.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"
CONFIG = "exporter.config"
MAX_LINES = 300
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Import:
    """One import of a module of the package: where it is written, and what it imports."""

    target: str
    line: int


@dataclass
class Module:
    """A module of the package: its dotted name, file, syntax tree and the modules it imports."""

    name: str
    path: Path
    file: str  # the path shown in messages: exporter/http/middleware.py
    tree: ast.Module
    is_package: bool
    imports: list[Import] = field(default_factory=list)


def parse_package(root: Path) -> dict[str, Module]:
    """Every module under `root` (a package directory) by dotted name, with its imports."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules[name] = Module(name, path, "/".join(parts) + ".py", tree, is_package)
    for module in modules.values():
        module.imports = _imports_of(module, modules)
    return modules


def _imports_of(module: Module, modules: dict[str, Module]) -> list[Import]:
    found: list[Import] = []

    def add(dotted: str, line: int) -> None:
        while dotted and dotted not in modules:  # `exporter.config.Settings` is exporter.config
            dotted = dotted.rpartition(".")[0]
        if dotted and dotted != module.name:
            found.append(Import(dotted, line))

    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):  # every import, however deeply nested
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:  # `from package import module` runs the package too
                    add(submodule, node.lineno)
                add(source, node.lineno)
    return found


def import_cycles(modules: dict[str, Module]) -> list[list[Import]]:
    """One cycle per group of modules that import each other (directly or not), as the hops
    from its first module (by name) back to it; [] when there is none."""
    graph = {name: {i.target for i in module.imports} for name, module in modules.items()}
    cycles = []
    for group in _strongly_connected(graph):
        start = min(group)
        cycles.append(_path_back(start, group, modules))
    return sorted(cycles, key=lambda hops: hops[-1].target)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of more than one module in which each reaches every other (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _path_back(start: str, group: set[str], modules: dict[str, Module]) -> list[Import]:
    """The shortest chain of imports inside `group` that leads from `start` back to it."""
    came_from: dict[str, tuple[str, Import]] = {}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for hop in modules[name].imports:
            if hop.target not in group:
                continue
            if hop.target == start:
                path = [Import(hop.target, hop.line)]
                while name != start:
                    name, previous = came_from[name]
                    path.insert(0, previous)
                return [Import(start, 0), *path]
            if hop.target not in came_from:
                came_from[hop.target] = (name, hop)
                queue.append(hop.target)
    raise AssertionError(f"no way back to {start} in {sorted(group)}")


def describe(cycle: list[Import], modules: dict[str, Module]) -> str:
    """`a -> b (a.py:12) -> a (b.py:3)`: each hop with the line that imports it."""
    text = cycle[0].target
    previous = cycle[0].target
    for hop in cycle[1:]:
        text += f" -> {hop.target} ({modules[previous].file}:{hop.line})"
        previous = hop.target
    return text


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of a module and of its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def naming(text: str, modules: dict[str, Module]) -> list[str]:
    """The modules whose code (not their docstrings) holds a string with `text` in it."""
    found = []
    for name, module in sorted(modules.items()):
        docstrings = _docstrings(module.tree)
        if any(
            isinstance(node, ast.Constant) and isinstance(node.value, str)
            and text in node.value and id(node) not in docstrings
            for node in ast.walk(module.tree)
        ):
            found.append(name)
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return parse_package(PACKAGE)


def test_no_module_imports_itself_back_through_others(modules: dict[str, Module]) -> None:
    cycles = [describe(cycle, modules) for cycle in import_cycles(modules)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_configuration_imports_nothing_of_the_rest_of_the_package(
    modules: dict[str, Module],
) -> None:
    outside = [
        f"{module.file}:{hop.line} imports {hop.target}"
        for name, module in sorted(modules.items())
        if name == CONFIG or name.startswith(CONFIG + ".")
        for hop in module.imports
        if hop.target != CONFIG and not hop.target.startswith(CONFIG + ".")
    ]
    assert not outside, f"{CONFIG} is a leaf, but:\n" + "\n".join(outside)


def test_every_module_is_at_most_300_lines(modules: dict[str, Module]) -> None:
    lines = {module.file: len(module.path.read_text().splitlines()) for module in modules.values()}
    too_long = [f"{path}: {count} lines" for path, count in sorted(lines.items())
                if count > MAX_LINES]
    assert not too_long, f"over {MAX_LINES} lines (split along a seam):\n" + "\n".join(too_long)


def test_one_module_names_the_multiprocess_directory_variable(
    modules: dict[str, Module],
) -> None:
    named = naming(MULTIPROC_ENV, modules)
    assert len(named) == 1, (
        f"{MULTIPROC_ENV} is read and set through exporter.config's multiprocess_directory() and "
        f"set_multiprocess_directory() only; spelled out in: {', '.join(named)}"
    )


# The checks themselves, on packages made for them: a check that never sees anything would pass
# the tests above too.


def _package(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return parse_package(root / "pkg")


def test_a_cycle_counts_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    modules = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "def f():\n    from pkg.sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\n",
        "d.py": "import pkg.a\n",  # imports into the cycle, not part of it
    })
    (cycle,) = import_cycles(modules)
    assert [hop.target for hop in cycle] == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert describe(cycle, modules).startswith("pkg.a -> pkg.b (")


def test_importing_a_name_of_a_package_counts_the_package(tmp_path: Path) -> None:
    modules = _package(tmp_path, {
        "__init__.py": "from pkg.a import f\n",
        "a.py": "from pkg import VERSION\n",
        # The submodule, and the package's __init__, which Python runs first: `from
        # exporter.signals import http_names` in exporter.signals.builtin was a cycle with the
        # package (it imports builtin) that counting the submodule alone did not see.
        "b.py": "from pkg import a\n",
    })
    assert [[hop.target for hop in c] for c in import_cycles(modules)] == [["pkg", "pkg.a", "pkg"]]
    assert [hop.target for hop in modules["pkg.b"].imports] == ["pkg.a", "pkg"]
    inside = _package(tmp_path / "inside", {
        "__init__.py": "from pkg.b import g\n",
        "a.py": "VERSION = 1\n",
        "b.py": "from pkg import a\n",  # the package runs b, b runs the package: a cycle
    })
    assert [[hop.target for hop in c] for c in import_cycles(inside)] == [["pkg", "pkg.b", "pkg"]]


def test_docstrings_do_not_name_a_variable_but_code_does(tmp_path: Path) -> None:
    modules = _package(tmp_path, {
        "__init__.py": '"""Reads FOO_DIR."""\n',
        "a.py": 'def f():\n    """FOO_DIR."""\n    return f"{1} FOO_DIR"\n',
        "b.py": 'import os\nos.environ.get("FOO_DIR")\n',
    })
    assert naming("FOO_DIR", modules) == ["pkg.a", "pkg.b"]
