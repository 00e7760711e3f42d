"""``lth report``: figures (PNG + SVG), tables (CSV) and an index.html of a store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lth.cli.common import DEFAULT_ROOT, emit_json, existing_store
from lth.errors import UserError
from lth.spec import TrainSpec

HELP = "figures (PNG + SVG), tables (CSV) and an index.html of a store"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth report``."""
    p.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT), help="the store to report on")
    p.add_argument("-o", "--out", default=None, help="output folder (default: ROOT/report)")
    p.add_argument("--json", action="store_true", help='print {"report", "figures", "tables"} as JSON')


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Build the report; print the index path (or JSON)."""
    from lth.report import build_report

    existing_store(args.root)
    if args.out:
        out = Path(args.out).expanduser()
        blocker = next((q for q in (out, *out.parents) if q.exists() and not q.is_dir()), None)
        if blocker is not None:
            raise UserError(f"--out {args.out!r}: {blocker} is a file; allowed: a folder (made if missing)")
    report = build_report(Path(args.root), Path(args.out) if args.out else None)
    if args.json:
        emit_json(report.to_json())
    else:
        print(report.index)
    return 0
