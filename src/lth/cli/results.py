"""``lth results``: one tidy row per run per evaluation (CSV or JSON)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from lth.cli.common import DEFAULT_ROOT, emit_json, existing_store
from lth.spec import TrainSpec

HELP = "one tidy row per run per evaluation"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth results``."""
    p.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT), help="the store to read")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help='print {"rows": [...]} as JSON')
    fmt.add_argument("--csv", action="store_true", help="print CSV (the default)")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Print the store's metrics frame."""
    from lth.analysis import metrics_frame

    root = existing_store(args.root)
    df = metrics_frame(root)
    if df.empty:
        print(f"lth: no finished runs under {root.resolve()}", file=sys.stderr)
    if args.json:
        emit_json({"rows": json.loads(df.to_json(orient="records"))})
    else:
        sys.stdout.write(df.to_csv(index=False, lineterminator="\n"))
    return 0
