"""``lth report``: figures (PNG + SVG), tables (CSV) and an index.html of a store
(:func:`lth.studies.report.report`)."""

from __future__ import annotations

import argparse

from lth.cli.output import emit_json
from lth.spec import TrainSpec
from lth.studies.report import ReportOptions, report
from lth.studies.runtime import default_root

HELP = "figures (PNG + SVG), tables (CSV) and an index.html of a store"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth report``: :class:`ReportOptions` (``-o`` for ``--out``)."""
    helps = {f.name: f.help for f in ReportOptions.option_fields()}
    p.add_argument("--root", default=default_root(), help=helps["root"])
    p.add_argument("-o", "--out", default=None, help=helps["out"])
    p.add_argument("--json", action="store_true", help='print {"report", "figures", "tables"} as JSON')


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Build the report; print the index path (or JSON)."""
    result = report(ReportOptions.from_values(root=args.root, out=args.out))
    if args.json:
        emit_json(result.to_json())
    else:
        print(result["report"])
    return 0
