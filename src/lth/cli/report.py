"""``lth report``: figures (PNG + SVG), tables (CSV) and an index.html of a store
(:func:`lth.studies.report.report`)."""

from __future__ import annotations

import argparse

from lth.cli.flags import add_options, options_values
from lth.cli.output import emit_json
from lth.spec import TrainSpec
from lth.studies.report import ReportOptions, report
from lth.studies.runtime import default_root

HELP = "figures (PNG + SVG), tables (CSV) and an index.html of a store"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth report``: :class:`ReportOptions` (``-o`` an alias of ``--out``)."""
    add_options(p, ReportOptions, None)
    p.add_argument("--json", action="store_true", help='print {"report", "figures", "tables"} as JSON')


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Build the report; print the index path (or JSON)."""
    values = options_values(args, ReportOptions)
    values.setdefault("root", default_root())
    result = report(ReportOptions.from_values(values))
    if args.json:
        emit_json(result.to_json())
    else:
        print(result["report"])
    return 0
