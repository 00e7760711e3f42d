"""Plugins: Python modules that register models (``lth.models.register_module`` or ``MODELS``) and datasets
(``lth.data.DATASETS``) when imported.

A plugin is named by a dotted module name (``my_pkg.lth_models``) or a path to a ``.py`` file; installed
packages may also declare entry points in the ``lth.plugins`` group (pyproject:
``[project.entry-points."lth.plugins"] mine = "my_pkg.lth_models"``), loaded by :func:`load_entry_points`. An
entry point that names a function (``"my_pkg.lth_models:register"``) is called after import.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from lth.errors import UserError, ref

GROUP = "lth.plugins"


def _first_line(e: BaseException) -> str:
    text = e.template if isinstance(e, UserError) else str(e)  # a UserError's field references survive
    return f"{type(e).__name__}: {(text.splitlines() or [''])[0][:200]}"


def _named(flag: str) -> str:
    """``flag`` in an error's template: a field path (``plugin``) as a reference (``--plugin`` on the command line,
    ``plugin`` in Python); a literal (``--plugin``) as written."""
    return flag if flag.startswith("-") else ref(flag)


def load_plugin(name: str, flag: str = "plugin") -> ModuleType:
    """Import one plugin: a ``.py`` file path (or any existing file) or a dotted module name. Importing it twice
    returns the module already loaded. :class:`UserError` naming ``flag`` (a field path such as ``plugin``, or a
    literal CLI flag such as ``--plugin``) if it cannot be imported."""
    flag = _named(flag)
    text = str(name).strip()
    path = Path(text).expanduser()
    if text.endswith(".py") or path.is_file():
        if not path.is_file():
            raise UserError(f"{flag}: bad value {text!r}: no such file")
        path = path.resolve()
        key = f"lth_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None:
            raise UserError(f"{flag}: bad value {text!r}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except UserError:
            sys.modules.pop(key, None)
            raise
        except Exception as e:  # noqa: BLE001 - the plugin's own error, reported on one line
            sys.modules.pop(key, None)
            raise UserError(f"{flag}: {text!r} failed to import: {_first_line(e)}") from e
        return module
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as e:
        if e.name and text.startswith(e.name):
            raise UserError(f"{flag}: bad value {text!r}: no module {e.name!r} (give a dotted module name on the "
                            f"Python path or a path to a .py file)") from e
        raise UserError(f"{flag}: {text!r} failed to import: {_first_line(e)}") from e
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{flag}: {text!r} failed to import: {_first_line(e)}") from e


def load_plugins(names: Iterable[str], flag: str = "plugin") -> list[ModuleType]:
    """Import every plugin in ``names`` in order (see :func:`load_plugin`)."""
    return [load_plugin(n, flag) for n in names]


def load_entry_points(group: str = GROUP) -> list[Any]:
    """Load every installed entry point of ``group``; a callable that is not a module is called with no
    arguments. Returns what was loaded. :class:`UserError` naming the entry point on failure."""
    loaded = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, ModuleType):
                obj()
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001
            raise UserError(f"plugin entry point {ep.name!r} ({ep.value}) failed: {_first_line(e)}") from e
        loaded.append(obj)
    return loaded


__all__ = ["GROUP", "load_entry_points", "load_plugin", "load_plugins"]
