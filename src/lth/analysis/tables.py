"""Tidy tables of a store: one row per run (``runs_frame``) or per run per evaluation (``metrics_frame``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

from lth.store import RunDir
from lth.store import paths as P

_PART = re.compile(r"^(replicate|level|branch)_(.+)$")
_DENSITY_CACHE: dict[tuple[str, int, int], float] = {}


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).resolve().rglob(P.SPEC))


def mask_density(path: Path) -> float:
    """Fraction of kept weights in a stored ``mask.pt`` (1.0 when the file is absent); cached per file version."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return 1.0
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _DENSITY_CACHE:
        mask = torch.load(path, map_location="cpu", weights_only=True)
        total = sum(m.numel() for m in mask.values())
        _DENSITY_CACHE[key] = sum(int(m.sum()) for m in mask.values()) / total if total else 1.0
    return _DENSITY_CACHE[key]


def _preset_label(spec: dict) -> str:
    """The spec's preset, or ``dataset/model`` when the spec does not record one."""
    if spec.get("preset"):
        return str(spec["preset"])
    return f"{spec.get('data', {}).get('dataset', '?')}/{spec.get('model', {}).get('model', '?')}"


def runs_frame(root: Path) -> pd.DataFrame:
    """One row per run: path, kind, experiment, replicate, level, branch (None on a trunk), rewind, preset,
    density (of the run's mask.pt; 1.0 without one), ticket_density (the trunk level's density, which is the
    x-coordinate of a branch such as small-dense that has no mask), status, final accuracy, every branch option
    (``branch_options.<name>``) and every non-nested spec field (flattened as ``group.field``)."""
    rows = []
    root = Path(root).resolve()
    for d in _run_dirs(root):
        spec = json.loads((d / P.SPEC).read_text())
        rel = d.relative_to(root).parts
        row: dict = {"path": str(d), "experiment": rel[0], "kind": rel[0].split("_")[0], "branch": None}
        for part in rel[1:]:
            m = _PART.match(part)
            if m:
                row[m.group(1)] = int(m.group(2)) if m.group(1) != "branch" else m.group(2)
        if row["branch"] is not None:
            row["branch_dir"] = row["branch"]
        for g in ("data", "model", "train"):
            for k, v in spec.get(g, {}).items():
                row[f"{g}.{k}"] = json.dumps(v) if isinstance(v, list) else v
        for k, v in spec.items():
            if k not in ("data", "model", "train"):
                row[k] = json.dumps(v) if isinstance(v, dict | list) else v
        for k, v in (spec.get("branch_options") or {}).items():
            row[f"branch_options.{k}"] = json.dumps(v) if isinstance(v, dict | list) else v
        row["preset"] = _preset_label(spec)
        row.setdefault("rewind", None)
        row["density"] = mask_density(d / P.MASK)
        row["ticket_density"] = row["density"]
        if row.get("kind") == "branch" and spec.get("trunk") is not None and row.get("level") is not None:
            trunk_run = Path(spec["trunk"]) / f"replicate_{row['replicate']}" / f"level_{row['level']}"
            row["ticket_density"] = mask_density(trunk_run / P.MASK)
        done = RunDir(d).done or {}
        row["status"] = done.get("status", "incomplete")
        row["final_test_accuracy"] = done.get("final_test_accuracy")
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["branch"] = df["branch"].astype(object).where(df["branch"].notna(), None)
        if "level" in df:
            df["level"] = df["level"].astype("Int64")
    return df


def metrics_frame(root: Path) -> pd.DataFrame:
    """One row per run per evaluation: the run's identifying columns beside its metrics."""
    runs = runs_frame(root)
    frames = []
    for _, run in runs.iterrows():
        m = pd.DataFrame(RunDir(Path(run["path"])).read_metrics())
        if m.empty:
            continue
        for col in reversed(("experiment", "kind", "preset", "branch", "rewind", "replicate", "level", "density",
                             "ticket_density", "status", "path")):  # inserted at 0: listed order, metrics after
            if col in run and pd.notna(run[col]) and col not in m:
                m.insert(0, col, run[col])
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
