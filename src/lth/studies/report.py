"""Reading a store: its report (figures, tables and an index.html), its results and runs as DataFrames, one run's
states and ticket, and the presets. Library functions behind ``lth report``, ``lth results`` and ``lth presets``
and their Python faces (:mod:`lth.api`).

    from lth.studies.report import ReportOptions, report, results
    report(ReportOptions(root="runs")).to_json()     # {"report": index.html, "figures": [...], "tables": [...]}
    results("runs")                                  # one row per run per evaluation
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from lth.errors import UserError, ref
from lth.options import Options, option
from lth.studies.base import StudyResult
from lth.studies.runtime import DEFAULT_ROOT, existing_store


@dataclass(frozen=True)
class ReportOptions(Options):
    """Which store ``lth report`` draws and where the page goes."""

    PREFIX: ClassVar[str] = ""
    root: str = option(DEFAULT_ROOT, "the store to report on (default: $LTH_ROOT or ./runs)")
    out: str | None = option(None, "output folder (default: ROOT/report)", aliases=("-o",))


def check_out(out: str | None) -> None:
    """``out``: no file where a folder of the path would be (the folders are made where missing)."""
    if out:
        path = Path(out).expanduser()
        blocker = next((q for q in (path, *path.parents) if q.exists() and not q.is_dir()), None)
        if blocker is not None:
            raise UserError(f"{ref('out')} {out!r}: {blocker} is a file; allowed: a folder (made if missing)",
                            value=out, allowed="a folder")


def report(options: ReportOptions) -> StudyResult:
    """Write the report of the store at ``options.root`` (figures as PNG and SVG, tables as CSV, ``index.html``)
    to ``options.out`` (default ``ROOT/report``), built aside and swapped in whole. The result's document is
    ``lth report --json``'s: ``{"report": index.html, "figures": [...], "tables": [...], "planned", "present",
    "missing", "shortfalls"}`` (absolute paths; planned runs not in the store are also named on stderr)."""
    from lth.report import build_report
    from lth.studies.status import warn_missing

    root = existing_store(options.root)
    check_out(options.out)
    built = build_report(root, Path(options.out) if options.out else None)
    warn_missing(built.account, root)
    return StudyResult(built.to_json(), table="figures")


def results(root: str | Path = DEFAULT_ROOT) -> pd.DataFrame:
    """One row per run per evaluation of the store at ``root`` (``lth results``'s rows); empty where no run has
    finished. Planned runs that are not in the store (:func:`lth.studies.status.store_status`) are named in one
    warning line on stderr and in the frame's ``attrs``: ``planned``, ``present`` (counts) and ``missing`` (one
    record per run). UserError naming ``root`` for a store without runs, or a folder inside a store."""
    from lth.analysis import metrics_frame, runs_frame
    from lth.analysis.tables import empty_store
    from lth.store.plans import store_status
    from lth.studies.status import warn_missing

    store = existing_store(root)
    runs = runs_frame(store)
    if runs.empty and not any(store.rglob("spec.json")):  # runs with damaged files are left out, not absent
        raise empty_store(store)
    frame = metrics_frame(store, runs)
    account = store_status(store)
    warn_missing(account, store)
    frame.attrs.update({k: account[k] for k in ("planned", "present", "missing")})
    return frame


def results_document(frame: pd.DataFrame) -> dict[str, Any]:
    """``lth results --json``'s document of :func:`results`' frame: ``{"rows": [...]}`` (NaN as null), with
    ``planned``, ``present`` and ``missing`` (the planned runs not in the store) where the frame carries them."""
    extra = {k: frame.attrs[k] for k in ("planned", "present", "missing") if k in frame.attrs}
    return {"rows": json.loads(frame.to_json(orient="records")), **extra}


def runs(root: str | Path = DEFAULT_ROOT) -> pd.DataFrame:
    """One row per run of the store at ``root``."""
    from lth.analysis import runs_frame

    return runs_frame(existing_store(root))


def presets() -> StudyResult:
    """The presets: ``lth presets --json``'s document ``{"presets": {name: {"note", "spec"}}}``, ``spec`` as a
    dict of its groups."""
    from lth.presets import PRESETS
    from lth.spec import to_dict

    return StudyResult({"presets": {k: {"note": p.note, "spec": to_dict(p.spec)} for k, p in PRESETS.items()}},
                       table="presets")


def presets_frame(result: StudyResult | None = None) -> pd.DataFrame:
    """One row per preset (``name``, ``note``, ``spec`` as a dict) of :func:`presets`' result."""
    doc = (result or presets())["presets"]
    return pd.DataFrame([{"name": n, **p} for n, p in doc.items()])


def run_dir(run: str | Path) -> Any:
    """The :class:`~lth.store.RunDir` of a run's directory (a ``path`` of :func:`runs`); UserError naming ``run``
    where it holds no ``spec.json``."""
    from lth.store import RunDir, paths

    p = Path(run).expanduser()
    if not (p / paths.SPEC).is_file():
        raise UserError(f"{ref('run')} {str(run)!r}: not a run directory (no spec.json); allowed: a path from "
                        f"lth.api.runs()", value=str(run), allowed="a run directory")
    return RunDir(p)


def state(run: str | Path, name: str = "final") -> dict[str, torch.Tensor]:
    """A stored state of one run: ``init`` (its initialisation), ``rewind`` (for a run that starts at step k > 0,
    its start), ``final``, or a step it kept (``500it``), as ``{parameter name: tensor}`` (the names of its model),
    loadable with ``load_state_dict``."""
    d = run_dir(run)
    have = d.states()
    if name not in have:
        raise UserError(f"state {name!r}: run {str(run)!r} keeps no such state; allowed: {', '.join(have) or 'none'}",
                        value=name, allowed=", ".join(have) or "none")
    return d.load_state(name)


def ticket(run: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The subnetwork a run trained: ``(weights, mask)``, where ``mask`` maps each pruned parameter's name to a
    bool tensor (True: kept) and ``weights`` is the run's start state (``init``, or its rewind point) with pruned
    weights zeroed: ``m * theta_0`` (Frankle & Carbin 2019), or ``m * theta_k`` with rewinding to step k (Frankle
    et al. 2020). A run without a mask is refused."""
    d = run_dir(run)
    if not d.has_mask():
        raise UserError(f"{ref('run')} {str(run)!r}: trained without a mask (a dense run); allowed: a pruned run's "
                        f"directory", value=str(run), allowed="a pruned run's directory")
    mask = d.load_mask()
    have = d.states()
    steps = {n: s for n, s in d.state_iterations().items() if n in have}
    if steps:  # the state it started from: init, or rewind at step k
        start = min(steps, key=steps.get)  # type: ignore[arg-type]
    else:  # a store from before states/index.json: a pruned run keeps the state it started from as one of these
        start = next((n for n in ("rewind", "init") if n in have), None)
    if start is None:
        raise UserError(f"{ref('run')} {str(run)!r}: keeps no start state (unfinished?); allowed: a finished run's "
                        f"directory", value=str(run), allowed="a finished run's directory")
    weights = d.load_state(start)
    return {k: v * mask[k].to(v.dtype) if k in mask else v for k, v in weights.items()}, mask


__all__ = ["ReportOptions", "check_out", "presets", "presets_frame", "report", "results", "results_document", "run_dir",
           "runs", "state", "ticket"]
