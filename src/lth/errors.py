"""Structured errors for bad input, rendered by each face of lth in its own words.

A :class:`UserError` carries the field it is about (a dotted path such as ``"lr"`` or ``"pruning.fraction"``), the
bad value and what is allowed. Its text is a template in which each field is a *reference* made by :func:`ref`;
each face renders the references as its users write them:

- the command line (``face="cli"``): ``--lr``, ``--pruning-fraction`` (:func:`cli_name`);
- the Python API (``face="api"``): ``lr``, ``pruning["fraction"]`` (:func:`api_name`).

So no text is ever rewritten after it is made: a study raises one error, the CLI prints it with flags, the
Python API raises it with keywords. An error made from plain text (no reference) reads the same on both faces.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_OPEN, _CLOSE = "\u27e8", "\u27e9"  # ⟨path⟩: a field reference inside an error's template
_REF = re.compile(f"{_OPEN}([A-Za-z0-9_.\\[\\]'\"-]+){_CLOSE}")
_NOTHING: Any = object()

# Names a face gives a field where the default rule does not (registered by the options classes that own them).
_NAMES: dict[str, dict[str, str]] = {"cli": {}, "api": {}}


def ref(path: str) -> str:
    """A reference to the field ``path`` inside an error's text (``f"{ref('lr')}: bad value 0"``), rendered per
    face when the error is shown."""
    return f"{_OPEN}{path}{_CLOSE}"


def register_names(face: str, names: Mapping[str, str]) -> None:
    """Names ``face`` (``cli`` or ``api``) gives fields where the default rule does not (``{"slurm.time":
    "--slurm-time"}``)."""
    _NAMES[face].update(names)


def cli_name(path: str) -> str:
    """The flag of a field on the command line: ``pruning.fraction`` -> ``--pruning-fraction``, ``batch_size`` ->
    ``--batch-size`` (a registered name wins)."""
    if path in _NAMES["cli"]:
        return _NAMES["cli"][path]
    return "--" + path.replace(".", "-").replace("_", "-")


def api_name(path: str) -> str:
    """The name of a field in Python: ``pruning.fraction`` -> ``pruning["fraction"]``, ``batch_size`` ->
    ``batch_size`` (a registered name wins)."""
    if path in _NAMES["api"]:
        return _NAMES["api"][path]
    head, *rest = path.split(".")
    return head + "".join(f'["{r}"]' for r in rest)


_RENDER = {"cli": cli_name, "api": api_name}


class UserError(Exception):
    """Bad input: the CLI prints it on one line and exits with code 2; the Python API raises it.

    ``UserError(f"{ref('lr')}: bad value 0; allowed: a number > 0", value=0, allowed="a number > 0")``, or the
    common shape :meth:`bad`. ``field`` is the first field the text refers to (None for plain text), ``fields``
    all of them; ``value`` and ``allowed`` what was given and what may be. ``face`` says how ``str()`` renders
    the field references (``cli`` by default; :meth:`for_face` gives the same error for another face), and
    ``aliases`` names a field as the user typed it on this call (``{"pruning.strategy": "--strategy"}``, or a text
    that itself refers to fields: ``{"lr": f"{ref('set')} lr=0"}``)."""

    def __init__(self, message: str = "", *, field: str | None = None, value: Any = _NOTHING,
                 allowed: str | None = None, face: str = "cli", aliases: Mapping[str, str] | None = None) -> None:
        if field is not None and ref(field) not in message:
            message = ref(field) + message
        self.template = message
        self.fields: list[str] = _REF.findall(message)
        self.field: str | None = self.fields[0] if self.fields else None
        self.value = None if value is _NOTHING else value
        self.has_value = value is not _NOTHING
        self.allowed = allowed
        self.face = face
        self.aliases = dict(aliases or {})
        super().__init__(self.render())  # args, repr and tracebacks read as this face writes it, never a marker

    @classmethod
    def bad(cls, field: str, value: Any, allowed: str, sep: str = ": bad value ") -> UserError:
        """The common shape: ``<field>: bad value <value!r>; allowed: <allowed>``."""
        return cls(f"{ref(field)}{sep}{value!r}; allowed: {allowed}", value=value, allowed=allowed)

    def render(self, face: str | None = None, aliases: Mapping[str, str] | None = None) -> str:
        """The text with every field named as ``face`` names it (``cli``: flags, ``api``: keywords)."""
        face = face or self.face
        names = {**self.aliases, **(aliases or {})}
        namer = _RENDER.get(face, cli_name)

        def name(m: re.Match[str]) -> str:  # an alias may itself name fields: rendered by the same face
            alias = names.get(m.group(1))
            return _REF.sub(lambda a: namer(a.group(1)), alias) if alias else namer(m.group(1))

        return _REF.sub(name, self.template)

    def for_face(self, face: str, aliases: Mapping[str, str] | None = None) -> UserError:
        """This error, rendered by ``face`` (``api``: keywords; ``cli``: flags)."""
        e = UserError(self.template, value=self.value if self.has_value else _NOTHING, allowed=self.allowed,
                      face=face, aliases={**self.aliases, **(aliases or {})})
        e.__cause__, e.__traceback__ = self.__cause__, self.__traceback__
        return e

    def within(self, prefix: str) -> UserError:
        """This error with each field it names moved under ``prefix`` (``fraction`` -> ``pruning.fraction``): an
        options class raises about its own fields; the study that holds it under a name says where."""
        text = _REF.sub(lambda m: ref(f"{prefix}.{m.group(1)}"), self.template)
        return UserError(text, value=self.value if self.has_value else _NOTHING, allowed=self.allowed,
                         face=self.face, aliases=self.aliases)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its template (a cluster worker's error keeps its field references)."""
        return (_rebuild, (self.template, self.value if self.has_value else _NOTHING, self.allowed, self.face,
                           self.aliases))


def _rebuild(template: str, value: Any, allowed: str | None, face: str, aliases: dict[str, str]) -> UserError:
    return UserError(template, value=value, allowed=allowed, face=face, aliases=aliases)


def error_log_dir() -> Path:
    """Where the tracebacks of unexpected errors go, one file per crash: the folder ``$LTH_LOG`` when set, else
    ``~/.cache/lth/errors``."""
    env = os.environ.get("LTH_LOG")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lth" / "errors"


def _new_log(folder: Path) -> Path:
    """A new, empty log file in ``folder`` named by the time and process (``error-<UTC time>-<pid>-*.log``): two
    crashes never share one."""
    import datetime

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    fd, name = tempfile.mkstemp(prefix=f"error-{stamp}-{os.getpid()}-", suffix=".log", dir=folder)
    os.close(fd)
    return Path(name)


def write_error_log(text: str) -> Path | None:
    """Write ``text`` (a traceback) to a new file of its own in :func:`error_log_dir`; returns the file (the CLI's
    one-line message names it). Earlier crashes' files are kept.

    When that folder cannot be written (an unwritable or missing HOME, a read-only ``$LTH_LOG``), the text goes
    to a new file ``lth-error-*.log`` in the temporary folder (:func:`tempfile.mkstemp`) instead; when that fails
    too, returns None. Never raises: it runs while the CLI is already reporting another error."""
    try:
        folder = error_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = _new_log(folder)
        path.write_text(text)
        return path
    except Exception:  # any failure here falls back: none may escape
        pass
    try:
        fd, tmp = tempfile.mkstemp(prefix="lth-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(tmp)
    except Exception:
        return None
