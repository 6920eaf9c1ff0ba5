"""The layout rules of README's Development section, checked on the source itself.

- no import cycle among the project's modules (function-level imports count: a package's
  ``__init__`` importing a submodule that imports the package back is a cycle);
- every module of ``realtime/`` and ``shaders/`` under 600 lines, at most 10 modules directly in
  ``realtime/``;
- layering: ``realtime.core`` imports nothing else of the project, ``realtime.io`` only
  ``realtime.core``, the stages neither ``io`` nor ``app``, ``shaders`` nothing of ``realtime``,
  and the product never imports the development tools;
- no absolute path of one machine in the package, the tests, the tools or ``.ci/run``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "shaders")
MAX_LINES = 600
MAX_TOP_LEVEL = 10


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (top level or inside functions)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        for t in targets:
            # ``import a.b.c`` of a module: the deepest project module named
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_sees_imports_of_every_kind():
    """The checks below rely on the graph: relative, function-local and submodule imports."""
    assert "realtime.stages.depth.backends" in GRAPH["realtime.stages.depth"]       # from .backends import
    assert "shaders.bokeh" in GRAPH["shaders"]                                      # inside warmup()
    assert "shaders.jit" in GRAPH["shaders.bokeh"]                                  # from .jit import
    assert "realtime.devtools.bench" in GRAPH["realtime.app.cli"]                   # lazy, in main()
    assert _cycles({"p": {"p.a"}, "p.a": {"p"}, "q": set()}) == [["p", "p.a"]]


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def _layer_violations(prefix: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for name, deps in GRAPH.items():
        if name == prefix or name.startswith(prefix + "."):
            for d in sorted(deps):
                if not any(d == a or d.startswith(a + ".") for a in allowed):
                    bad.append(f"{name} imports {d}")
    return bad


@pytest.mark.parametrize("layer, allowed", [
    ("realtime.core", ("realtime.core",)),
    ("realtime.io", ("realtime.core", "realtime.io")),
    ("realtime.stages", ("realtime.core", "realtime.stages", "shaders")),
    ("realtime.pipeline", ("realtime.core", "realtime.stages", "shaders")),
    ("realtime.render", ("realtime.stages",)),
    ("shaders", ("shaders",)),
])
def test_layers_import_only_what_is_below_them(layer, allowed):
    assert _layer_violations(layer, allowed) == []


def test_the_product_never_imports_the_development_tools():
    """Only ``run.py bench`` reaches into realtime.devtools (from the CLI, lazily)."""
    users = sorted(n for n, deps in GRAPH.items() if not n.startswith("realtime.devtools")
                   and any(d.startswith("realtime.devtools") for d in deps))
    assert users == ["realtime.app.cli"]


def test_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in MODULES.values()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_LINES}
    assert big == {}, f"modules of {MAX_LINES} lines or more: split them"


def test_few_modules_directly_in_realtime():
    top = sorted(p.name for p in (ROOT / "realtime").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


# Home and work folders of one machine, spelled so this file does not match itself.
_MACHINE_PATH = re.compile("(?<![\\w.~])/(" + "|".join(["wo" + "rk", "ho" + "me", "Us" + "ers", "ro" + "ot"]) + ")/")


def _shipped_and_test_files() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*") if p.suffix in (".py", ".toml")]
    files += list((ROOT / "tests").rglob("*.py")) + list((ROOT / "tools").rglob("*.py"))
    files += list((ROOT / "configs").glob("*.toml")) + [ROOT / "run.py", ROOT / ".ci" / "run", ROOT / "pyproject.toml"]
    return sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts)


def test_the_machine_path_pattern_matches_what_it_must():
    assert _MACHINE_PATH.search("data = '/" + "work/shared/data'")
    assert _MACHINE_PATH.search("cd /" + "home/me/portrait-cam")
    assert not _MACHINE_PATH.search("cache in ~/.cache/portrait-cam; /dev/video0; ../shared/models")


def test_no_absolute_path_of_one_machine():
    hits = []
    for path in _shipped_and_test_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if _MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert hits == [], "find ../shared relative to the repository or use REALTIME_MODEL_DIR / REALTIME_DATA_DIR"


def test_every_package_is_installed():
    """pyproject.toml lists the packages by name: a new sub-package must be added there."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert packages - listed == set()
