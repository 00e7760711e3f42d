"""Flags from options: one walk over an options dataclass's fields gives a command's flags (help, choices and
the preset's value beside each), and the flags the user gave turn back into the options. The runtime and executor
flags are :class:`lth.studies.runtime.RuntimeOptions`'s fields; the spec's and pruning's are their dataclasses'."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lth.errors import UserError, cli_name
from lth.options import Options
from lth.spec import GROUPS, TrainSpec, hparam_fields, to_json_value
from lth.studies.runtime import RuntimeOptions, default_root


def _flat(cls: type[Options]) -> list[tuple[Any, str]]:
    """(field, its path from ``cls``) of every field, parts' fields flattened (``executor.slurm.time``)."""
    out = []
    for f in cls.option_fields():
        if isinstance(f.type, type) and issubclass(f.type, Options):
            out += [(g, f"{f.name}.{p}") for g, p in _flat(f.type)]
        else:
            out.append((f, f.name))
    return out


# Second names of flags of the hyperparameter dataclasses (``--strategy`` for ``--pruning-strategy``); an options
# field declares its own (``option(..., aliases=("-o",))``). An error names the field as the user typed it.
ALIASES = {"pruning.strategy": "--strategy"}


def declared_aliases() -> dict[str, tuple[str, ...]]:
    """Every second name of a flag: :data:`ALIASES` and the ``aliases`` declared on the fields of every options
    class (``{"out": ("-o",)}``), by the field's path."""
    out = {path: (alias,) for path, alias in ALIASES.items()}
    seen: set[type] = set()
    todo = list(Options.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo += cls.__subclasses__()
        try:
            fields = cls.option_fields() if dataclasses.is_dataclass(cls) else []
        except (NameError, TypeError, AttributeError):  # annotations that do not resolve here: no flags either
            continue
        for f in fields:
            if f.aliases:
                out[f.path] = tuple(dict.fromkeys(out.get(f.path, ()) + f.aliases))
    return out


def _typed(alias: str, arg: str) -> bool:
    """Whether the command-line word ``arg`` is the flag ``alias`` (``--strategy``, ``--strategy=x``; a short one
    as ``-o``, ``-o=x`` or ``-oDIR``)."""
    if arg.split("=", 1)[0] == alias:
        return True
    return len(alias) == 2 and alias[0] == "-" and alias[1] != "-" and arg.startswith(alias) and len(arg) > 2


def typed_aliases(argv: list[str]) -> dict[str, str]:
    """The second names of flags (:func:`declared_aliases`) the user typed in ``argv``, by field path, for
    rendering an error (:meth:`UserError.render`): ``-o`` typed, an error about ``out`` names ``-o``."""
    out: dict[str, str] = {}
    for path, aliases in declared_aliases().items():
        typed = [alias for alias in aliases if any(_typed(alias, a) for a in argv)]
        if typed:
            out[path] = typed[0]
    return out


def dest_of(f: Any) -> str:
    """The argparse dest of an option field: its flag without dashes (``--slurm-time`` -> ``slurm_time``)."""
    return (f.flag or cli_name(f.path))[2:].replace("-", "_")


def flag_names(f: Any) -> list[str]:
    """The flag of an option field and its aliases: short ones (``-o``) first, as argparse shows ``-h, --help``."""
    primary = f.flag or cli_name(f.path)
    short = [a for a in f.aliases if not a.startswith("--")]
    return [*short, primary, *(a for a in f.aliases if a.startswith("--"))]


def add_options(p: argparse.ArgumentParser, cls: type[Options], title: str | None, skip: tuple[str, ...] = (),
                required: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls`` (its parts' fields too), named as errors name it (``--slurm-time``), with
    the field's aliases (``-o``); a field left out keeps its default. A field without a default is a required flag
    (argparse's usage shows it so and names it when missing), as is each of ``required`` (a field the command
    needs though Python has a default for it); a required list takes at least one value. A bool field is an
    optional true/false (``--strict``, ``--strict false``), or a plain switch where the field says ``switch``.
    ``title``: the group of the flags in ``--help`` (None: the command's own options); ``skip``: fields this
    command does not take."""
    group = p.add_argument_group(title) if title is not None else p
    for f, _ in _flat(cls):
        if f.name in skip:
            continue
        help_text = argparse.SUPPRESS if f.hidden else f.help
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": dest_of(f)}
        needed = f.required or f.name in required
        if needed:
            kwargs["required"] = True
        if f.metavar and not (f.type is bool and f.switch):
            kwargs["metavar"] = f.metavar
        if str(f.type).startswith("tuple"):
            kwargs.update(nargs="+" if needed else "*", action="extend")
        elif f.type is bool and f.switch:
            kwargs["action"] = "store_true"
        elif f.type is bool:
            kwargs.update(nargs="?", const="true")
        group.add_argument(*flag_names(f), **kwargs)


def options_values(args: argparse.Namespace, cls: type[Options]) -> dict[str, Any]:
    """The flags of ``cls`` the user gave, as the nested values :meth:`Options.from_values` takes."""
    given = vars(args)
    out: dict[str, Any] = {}
    for f, path in _flat(cls):
        if dest_of(f) in given:
            *parts, last = path.split(".")
            d = out
            for part in parts:
                d = d.setdefault(part, {})
            d[last] = given[dest_of(f)]
    return out


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Flags that say how and where to train, never what (:class:`RuntimeOptions`), ``--replicates`` and
    ``--json``."""
    add_options(p, RuntimeOptions, "runtime")
    p.add_argument("--replicates", type=_positive("--replicates"), default=1, help="number of replicates")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def runtime_from_args(args: argparse.Namespace) -> RuntimeOptions:
    """The runtime options of the flags given (the store defaulting to ``$LTH_ROOT`` or ``./runs``)."""
    values = options_values(args, RuntimeOptions)
    values.setdefault("root", default_root())
    return RuntimeOptions.from_values(values)


def _show(v: Any) -> str:
    v = to_json_value(v)
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def add_dataclass_flags(p: argparse.ArgumentParser, cls: type, title: str, flag_of: Any, dest_prefix: str,
                        base: Any = None, aliases: dict[str, str] | None = None, metavar: bool = True) -> None:
    """One flag per field of a flat hyperparameter dataclass (spec groups, pruning, branch options): help text and
    choices from the field's metadata, the preset's value beside it."""
    group = p.add_argument_group(title)
    for name, f, tp in hparam_fields(cls):
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_text += f" ({' | '.join(f.metadata['choices'])})"
        if base is not None:
            help_text += f" [preset: {_show(getattr(base, name))}]"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f"{dest_prefix}{name}"}
        if metavar:
            kwargs["metavar"] = name.upper()
        if str(tp).startswith("tuple"):
            kwargs["nargs"] = "*"
        elif tp is bool:
            kwargs.update(nargs="?", const="true")
        flags = [flag_of(name)] + ([aliases[name]] if aliases and name in aliases else [])
        group.add_argument(*flags, **kwargs)


def add_spec_flags(p: argparse.ArgumentParser, base: TrainSpec | None) -> None:
    """One flag per spec field; help shows the preset's value when a preset is given."""
    for g in GROUPS:
        add_dataclass_flags(p, type(getattr(TrainSpec(), g)), f"{g} hyperparameters",
                            lambda n: f"--{n.replace('_', '-')}", "", getattr(base, g) if base else None,
                            metavar=False)


def spec_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The spec fields the user gave as flags, as typed (``{"lr": "0.01"}``)."""
    names = {n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(TrainSpec(), g)))}
    return {k: v for k, v in vars(args).items() if k in names}


def pruning_from_args(args: argparse.Namespace) -> Any:
    """The preset's pruning recipe with the pruning flags given (:func:`lth.studies.lottery.pruning_of`)."""
    from lth.studies.lottery import pruning_of

    given = {k.removeprefix("prune__"): v for k, v in vars(args).items() if k.startswith("prune__")}
    return pruning_of(args.preset, given)  # an error names --strategy where typed so (lth.cli.main's aliases)


def add_pruning_flags(p: argparse.ArgumentParser, base_name: str | None) -> None:
    """``--pruning-*`` flags (and ``--strategy``), with the preset's values in their help."""
    from lth.presets import PRESETS
    from lth.prune import PruneHparams, flag

    base = PruneHparams(**PRESETS[base_name].pruning) if base_name in PRESETS else None  # type: ignore[arg-type]
    add_dataclass_flags(p, PruneHparams, "pruning", flag, "prune__", base,
                        aliases={k.split(".")[-1]: v for k, v in ALIASES.items() if k.startswith("pruning.")})


def whole_number(text: str, minimum: int, flag: str = "") -> int:
    """``text`` as an int >= ``minimum``; UserError naming the flag and the value otherwise."""
    try:
        v = int(text)
    except ValueError:
        v = minimum - 1
    if v < minimum:
        raise UserError(f"{flag + ' ' if flag else ''}{text!r}: expected a whole number >= {minimum}")
    return v


def _positive(flag: str) -> Any:
    def parse(text: str) -> int:
        return whole_number(text, 1, flag)
    return parse


def add_preset_flag(p: argparse.ArgumentParser) -> None:
    """``--preset`` (required)."""
    p.add_argument("--preset", required=True, help="a preset name (see `lth presets`)")


