"""Build the report of a store: one section per study (a trunk spec with its rewind points and branches).

Every figure the store's contents allow is drawn; a figure whose data is absent is skipped. Figures go to
``OUT/<name>.png`` and ``.svg``, the table behind each to ``OUT/<name>.csv``, and ``OUT/index.html`` shows them
with relative links, so the folder can be moved and opened from disk. The whole folder is built aside and swapped
in (:func:`build_report`), so a report that fails or is interrupted part-way leaves the previous one whole.

Planned runs that are not in the store (:func:`lth.store.plans.store_status`) are named in a warning paragraph at
the top of the page and in :meth:`Report.to_json` (``planned``, ``present``, ``missing``, ``shortfalls``); each
study's verdicts say which levels have fewer runs than planned.

Runs with a damaged file are left out (one warning line each on stderr, from :func:`lth.analysis.runs_frame`).
Legends and figure titles name the hyperparameters that differ between runs
(:func:`lth.analysis.distinguishing_fields`).

The page is drawn by the sections of :data:`lth.report.sections.SECTIONS`, in order; what they draw is computed
in :mod:`lth.analysis` (studies, matching and jackpot verdicts, instability tables, telemetry).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import matplotlib

from lth.analysis import metrics_frame, runs_frame
from lth.analysis.tables import empty_store
from lth.errors import UserError, ref
from lth.report import sections
from lth.report.captions import runs_text, split_text
from lth.report.context import ReportContext
from lth.report.figures import STYLE
from lth.report.page import Page, Report, write_page
from lth.store.atomic import _umask
from lth.store.plans import store_status

MARKER = ".lth-report"  # in every report folder: what `lth report` may replace whole

__all__ = ["Report", "build_report", "runs_text", "split_text", "write_report"]


def build_report(root: Path, out: Path | None = None) -> Report:
    """Write the report of the store at ``root`` to ``out`` (default ``root/report``); returns what it wrote.

    The report is built whole in a new sibling folder (``.<out name>.new-*``) and swapped in by renaming: the
    previous report folder is renamed aside, the new one renamed to ``out``, the previous one removed. A build
    that fails or is interrupted (Ctrl-C) leaves the previous report whole; one interrupted between the two
    renames is put back by the next build (:func:`_recover`). ``out`` must be new, empty or a report folder
    (:data:`MARKER`): it is replaced whole."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{ref('root')} {root}: no such directory; give a store written by lth train/lottery/branch")
    runs = runs_frame(root)
    runs = runs[~runs["path"].str.startswith(str((out or root / "report").resolve()))] if not runs.empty else runs
    if runs.empty:
        raise empty_store(root)
    out = Path(out).expanduser().resolve() if out is not None else root / "report"
    _recover(out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a report folder is as readable as a new folder
        report = Report(tmp / "index.html")
        page = Page(tmp, report)
        ctx = ReportContext(page, root, runs, metrics_frame(root, runs), store_status(root, warn=False))
        with matplotlib.rc_context(STYLE):
            for section in sections.SECTIONS.values():
                section(ctx)
        (tmp / MARKER).write_text("an lth report folder: `lth report` replaces it whole\n")
        write_page(page)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report.moved(tmp, out, ctx.account)


def _old_name(out: Path) -> str:
    return f".{out.name}.old-"


def _recover(out: Path) -> None:
    """A swap interrupted between its two renames left no ``out`` and the previous report aside: put it back."""
    if out.exists() or not out.parent.is_dir():
        return
    aside = sorted(out.parent.glob(_old_name(out) + "*"))
    if aside:
        os.rename(aside[-1], out)


def _check_replaceable(out: Path) -> None:
    """``out`` is replaced whole: it must not exist, be empty, or be a report folder (holds :data:`MARKER`, or an
    ``index.html`` of an lth report, or only what a report writes, from before the marker)."""
    if not out.exists() or not out.is_dir() or not any(out.iterdir()) or (out / MARKER).exists():
        return
    index = out / "index.html"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if "<title>lth report</title>" in index.read_text(encoding="utf-8")[:2000]:
            return
    if all(p.is_file() and p.suffix in (".png", ".svg", ".csv", ".html") for p in out.iterdir()):
        return  # a report whose page a failed build of an earlier lth removed
    raise UserError(f"{ref('out')} {str(out)!r}: holds files that are not an lth report (the report replaces its "
                    f"folder whole); allowed: a new or empty folder, or a report folder", value=str(out),
                    allowed="a new or empty folder, or a report folder")


def _swap(new: Path, out: Path) -> None:
    """Put the folder ``new`` in the place of ``out`` (renamed aside first, then removed)."""
    if not out.exists():
        os.rename(new, out)
        return
    aside = out.parent / f"{_old_name(out)}{uuid.uuid4().hex[:8]}"
    os.rename(out, aside)
    os.rename(new, out)
    shutil.rmtree(aside, ignore_errors=True)


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the store at ``root``; returns the path of its ``index.html``."""
    return build_report(root, out).index
