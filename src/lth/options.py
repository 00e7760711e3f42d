"""The options layer: dataclasses whose fields carry their help, choices and range, parse from strings (the
command line) and from Python values (the API), and validate once.

Every study's options (the spec's hyperparameter groups, pruning, branches, runtime and executor, stability,
landscape, hessian, recipe) are :class:`Options` subclasses made of :func:`option` fields, so both faces share one
parser and one set of checks, and the CLI's flags are one walk over the fields (:mod:`lth.cli.flags`)::

    @dataclass(frozen=True)
    class HessianOptions(Options):
        PREFIX: ClassVar[str] = ""
        k: int = option(1, "eigenvalues per state", low=1)
        which: str = option("largest", "which end of the spectrum", choices=("largest", "smallest"))

    HessianOptions.from_values({"k": "3"})        # from the command line: "3" parsed to 3
    HessianOptions.from_values(k=3, which="lo")   # from Python: UserError "which: bad value 'lo'; allowed: ..."

Errors name the field by its path (``PREFIX.name``), which each face renders (:mod:`lth.errors`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from lth.errors import UserError, ref
from lth.steps import Step

T = TypeVar("T", bound="Options")
_MISSING: Any = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, choices: tuple[Any, ...] | None = None,
           low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           allowed: str | None = None, flag: str | None = None, metavar: str | None = None,
           hidden: bool = False, switch: bool = False, aliases: tuple[str, ...] = (), **kw: Any) -> Any:
    """A dataclass field of an :class:`Options` class: its help text, the choices or range it allows (``low``,
    ``high``; ``*_open`` excludes the bound), ``allowed`` (the words an error uses for what is allowed, when the
    range's own are not enough), ``flag`` (its command-line flag where the default ``--field-name`` is not it),
    ``metavar`` and ``hidden`` (a flag left out of ``--help``). ``switch``: a bool field given on the command line
    as a plain switch taking no value (``--quick``; by default a bool flag takes an optional true/false);
    ``aliases``: more names of its flag (``("-o",)`` beside ``--out``; an error names the flag as the user typed
    it)."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "allowed": allowed, "flag": flag, "metavar": metavar, "hidden": hidden,
            "switch": switch, "aliases": tuple(aliases)}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One field of an options class, as the faces see it: its path in errors, type, default, help, choices,
    range and flag (with its aliases, and whether a bool flag is a plain switch)."""

    name: str
    path: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    low: float | None
    high: float | None
    low_open: bool
    high_open: bool
    allowed: str | None
    flag: str | None
    metavar: str | None
    hidden: bool
    switch: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """No default: the study cannot run without it."""
        return self.default is _MISSING

    def allowed_text(self) -> str:
        """What the field allows, in words (``a whole number >= 1``, ``one of a, b``)."""
        if self.allowed:
            return self.allowed
        if self.choices:
            return ", ".join(map(str, self.choices))
        base = _base_type(self.type)
        what = "a whole number" if base is int else "a number" if base is float else _kind(self.type)
        lo = None if self.low is None else ((">" if self.low_open else ">=") + f" {_num(self.low)}")
        hi = None if self.high is None else (("<" if self.high_open else "<=") + f" {_num(self.high)}")
        if lo and hi:
            return (f"{what} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                    f"{')' if self.high_open else ']'}")
        return f"{what} {lo or hi}" if (lo or hi) else what

    def near_choice(self, value: Any) -> str:
        """`` (did you mean off?)`` when a text ``value`` is a near miss of one of the choices (``of``), else
        ``""``."""
        if not self.choices or not isinstance(value, str):
            return ""
        near = difflib.get_close_matches(value, [str(c) for c in self.choices], n=1)
        return f" (did you mean {near[0]}?)" if near else ""

    def check(self, value: Any) -> None:
        """UserError naming the field when ``value`` is outside its choices (a near miss suggested) or range."""
        if value is None:
            return
        if self.choices and value not in self.choices:
            raise UserError(f"{ref(self.path)}: unknown value {value!r}{self.near_choice(value)}; allowed: "
                            f"{self.allowed_text()}", value=value, allowed=self.allowed_text())
        if isinstance(value, int | float) and not isinstance(value, bool):
            bad = ((self.low is not None and (value <= self.low if self.low_open else value < self.low))
                   or (self.high is not None and (value >= self.high if self.high_open else value > self.high)))
            if bad:
                raise UserError.bad(self.path, value, self.allowed_text())


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return args[0]
    return tp


def _kind(tp: Any) -> str:
    base = _base_type(tp)
    if base is bool:
        return "true or false"
    if base is int:
        return "a whole number"
    if base is float:
        return "a number"
    if typing.get_origin(base) is tuple:
        return "a list"
    return getattr(base, "__name__", str(base))


class Options:
    """Base of the options dataclasses (``@dataclass(frozen=True) class X(Options)``): fields made with
    :func:`option`; :meth:`from_values` parses strings or Python values and validates once; :meth:`validate` runs
    the per-field choices and ranges, then :meth:`check` (a subclass's checks across fields). ``PREFIX`` is the
    path of its fields in errors (``pruning``: ``fraction`` reads ``--pruning-fraction`` / ``pruning["fraction"]``)."""

    PREFIX: ClassVar[str] = ""

    @classmethod
    def path(cls, name: str) -> str:
        """The path of field ``name`` in errors."""
        return f"{cls.PREFIX}.{name}" if cls.PREFIX else name

    @classmethod
    def option_fields(cls) -> list[OptionField]:
        """Every field, with its help, choices, range and flag."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            m = f.metadata
            default = f.default if f.default is not _MISSING else (
                f.default_factory() if f.default_factory is not _MISSING else _MISSING)  # type: ignore[misc]
            out.append(OptionField(f.name, cls.path(f.name), hints[f.name], default, m.get("help", ""),
                                   m.get("choices"), m.get("low"), m.get("high"), m.get("low_open", False),
                                   m.get("high_open", False), m.get("allowed"), m.get("flag"), m.get("metavar"),
                                   m.get("hidden", False), m.get("switch", False), m.get("aliases", ())))
        return out

    @classmethod
    def from_values(cls: type[T], values: Mapping[str, Any] | None = None, *, base: T | None = None,
                    **more: Any) -> T:
        """An instance from ``values`` (and keywords): strings as the command line gives them (``"3"``,
        ``"0.1"``, ``"a,b"``), or Python values; fields not given keep ``base``'s values (else their defaults).
        Unknown names are a UserError suggesting the nearest; the result is validated."""
        given = {**(values or {}), **more}
        fields = {f.name: f for f in cls.option_fields()}
        for key in given:
            if key not in fields:
                raise unknown_name(key, list(fields), cls.PREFIX or None,
                                   what="option" if cls.PREFIX else "keyword argument")
        parsed = {k: parse_value(fields[k].type, v, fields[k].path) for k, v in given.items()}
        if base is not None:
            obj = dataclasses.replace(base, **parsed)  # type: ignore[type-var]
        else:
            missing = [f for f in fields.values() if f.required and f.name not in parsed]
            if missing:
                raise UserError(f"{ref(missing[0].path)}: required; allowed: {missing[0].allowed_text()}")
            obj = cls(**parsed)
        obj.validate()
        return obj

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` parsed and validated."""
        return type(self).from_values(changes, base=self)

    def validate(self) -> None:
        """Every field against its choices and range, then :meth:`check`; UserError names the first bad value."""
        for f in self.option_fields():
            f.check(getattr(self, f.name))
        self.check()

    def check(self) -> None:
        """Checks across fields (a subclass's); the per-field ones have run."""


def unknown_name(key: str, known: list[str], path: str | None = None, what: str = "keyword argument",
                 extra: str = "") -> UserError:
    """The error for a misspelt name: the nearest known one suggested (``rewnd`` -> ``rewind``), all listed."""
    known = list(dict.fromkeys(known))  # each name once
    near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    lead = ref(path) + ": unknown" if path else f"unknown {what} {key!r}"
    if path:
        return UserError(f"{lead} {what} {key!r}{hint}; allowed: {extra}{', '.join(known)}", value=key,
                         allowed=", ".join(known))
    return UserError(f"{lead}{hint}; allowed: {extra}{', '.join(known)}", value=key, allowed=", ".join(known))


def parse_value(tp: Any, raw: Any, path: str) -> Any:
    """``raw`` (a command-line string or a Python value) as type ``tp`` (``int``, ``float``, ``bool``, ``str``,
    ``Step``, ``X | None``, ``tuple[X, ...]``); a UserError naming ``path`` otherwise. A bool is not taken for a
    number, a number must be finite."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if raw is None or (isinstance(raw, str) and raw.lower() == "none"):
            return None
        return parse_value(next(a for a in args if a is not type(None)), raw, path)
    if origin is tuple:
        inner = args[0]
        parts = list(raw) if isinstance(raw, list | tuple) else [raw]
        items = [s for p in parts for s in (str(p).split(",") if isinstance(p, str) else [p]) if str(s).strip()]
        return tuple(parse_value(inner, x.strip() if isinstance(x, str) else x, path) for x in items)
    if isinstance(tp, type) and issubclass(tp, Options):  # a part of options: its own options or a dict of them
        if isinstance(raw, tp):
            return raw
        if isinstance(raw, Mapping):
            return tp.from_values(raw)
        raise UserError(f"{ref(path)}: bad value {raw!r}; allowed: a dict of its options or a {tp.__name__}",
                        value=raw, allowed=f"a dict or a {tp.__name__}")
    try:
        if tp is Step:
            return Step.parse(raw)
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if tp is float:
            if isinstance(raw, bool):
                raise ValueError
            if not math.isfinite(v := float(raw)):  # 1e999 reads as inf: no hyperparameter means that
                raise UserError(f"bad value {raw!r}; allowed: a finite number", value=raw, allowed="a finite number")
            return v
        if tp is str:
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise TypeError
            return str(raw)
        return raw
    except UserError as e:
        raise UserError(f"{ref(path)}: {e.template}", value=raw, allowed=e.allowed) from None
    except (TypeError, ValueError, OverflowError):
        kind = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(tp, str(tp))
        raise UserError(f"{ref(path)}: bad value {raw!r}, expected {kind}", value=raw, allowed=kind) from None


__all__ = ["OptionField", "Options", "option", "parse_value", "unknown_name"]
