"""Build the report of a store: one section per study (a trunk spec with its rewind points and branches).

Every figure the store's contents allow is drawn; a figure whose data is absent is skipped. Figures go to
``OUT/<name>.png`` and ``.svg``, the table behind each to ``OUT/<name>.csv``, and ``OUT/index.html`` shows them
with relative links, so the folder can be moved and opened from disk. The page is removed when a rebuild starts
and written last, whole, so a report that fails part-way leaves no page that shows stale figures.

Runs with a damaged file are left out (one warning line each on stderr, from :func:`lth.analysis.runs_frame`).
Legends and figure titles name the hyperparameters that differ between runs
(:func:`lth.analysis.distinguishing_fields`).

The page is drawn by the sections of :data:`lth.report.sections.SECTIONS`, in order; what they draw is computed
in :mod:`lth.analysis` (studies, matching and jackpot verdicts, instability tables, telemetry).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from lth.analysis import metrics_frame, runs_frame
from lth.errors import UserError, ref
from lth.report import sections
from lth.report.captions import runs_text, split_text
from lth.report.context import ReportContext
from lth.report.figures import STYLE
from lth.report.page import Page, Report, write_page

__all__ = ["Report", "build_report", "runs_text", "split_text", "write_report"]


def build_report(root: Path, out: Path | None = None) -> Report:
    """Write the report of the store at ``root`` to ``out`` (default ``root/report``); returns what it wrote."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{ref('root')} {root}: no such directory; give a store written by lth train/lottery/branch")
    runs = runs_frame(root)
    runs = runs[~runs["path"].str.startswith(str((out or root / "report").resolve()))] if not runs.empty else runs
    if runs.empty:
        raise UserError(f"{ref('root')} {root}: no runs in this store (no spec.json under it); nothing to report")
    out = Path(out).expanduser().resolve() if out is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "index.html")
    # No page until every figure and table is written: a failure part-way leaves no index.html showing an old
    # build beside newer figures. The page is then written whole (atomically) as the last step.
    report.index.unlink(missing_ok=True)
    page = Page(out, report)
    ctx = ReportContext(page, root, runs, metrics_frame(root, runs))
    with matplotlib.rc_context(STYLE):
        for section in sections.SECTIONS.values():
            section(ctx)
    write_page(page)
    return report


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the store at ``root``; returns the path of its ``index.html``."""
    return build_report(root, out).index
