"""``lth presets``: the presets and what each reproduces."""

from __future__ import annotations

import argparse

from lth.cli.common import emit_json
from lth.spec import TrainSpec

HELP = "list the presets"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth presets``."""
    p.add_argument("--json", action="store_true", help="print the presets and their specs as JSON")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Print one line per preset (or JSON)."""
    from lth.presets import PRESETS
    from lth.spec import to_dict

    if args.json:
        emit_json({"presets": {k: {"note": p.note, "spec": to_dict(p.spec)} for k, p in PRESETS.items()}})
        return 0
    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.note}")
    return 0
