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
        out += [f"{node.lineno}: {n}" for n in names if any(n == f or n.startswith(f + ".") for f in FACES)]
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
