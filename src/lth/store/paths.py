"""Every path in the store is built here.

Layout (it reads like the experiment)::

    <root>/train_<hash>/replicate_<r>/                  one training run
    <root>/lottery_<hash>/replicate_<r>/level_<l>/      one level of an IMP trunk
    <root>/lottery_<hash>/replicate_<r>/branch_<name>_<hash>/level_<l>/   a branch of that trunk

Inside a run: ``spec.json``, ``metrics.csv``, ``states/<name>.pt``, ``mask.pt``, ``checkpoint.pt`` (while
training), ``done.json`` (the completion marker) and ``failed.json`` (training raised). ``<root>/plans/`` records
what each command planned (:mod:`lth.store.plans`).
"""

from __future__ import annotations

import re
from pathlib import Path

SPEC = "spec.json"
METRICS = "metrics.csv"
HESSIAN = "hessian.csv"  # top Hessian eigenvalues at stored states (lth hessian)
TELEMETRY = "telemetry.csv"  # weight telemetry during training (EngineOptions.telemetry_every)
SCAFFOLD = "scaffold.json"  # states a representative keeps only for its duplicates (lth.executor.dedupe)
MASK = "mask.pt"
CHECKPOINT = "checkpoint.pt"
DONE = "done.json"
FAILED = "failed.json"  # training raised: the error (lth.store.plans.mark_failed); removed when the run finishes
PLANS = "plans"  # <root>/plans/: what each command planned (lth.store.plans)
LOCK = ".lock"
STATES = "states"


def experiment_dir(root: Path, kind: str, digest: str) -> Path:
    """``<root>/<kind>_<hash>``."""
    return Path(root).resolve() / f"{kind}_{digest}"


def run_path(root: Path, kind: str, digest: str, replicate: int, level: int | None = None,
             branch: str | None = None) -> Path:
    """The directory of one run."""
    p = experiment_dir(root, kind, digest) / f"replicate_{replicate}"
    if branch is not None:
        p = p / f"branch_{branch}"
    if level is not None:
        p = p / f"level_{level}"
    return p


def state_path(run: Path, name: str) -> Path:
    """``<run>/states/<name>.pt``."""
    return Path(run) / STATES / f"{name}.pt"


_EXPERIMENT = re.compile(r"^[a-z][a-z0-9]*_[0-9a-f]{8,}$")  # <kind>_<hash>
_REPLICATE = re.compile(r"^replicate_\d+$")


def store_root_of(path: str | Path) -> Path | None:
    """The root of the store that ``path`` lies inside (a run folder, ``replicate_<r>``, an experiment folder
    ``<kind>_<hash>``, or any folder below one), or None when ``path`` is not inside one (a store's root itself,
    or a folder elsewhere). Read from the layout: ``<root>/<kind>_<hash>/replicate_<r>/...``, or
    ``<root>/<kind>_<hash>/spec.json`` for a ticket handed over as tensors."""
    p = Path(path).expanduser().resolve()
    for q in (p, *p.parents):
        if _REPLICATE.match(q.name) and _EXPERIMENT.match(q.parent.name):
            return q.parent.parent
        if _EXPERIMENT.match(q.name) and q.is_dir() and (
                (q / SPEC).is_file() or any(c.is_dir() and _REPLICATE.match(c.name) for c in q.iterdir())):
            return q.parent
    return None
