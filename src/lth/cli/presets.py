"""``lth presets``: the presets and what each reproduces (:func:`lth.studies.report.presets`)."""

from __future__ import annotations

import argparse

from lth.cli.output import emit_json
from lth.spec import TrainSpec
from lth.studies.report import presets

HELP = "list the presets"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth presets``."""
    p.add_argument("--json", action="store_true", help="print the presets and their specs as JSON")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Print one line per preset (or JSON)."""
    doc = presets().to_json()
    if args.json:
        emit_json(doc)
        return 0
    width = max(map(len, doc["presets"]))
    for name, p in doc["presets"].items():
        print(f"{name:<{width}}  {p['note']}")
    return 0
