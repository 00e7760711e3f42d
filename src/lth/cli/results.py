"""``lth results``: one tidy row per run per evaluation (CSV or JSON; :func:`lth.studies.report.results`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lth.cli.output import emit_json
from lth.spec import TrainSpec
from lth.studies.report import results, results_document
from lth.studies.runtime import default_root

HELP = "one tidy row per run per evaluation"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth results``."""
    p.add_argument("--root", default=default_root(), help="the store to read")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help='print {"rows": [...]} as JSON')
    fmt.add_argument("--csv", action="store_true", help="print CSV (the default)")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Print the store's metrics frame."""
    df = results(args.root)  # a store without runs: exit 2 and one line, as lth report and lth status
    if df.empty:
        print(f"lth: no finished runs under {Path(args.root).expanduser().resolve()}", file=sys.stderr)
    if args.json:
        emit_json(results_document(df))
    else:
        sys.stdout.write(df.to_csv(index=False, lineterminator="\n") if not df.empty else "")
    return 0
