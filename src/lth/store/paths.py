"""Every path in the store is built here.

Layout (it reads like the experiment)::

    <root>/train_<hash>/replicate_<r>/                  one training run
    <root>/lottery_<hash>/replicate_<r>/level_<l>/      one level of an IMP trunk
    <root>/lottery_<hash>/replicate_<r>/branch_<name>_<hash>/level_<l>/   a branch of that trunk

Inside a run: ``spec.json``, ``metrics.csv``, ``states/<name>.pt``, ``mask.pt``, ``checkpoint.pt`` (while
training) and ``done.json`` (the completion marker).
"""

from __future__ import annotations

from pathlib import Path

SPEC = "spec.json"
METRICS = "metrics.csv"
HESSIAN = "hessian.csv"  # top Hessian eigenvalues at stored states (lth hessian)
TELEMETRY = "telemetry.csv"  # weight telemetry during training (EngineOptions.telemetry_every)
SCAFFOLD = "scaffold.json"  # states a representative keeps only for its duplicates (lth.executor.dedupe)
MASK = "mask.pt"
CHECKPOINT = "checkpoint.pt"
DONE = "done.json"
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
