"""The library under its two faces: no module of ``src/lth`` outside the faces (``lth/cli/``, ``lth/api.py`` and the
``python -m lth`` entry point) imports ``lth.cli`` or ``lth.api``, at any level (inside functions too), so the
studies and recipes stand on their own and no import cycle runs through a face."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lth"
FACES = ("lth.cli", "lth.api")


def face_imports(text: str, module: str, package: bool = False) -> list[str]:
    """``line: name`` of every import of a face in ``text``, the source of ``module`` (a package's ``__init__``
    when ``package``): ``import lth.api as api``, ``from lth.cli.common import x``, ``from lth import api``,
    ``from ..cli import main`` (relative, resolved against the module's package), inside functions too."""
    pkg = module.split(".") if package else module.split(".")[:-1]
    return [f"{line}: {n}" for line, n in imported(text, pkg)
            if any(n == f or n.startswith(f + ".") for f in FACES)]


def imported(text: str, pkg: list[str]) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in ``text`` (inside functions too), relative ones resolved against
    the package ``pkg``; ``from a import b`` gives both ``a`` and ``a.b``."""
    out = []
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out += [(node.lineno, n) for n in names]
    return out


def library_modules() -> dict[str, Path]:
    """Every module of ``src/lth`` but the faces, by its dotted name."""
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC)
        if rel.parts[0] == "cli" or rel.as_posix() in ("api.py", "__main__.py"):
            continue
        parts = ["lth", *rel.with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def test_the_walk_finds_every_kind_of_import() -> None:
    text = ("import lth.api as api\nfrom lth.cli.common import x\nfrom lth import api, spec\nimport lth.apis\n"
            "def f():\n    from ..cli import main\n    from . import report\n    import lth.spec\n")
    hits = face_imports(text, "lth.studies.hessian")
    assert [h.split(":")[0] for h in hits] == ["1", "2", "2", "3", "6", "6"], hits
    assert "6: lth.cli.main" in hits and not any("apis" in h or "report" in h for h in hits)
    assert face_imports("from .. import api\n", "lth.studies", package=True) == ["1: lth.api"]


def test_no_library_module_imports_a_face() -> None:
    modules = library_modules()
    assert {"lth.studies.hessian", "lth.studies.recipe", "lth.studies.report", "lth.recipes", "lth.recipes.base",
            "lth.spec"} <= set(modules) and not any(m.startswith(FACES) for m in modules)
    offenders = {m: hits for m, p in modules.items()
                 if (hits := face_imports(p.read_text(), m, p.name == "__init__.py"))}
    assert not offenders, offenders


def import_graph() -> dict[str, set[str]]:
    """Every module of ``src/lth`` (faces included) -> the ``lth`` modules it imports, at any level (inside
    functions too). A module importing a package it lives in (``lth.recipes.dynamics`` -> ``lth.recipes``, a
    registry) is not an edge: the package is initialised before its modules either way."""
    mods: dict[str, Path] = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = ["lth", *p.relative_to(SRC).with_suffix("").parts]
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
        for _, n in imported(p.read_text(), pkg):
            o = owner(n)
            if o and o != m and not m.startswith(o + "."):
                graph[m].add(o)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert {"lth.cli", "lth.api", "lth.studies.stability", "lth.spec", "lth.recipes.base"} <= set(graph)
    assert not cycles(graph), cycles(graph)
