"""Import layering of the package: no cycles, no arrows that point the wrong way.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a ``photostyle`` module, wherever it stands (module level, inside a
function, under ``TYPE_CHECKING``), is an arrow from the importing module to the imported one.
A package's ``__init__`` is the module named after the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "photostyle"

# (importer prefix, imported prefix): arrows that must not exist. A prefix matches a module and
# everything below it.
FORBIDDEN = (
    ("photostyle.video", "photostyle.eval"),  # video is a product feature; eval measures it
    ("photostyle.losses", "photostyle.eval"),  # training losses do not depend on evaluation
    ("photostyle.models", "photostyle.api"),  # the facade sits on the models, not below them
    ("photostyle.deploy", "photostyle.api"),  # exporters take the model, not the facade
    ("photostyle.inference", "photostyle.api"),  # the stylize path sits below the facade...
    ("photostyle.inference", "photostyle.deploy"),  # ...and below the backends that plug into it
    ("photostyle.models", "photostyle.inference"),  # the path runs the models, not the reverse
    ("photostyle.eval.quality", "photostyle.eval.bench"),  # helpers live in photostyle.measure
    ("photostyle.eval.speed", "photostyle.eval.bench"),
)
CLI = "photostyle.cli"  # nothing in the library imports the command line (package or module)


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module ``name`` refers to: itself, or its longest prefix that is a module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name, modules) for a in node.names if _in_package(a.name)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if not _in_package(name):
                continue
            for alias in node.names:  # ``from pkg import submodule`` is an arrow to the submodule
                full = f"{name}.{alias.name}"
                found.add(full if full in modules else _resolve(name, modules))
    found.discard(None)
    found.discard(module)
    return {m for m in found if m is not None}


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the photostyle modules it imports."""
    files = {_module_name(f, src): f for f in sorted((src / PACKAGE).rglob("*.py"))}
    modules = set(files)
    return {
        name: _imports(ast.parse(f.read_text(), str(f)), name, f.name == "__init__.py", modules)
        for name, f in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_graph_is_read(graph: dict[str, set[str]]) -> None:
    assert "photostyle.api" in graph["photostyle"]
    assert "photostyle.io" in graph["photostyle.api"]
    assert "photostyle.measure" in graph["photostyle.eval.bench"]


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_no_forbidden_arrows(graph: dict[str, set[str]], importer: str, imported: str) -> None:
    bad = sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        if _under(a, importer)
        for b in deps
        if _under(b, imported)
    )
    assert not bad, bad


def test_library_does_not_import_cli(graph: dict[str, set[str]]) -> None:
    bad = sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        if not _under(a, CLI) and a != "photostyle.__main__"
        for b in deps
        if _under(b, CLI)
    )
    assert not bad, bad


def test_checker_finds_cycles_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from photostyle.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("import photostyle.a\n")
    g = import_graph(tmp_path)
    assert g["photostyle.a"] == {"photostyle.sub.b"}
    assert g["photostyle.sub.b"] == {"photostyle.a"}
    assert g["photostyle.c"] == {"photostyle.a"}
    assert find_cycle(g) == ["photostyle.a", "photostyle.sub.b", "photostyle.a"]
    (pkg / "sub" / "b.py").write_text("")
    assert find_cycle(import_graph(tmp_path)) is None
