"""Tidy tables of a store: one row per run (``runs_frame``) or per run per evaluation (``metrics_frame``).

A run with a damaged file (:meth:`lth.store.RunDir.damaged`: a truncated ``metrics.csv``, ``done.json`` or
state) is left out of both tables with one warning line on stderr naming the file and the run; every other run
stays in.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lth.errors import UserError, ref
from lth.store import RunDir
from lth.store import paths as P
from lth.store.run import DamagedFile

_PART = re.compile(r"^(replicate|level|branch)_(.+)$")
_DENSITY_CACHE: dict[tuple[str, int, int], float] = {}


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).resolve().rglob(P.SPEC))


def mask_density(path: Path) -> float:
    """Fraction of kept weights in a stored ``mask.pt`` (1.0 when the file is absent); cached per file version.
    Raises :class:`~lth.store.run.DamagedFile` when the file cannot be read."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return 1.0
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _DENSITY_CACHE:
        mask = RunDir(path.parent).load_tensors(path.name)  # DamagedFile (naming it) when unreadable
        total = sum(m.numel() for m in mask.values())
        _DENSITY_CACHE[key] = sum(int(m.sum()) for m in mask.values()) / total if total else 1.0
    return _DENSITY_CACHE[key]


def _preset_label(spec: dict) -> str:
    """The spec's preset, or ``dataset/model`` when the spec does not record one."""
    if spec.get("preset"):
        return str(spec["preset"])
    return f"{spec.get('data', {}).get('dataset', '?')}/{spec.get('model', {}).get('model', '?')}"


def _warn_damaged(run: Path, file: str | Path, more: int = 0) -> None:
    extra = f" and {more} more" if more else ""
    print(f"lth: warning: skipping run {run}: damaged file {file}{extra} (run the command that trained it again: "
          "it retrains a run with a damaged file)", file=sys.stderr)


def check_store_root(root: Path) -> None:
    """UserError naming ``root`` when it lies inside a store (a run folder, an experiment folder, ...): the error
    names the store's root to give instead (:func:`lth.store.paths.store_root_of`)."""
    outer = P.store_root_of(root)
    if outer is not None:
        raise UserError(f"{ref('root')} {str(root)!r}: a folder inside the store {outer}, not a store's root; "
                        f"allowed: the store's root: {ref('root')} {shlex.quote(str(outer))}", value=str(root),
                        allowed=str(outer))


def empty_store(root: Path) -> UserError:
    """The one error every command that reads a store gives for one without runs (``lth results``, ``report``,
    ``status``: exit 2)."""
    return UserError(f"{ref('root')} {str(root)!r}: no runs in this store (no spec.json under it); allowed: a store "
                     f"written by lth train, lottery, branch, stability, landscape or recipe", value=str(root),
                     allowed="a store with runs")


def runs_frame(root: Path) -> pd.DataFrame:
    """One row per run: path, kind, experiment, replicate, level, branch (None on a trunk), rewind, preset,
    density (of the run's mask.pt; 1.0 without one), ticket_density (the trunk level's density, which is the
    x-coordinate of a branch such as small-dense that has no mask), status, final accuracy, every branch option
    (``branch_options.<name>``) and every non-nested spec field (flattened as ``group.field``). ``branch_dir`` is
    the branch folder's name (``<branch>_<hash>``; None on a trunk or a training run).

    Runs with a damaged file are left out, each with one warning line on stderr naming the file and the run. A
    ``root`` inside a store (a run folder) is a UserError naming the store's root (:func:`check_store_root`)."""
    rows = []
    root = Path(root).resolve()
    check_store_root(root)
    for d in _run_dirs(root):
        # a damaged scaffold.json is bookkeeping (states kept for duplicates), not a result: the run is listed
        bad = [b for b in RunDir(d).damaged() if Path(b) != d / P.SCAFFOLD]
        if bad:
            _warn_damaged(d, bad[0], len(bad) - 1)
            continue
        try:
            rows.append(_run_row(root, d))
        except DamagedFile as e:  # e.g. the mask of the trunk level a branch hangs off
            _warn_damaged(d, e.path)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["branch"] = df["branch"].astype(object).where(df["branch"].notna(), None)
        df["branch_dir"] = df["branch_dir"].astype(object).where(df["branch_dir"].notna(), None)
        if "level" in df:
            df["level"] = df["level"].astype("Int64")
    return df


def _run_row(root: Path, d: Path) -> dict:
    """The ``runs_frame`` row of the run in ``d`` (DamagedFile when one of its files cannot be read)."""
    spec = RunDir(d).read_json(P.SPEC)
    rel = d.relative_to(root).parts
    row: dict = {"path": str(d), "experiment": rel[0], "kind": rel[0].split("_")[0], "branch": None,
                 "branch_dir": None}
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
    return row


_HPARAM_PREFIXES = ("data.", "model.", "train.", "branch_options.")
_HPARAM_COLUMNS = ("pruning",)


def distinguishing_fields(frame: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of ``frame`` (``data.*``, ``model.*``, ``train.*``, ``branch_options.*`` and
    ``pruning``, as :func:`runs_frame` names them) that take more than one value among the rows that have one,
    in the frame's column order: what tells its runs apart beyond kind, branch, rewind, replicate and level
    (e.g. ``train.training_steps`` when some runs trained 1ep and others 2ep)."""
    cols = [c for c in frame.columns if c.startswith(_HPARAM_PREFIXES) or c in _HPARAM_COLUMNS]
    return [c for c in cols if frame[c].dropna().astype(str).nunique() > 1]


def short_name(column: str) -> str:
    """A hyperparameter column's field name without its group (``train.training_steps`` -> ``training_steps``)."""
    return column.rsplit(".", 1)[-1]


def field_label(row: pd.Series | dict, fields: Iterable[str]) -> str:
    """A legend label from a run's values of ``fields``: ``"training_steps=2ep, lr=0.1"`` (a field the run lacks
    is left out; the group prefix is kept where two fields share a name)."""
    fields = list(fields)
    shorts = [short_name(f) for f in fields]
    parts = []
    for f, sh in zip(fields, shorts, strict=True):
        v = row.get(f) if isinstance(row, dict) else (row[f] if f in row.index else None)
        if v is None or (not isinstance(v, str | list | dict) and pd.isna(v)):
            continue
        parts.append(f"{sh if shorts.count(sh) == 1 else f}={v}")
    return ", ".join(parts)


_IDENT = ("experiment", "kind", "preset", "branch", "rewind", "replicate", "level", "density", "ticket_density",
          "status", "path")


def metrics_frame(root: Path, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run per evaluation: the run's identifying columns (experiment, kind, preset, then the
    :func:`distinguishing_fields` of the store's runs, then branch, rewind, replicate, level, density,
    ticket_density, status, path) beside its metrics (every column of its ``metrics.csv``).

    ``runs`` is ``runs_frame(root)`` when the caller has it (its damaged-run warnings are then not repeated)."""
    runs = runs_frame(root) if runs is None else runs
    ident = list(_IDENT)
    ident[3:3] = distinguishing_fields(runs) if not runs.empty else []
    frames = []
    for _, run in runs.iterrows():
        try:
            m = pd.DataFrame(RunDir(Path(run["path"])).read_metrics())
        except DamagedFile as e:  # damaged since runs_frame looked
            _warn_damaged(Path(run["path"]), e.path)
            continue
        if m.empty:
            continue
        # a metric the run never filled (a 0-step run's train_loss: every cell None) is a number column, else
        # concatenating it makes the column object for every run and numeric means drop it
        m = m.astype({c: float for c in m.columns if m[c].isna().all()})
        for col in reversed(ident):  # inserted at 0: listed order, metrics after
            if col in run and pd.notna(run[col]) and col not in m:
                m.insert(0, col, run[col])
        frames.append(m)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    for col in ("level", "replicate", "iteration"):  # whole numbers stay whole where some runs lack them (NaN)
        if col in out:
            out[col] = out[col].astype("Int64")
    return out
