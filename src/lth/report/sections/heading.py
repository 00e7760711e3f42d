"""A study's heading: its preset, pruning strategy and what tells it from the other studies; its rewind steps,
branches and trunk."""

from __future__ import annotations

from lth.report.context import Study, rewind_order


def heading(study: Study) -> None:
    """The study's ``h2`` and the line under it."""
    s, page = study.runs, study.page
    differs = study.differs
    page.h(2, f"Study {study.number}: {study.preset} (pruning: {study.strategy}{'; ' + differs if differs else ''})")
    rewinds = ", ".join(sorted(map(str, s["rewind"].dropna().unique()), key=rewind_order))
    branches = ", ".join(sorted(map(str, s["branch"].dropna().unique()))) or "none"
    page.p(f"Rewind steps: {rewinds}. Branches: {branches}. Trunk: {s['trunk'].iloc[0]}")
