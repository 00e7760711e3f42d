"""Tidy tables of a store: one row per run (``runs_frame``) or per run per evaluation (``metrics_frame``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from lth.store import RunDir
from lth.store import paths as P

_PART = re.compile(r"^(replicate|level|branch)_(.+)$")


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).resolve().rglob(P.SPEC))


def runs_frame(root: Path) -> pd.DataFrame:
    """One row per run: path, kind, experiment, replicate, level, branch, preset, status, final accuracy and
    every non-nested spec field (flattened as ``group.field``)."""
    rows = []
    root = Path(root).resolve()
    for d in _run_dirs(root):
        spec = json.loads((d / P.SPEC).read_text())
        rel = d.relative_to(root).parts
        row: dict = {"path": str(d), "experiment": rel[0], "kind": rel[0].split("_")[0]}
        for part in rel[1:]:
            m = _PART.match(part)
            if m:
                row[m.group(1)] = int(m.group(2)) if m.group(1) != "branch" else m.group(2)
        for g in ("data", "model", "train"):
            for k, v in spec.get(g, {}).items():
                row[f"{g}.{k}"] = json.dumps(v) if isinstance(v, list) else v
        for k, v in spec.items():
            if k not in ("data", "model", "train"):
                row[k] = json.dumps(v) if isinstance(v, dict | list) else v
        done = RunDir(d).done or {}
        row["status"] = done.get("status", "incomplete")
        row["final_test_accuracy"] = done.get("final_test_accuracy")
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_frame(root: Path) -> pd.DataFrame:
    """One row per run per evaluation: the run's identifying columns beside its metrics."""
    runs = runs_frame(root)
    frames = []
    for _, run in runs.iterrows():
        m = pd.DataFrame(RunDir(Path(run["path"])).read_metrics())
        if m.empty:
            continue
        for col in ("path", "experiment", "kind", "replicate", "level", "branch", "preset", "status"):
            if col in run and pd.notna(run[col]):
                m.insert(0, col, run[col]) if col not in m else None
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
