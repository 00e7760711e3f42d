"""The page's head: the store, its run counts (with a warning naming planned runs that are not in it), the
experiments table and the link to every run (``runs.csv``)."""

from __future__ import annotations

import datetime
from typing import Any

import pandas as pd

from lth.report.context import ReportContext
from lth.report.figures import write_csv
from lth.store.plans import missing_text


def overview(ctx: ReportContext) -> None:
    """The heading, a line on the store, the experiments in it and ``runs.csv``."""
    page, runs = ctx.page, ctx.runs
    page.h(1, "lth report")
    account = ctx.account
    planned = f" ({account['present']} of {account['planned']} planned runs present)" if account.get("planned") \
        else ""
    page.p(f"Store: {ctx.root} — {len(runs)} runs, {int((runs['status'] == 'complete').sum())} complete{planned}. "
           f"Generated {datetime.datetime.now().isoformat(timespec='seconds')}. Accuracies in tables are "
           "fractions; figures show percent.")
    if account.get("missing"):
        page.warning(f"{missing_text(account, ctx.root)}. The figures, tables and verdicts below are computed on "
                     "the runs present; each study's verdicts name the levels with fewer runs than planned.")
        gone = pd.DataFrame(account["missing"])
        page.table(gone, "missing", "Planned runs not in the store (status: missing = no folder, unfinished = "
                   "started, not finished; failed; blocked = a run it starts from failed or diverged; damaged = a "
                   "file cannot be read; running = another process trains it now)",
                   gone[[c for c in ("path", "what", "replicate", "status") if c in gone]])
    cols = [c for c in ("experiment", "kind", "preset", "branch", "rewind", "level") if c in runs]
    aggs: dict[str, Any] = {"runs": ("path", "size"), "complete": ("complete", "sum")}
    if "level" in runs:
        aggs["levels"] = ("level", lambda x: ", ".join(str(v) for v in sorted(x.dropna().unique())))
    overview = runs.assign(complete=runs["status"] == "complete").groupby(
        [c for c in ("experiment", "kind", "preset", "branch", "rewind") if c in runs], dropna=False).agg(
        **aggs).reset_index()
    page.table(overview, "experiments", "Experiments in the store")
    keep = [c for c in ("path", *cols[:5], "replicate", "level", "density", "ticket_density", "status",
                        "final_test_accuracy") if c in runs]
    p = write_csv(runs[list(dict.fromkeys(keep))], page.out / "runs.csv")
    page.report.tables.append(p)
    page.parts.append('<p class="cap">Every run: <a href="runs.csv">runs.csv</a></p>')
