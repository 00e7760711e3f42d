"""The argparse subclass of every command: one-line errors with exit code 2, unknown flags named beside the near
ones (``did you mean --lr?``) and the command they belong to."""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any, NoReturn

from lth.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (the CONTRACT's bad-input promise): an unknown flag, command
    or choice is named with the near ones (``did you mean --lr?``) and where the allowed ones are listed."""

    def error(self, message: str) -> NoReturn:
        m = re.fullmatch(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)", message, re.S)
        if m:
            what, value = m.group(1), m.group(2)
            allowed = [c.strip().strip("'") for c in m.group(3).split(",")]
            near = difflib.get_close_matches(value, allowed, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            if what == "command":
                raise UserError(f"unknown command {value!r}{hint}; allowed: {', '.join(allowed)}")
            raise UserError(f"{what}: bad value {value!r}{hint}; allowed: {', '.join(allowed)}")
        raise UserError(message)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, with unknown flags named beside the nearest known ones of the command they were
        given to."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unknown(extras, ns))
        return ns

    def _unknown(self, extras: list[str], ns: argparse.Namespace) -> str:
        """The message for arguments no flag took: the first unknown flag, the nearest known flags of the
        command, and the ``--help`` that lists them."""
        parser: argparse.ArgumentParser = self
        commands: dict[str, argparse.ArgumentParser] = {}
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands = dict(action.choices)
                if getattr(ns, action.dest, None) in action.choices:
                    parser = action.choices[getattr(ns, action.dest)]
        flags = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
        if not flags:
            return f"unrecognized arguments: {' '.join(extras)}; allowed: see `{parser.prog} --help`"
        elsewhere = [name for name, c in commands.items() if c is not parser and flags[0] in c._option_string_actions]
        near = near_flags(flags[0], [o for o in parser._option_string_actions if o.startswith("--")])
        if elsewhere:  # a flag of another command: saying so beats a near spelling of an unrelated flag
            names = ", ".join(f"`lth {n}`" for n in elsewhere[:3]) + (
                f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else "")
            hint = f" ({flags[0]} is a flag of {names}, not of `{parser.prog}`)"
            i = next(i for i, a in enumerate(extras) if a.split("=", 1)[0] == flags[0])
            pair = extras[i].partition("=")[2] or (extras[i + 1] if i + 1 < len(extras) else "")  # --set[=]K=V
            if flags[0] == "--set" and "=" in pair:  # --set KEY=VALUE where each hyperparameter is its own flag
                key, value = pair.split("=", 1)
                same = near_flags("--" + key, [o for o in parser._option_string_actions if o.startswith("--")])
                hint = hint[:-1] + (f"; here each hyperparameter is its own flag: {same[0]} {value})" if same else ")")
        else:
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        return f"unrecognized arguments: {' '.join(extras)}{hint}; allowed: the flags `{parser.prog} --help` lists"


# Names other tools give lth's flags: what a newcomer types first.
_SYNONYMS = {"--learning-rate": "--lr", "--epochs": "--training-steps", "--iterations": "--training-steps",
             "--steps": "--training-steps", "--seed": "--init-seed", "--seeds": "--replicates",
             "--gpu": "--device", "--cuda": "--device", "--output": "--root", "--output-dir": "--root",
             "--out": "--root", "--prune-fraction": "--pruning-fraction", "--pruning-rate": "--pruning-fraction",
             "--prune-rate": "--pruning-fraction", "--rounds": "--levels", "--data": "--data-dir"}


def near_flags(flag: str, known: list[str]) -> list[str]:
    """The known flags a mistyped ``flag`` most likely meant (at most two): a synonym lth names otherwise
    (``--epochs`` -> ``--training-steps``), the same flag with dashes (``--data_dir``), a known flag the typed one
    extends (``--lr-rate`` -> ``--lr``), else the close spellings."""
    if flag in _SYNONYMS and _SYNONYMS[flag] in known:
        return [_SYNONYMS[flag]]
    dashed = "--" + flag.lstrip("-").replace("_", "-")
    if dashed in known:
        return [dashed]
    extended = [k for k in known if dashed.startswith(k + "-")]
    if extended:
        return [max(extended, key=len)]
    return difflib.get_close_matches(dashed, known, n=2, cutoff=0.75)
