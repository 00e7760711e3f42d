"""What the commands print: tables on stderr for people, one JSON document on stdout for scripts, and the line
about runs that diverged or failed with the exit code docs/CONTRACT.md promises."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_table(header: list[str], rows: list[list[str]], stderr: bool = True) -> None:
    """A table for people: boxed and folded to the width of a terminal; in a pipe or a log (a Slurm output file,
    ``2> log``) plain columns padded with spaces, one line per row and nothing cut, so that it stays readable and
    greppable. The first column is never folded."""
    from rich.console import Console
    from rich.table import Column, Table

    console = Console(stderr=stderr)
    if console.is_terminal:
        table = Table(Column(header[0], no_wrap=True), *header[1:])
        for r in rows:
            table.add_row(*r)
        console.print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(),
              file=sys.stderr if stderr else sys.stdout)


def emit_json(obj: Any) -> None:
    """The one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def report_divergence(records: list[dict[str, Any]], strict: bool = False) -> int:
    """Say on stderr how many runs diverged; the exit code the CONTRACT asks for (1 when all diverged or
    ``strict`` and any did)."""
    bad = [r for r in records if r.get("status") == "diverged"]
    if bad:
        print(f"lth: {len(bad)} of {len(records)} runs diverged: " + ", ".join(r["path"] for r in bad[:5])
              + (" ..." if len(bad) > 5 else ""), file=sys.stderr)
    failed = [r for r in records if r.get("status") == "failed"
              or (r.get("status") == "blocked" and r.get("error"))]  # blocked by a failed run (cluster executors)
    for r in failed:
        print(f"lth: failed: {r['path']}: {r.get('error', '')}", file=sys.stderr)
    if failed or (bad and (strict or len(bad) == len(records))):
        return 1
    return 0
