"""What the report's sections draw from: the store (:class:`ReportContext`: its runs, metrics and page) and each
study in it (:class:`Study`: its runs labelled by series, its title and file prefix, its accuracy table).

The labels are the report's; the grouping of runs into studies and every number are computed in
:mod:`lth.analysis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from lth.analysis import distinguishing_fields, field_label
from lth.analysis.studies import accuracy_by_level, studies
from lth.report.page import Page


def rewind_order(text: Any) -> tuple[int, float]:
    """Sort key of a rewind step's text: steps in iterations (``5it``) before steps in epochs (``2ep``), each by
    its count; unreadable text last."""
    t = str(text)
    unit = 1 if t.endswith("ep") else 0
    try:
        return unit, float(t.rstrip("itep") or 0)
    except ValueError:
        return 2, 0.0


def pretrain_text(value: Any) -> str:
    """What a run's rewinding point was pretrained on (its spec's ``pretrain``, a JSON object in the runs frame),
    as a label's part: ``"pretrain: rotation"`` (``", sparse"`` for sparse pretraining); ``""`` for a run with no
    pretraining."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    try:
        p = json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError):
        return ""
    if not isinstance(p, dict) or not p.get("task"):
        return ""
    return f"pretrain: {p['task']}" + (", sparse" if p.get("sparse") else "")


def with_series(study: pd.DataFrame) -> pd.DataFrame:
    """Add ``series`` (the legend label: IMP or the branch, with the task its rewinding point was pretrained on
    (one series per pretraining task, apart from the plain trunk) and the rewind step when there are several)."""
    s = study.copy()
    rewinds = sorted(s["rewind"].dropna().unique(), key=rewind_order)
    branches = s[s["kind"] == "branch"]
    # several folders of one branch (different options): told apart by the options that differ, else the hash
    differ = {b: distinguishing_fields(g) for b, g in branches.groupby("branch")
              if "branch_dir" in g and g["branch_dir"].nunique() > 1}

    def label(r: pd.Series) -> str:
        name = "IMP ticket" if r["kind"] == "lottery" else str(r["branch"])
        task = pretrain_text(r.get("pretrain"))
        if task:
            name += f" ({task})"
        if r["kind"] == "branch" and r["branch"] in differ:
            name += f" [{field_label(r, differ[r['branch']]) or str(r['branch_dir']).rsplit('_', 1)[-1]}]"
        return f"{name}, rewind {r['rewind']}" if len(rewinds) > 1 else name
    s["series"] = s.apply(label, axis=1)
    return s


def with_run_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``label``: the preset and the hyperparameters that differ between the runs of that preset
    (``digits_mlp, training_steps=2ep``); the experiment folder when nothing differs but the folder. Fields are
    compared within a preset: two presets' own values (batch size, dataset, model, ...) would make every label
    a line of the spec and the legend wider than the figure."""
    preset = runs["preset"].astype(str)
    fields = {p: distinguishing_fields(g) for p, g in runs.groupby(preset)}
    several = runs.groupby(preset)["experiment"].nunique().to_dict()

    def label(r: pd.Series) -> str:
        p = str(r["preset"])
        text = field_label(r, fields[p])
        if text:
            return f"{p}, {text}"
        return f"{p} ({r['experiment']})" if several[p] > 1 else p
    return runs.assign(label=runs.apply(label, axis=1))


@dataclass
class ReportContext:
    """The store a report draws: its ``root``, its ``runs`` and ``metrics`` frames, the ``page``, and its
    ``account`` of planned runs (:func:`lth.store.plans.store_status`: ``planned``, ``present``, ``missing``,
    ``shortfalls``; empty: not checked)."""

    page: Page
    root: Path
    runs: pd.DataFrame
    metrics: pd.DataFrame
    account: dict[str, Any] = field(default_factory=dict)  # planned vs present (lth.store.plans.store_status)

    @cached_property
    def studies(self) -> list[Study]:
        """The store's studies (:func:`lth.analysis.studies.studies`), in order, each told apart from the others
        by the fields its trunk's runs differ in (branch options aside)."""
        found = studies(self.runs)
        trunks = pd.concat([st[st["kind"] == "lottery"] for st in found]) if found else self.runs.iloc[0:0]
        fields = [f for f in distinguishing_fields(trunks) if not f.startswith("branch_options.")]
        out = []
        for i, study in enumerate(found):
            s = with_series(study)
            strategy = json.loads(s["pruning"].dropna().iloc[0]).get("strategy", "?") if "pruning" in s and \
                s["pruning"].notna().any() else "?"
            differs = field_label(s[s["kind"] == "lottery"].iloc[0], fields) if fields else ""
            out.append(Study(self, i + 1, s, "" if len(found) == 1 else f"study{i + 1}_",
                             str(s["preset"].iloc[0]), strategy, differs))
        return out

    @cached_property
    def train_runs(self) -> pd.DataFrame:
        """The ``lth train`` runs with their legend ``label`` (:func:`with_run_labels`); empty without any."""
        train = self.runs[self.runs["kind"] == "train"] if "kind" in self.runs else self.runs.iloc[0:0]
        return train if train.empty else with_run_labels(train)

    @cached_property
    def train_metrics(self) -> pd.DataFrame:
        """The metrics rows of :attr:`train_runs`; empty when none of them has a test accuracy."""
        m = self.metrics
        m = m[m["path"].isin(self.train_runs["path"])] if not m.empty else m
        return m.iloc[0:0] if m.empty or m["test_accuracy"].notna().sum() == 0 else m


@dataclass
class Study:
    """One study of the store: ``number`` (from 1), its ``runs`` (with ``series``), the ``prefix`` of its files,
    its ``preset``, pruning ``strategy`` and the fields that tell it from the other studies (``differs``)."""

    report: ReportContext
    number: int
    runs: pd.DataFrame
    prefix: str
    preset: str
    strategy: str
    differs: str

    @property
    def page(self) -> Page:
        """The report's page."""
        return self.report.page

    @property
    def title(self) -> str:
        """The preset, with what tells this study from the others: figure titles name it."""
        return f"{self.preset} ({self.differs})" if self.differs else self.preset

    @cached_property
    def accuracy(self) -> pd.DataFrame:
        """Final test accuracy per series and level (:func:`lth.analysis.studies.accuracy_by_level`)."""
        return accuracy_by_level(self.runs)
