"""The Hessian study: the top-k eigenvalues of the training-loss Hessian of stored runs at chosen states, by
Lanczos on Hessian-vector products (:func:`lth.analysis.hessian.top_eigenvalues`), every architecture's runs
evaluated as one population. Writes ``hessian.csv`` into each run directory (rows of other states, BatchNorm
modes or orders from earlier calls are kept; the same ones are replaced).

    from lth.studies.hessian import HessianOptions, run_hessian
    from lth.studies.runtime import RuntimeOptions
    result = run_hessian(HessianOptions.from_values(steps=["init", "final"], k=2), RuntimeOptions(root="runs"))
    result.frame()          # one row per run, state and rank; result.to_json() is `lth hessian --json`'s document
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from lth.analysis.hessian import BN_MODES, WHICH
from lth.errors import UserError, ref
from lth.options import Options, option, unknown_name
from lth.store import paths
from lth.studies.base import StudyResult
from lth.studies.runtime import RuntimeOptions, existing_store

CHUNK = 16  # members per population

Member = tuple[Path, dict[str, Any], str]  # run directory, its spec.json, the state evaluated


@dataclass(frozen=True)
class HessianOptions(Options):
    """What ``lth hessian`` computes: which stored states, how many eigenvalues from which end, and how."""

    PREFIX: ClassVar[str] = ""
    steps: tuple[str, ...] = option(("final",), "stored states to evaluate: init, final, rewind or a step such as "
                                                "500it", metavar="STEP")
    preset: str | None = option(None, "only runs made with this preset (default: every run)")
    k: int = option(1, "eigenvalues per state (ordered by which)", low=1)
    which: str = option("largest", "largest (the k largest, largest first) | magnitude (the k largest |lambda|, "
                                   "signs kept) | smallest (the k most negative, most negative first)", choices=WHICH)
    iters: int = option(20, "Lanczos iterations before the first convergence check (>= k)", low=1)
    tol: float = option(1e-3, "go on past --iters until every eigenvalue's residual ||Hv - lambda v|| is at most "
                              "tol * |lambda| (bounds its error by that much)", low=0, low_open=True)
    max_iters: int = option(100, "at most this many Lanczos iterations (a warning names each eigenvalue whose "
                                 "residual is still above the tolerance)", low=1)
    bn_mode: str = option("train", "BatchNorm on batch statistics (train) or running ones (eval)", choices=BN_MODES)
    examples: int = option(1000, "training examples in the loss (the first ones)", low=1)

    def validate(self) -> None:
        """``which`` and ``bn_mode`` first, in the words ``lth hessian`` has always used for them (``bad value``),
        then every field's range and :meth:`check`."""
        for f in self.option_fields():
            value = getattr(self, f.name)
            if f.choices and value not in f.choices:
                raise UserError.bad(f.path, value, f.allowed_text())
        super().validate()

    def check(self) -> None:
        """At least as many Lanczos iterations as eigenvalues asked for."""
        if self.iters < self.k:
            raise UserError(f"{ref('iters')} {self.iters}: fewer than {ref('k')} {self.k}; allowed: a number >= "
                            f"{ref('k')}", value=self.iters, allowed=f"a number >= {self.k}")
        if self.max_iters < self.iters:
            raise UserError(f"{ref('max_iters')} {self.max_iters}: fewer than {ref('iters')} {self.iters}; allowed: a "
                            f"number >= {ref('iters')}", value=self.max_iters, allowed=f"a number >= {self.iters}")


# The runtime fields the study takes (the store it reads, where the data is, the device, CPU threads).
RUNTIME_FIELDS = ("root", "data_dir", "device", "threads")


def find_runs(root: Path, preset: str | None, steps: list[str]) -> list[Member]:
    """(run dir, spec.json, state name) of every finished run under ``root`` holding a state of ``steps``."""
    from lth.store import RunDir

    out = []
    for spec_file in sorted(root.rglob(paths.SPEC)):
        run = RunDir(spec_file.parent)
        spec = run.spec
        if not isinstance(spec, dict) or (run.done or {}).get("status") != "complete":
            continue
        if preset is not None and spec.get("preset") != preset:
            continue
        have = run.states()
        out += [(run.path, spec, s) for s in steps if s in have]
    return out


def group_members(members: list[Member]) -> dict[tuple[Any, ...], list[Member]]:
    """``members`` by (data, model, norm, width): the runs one population of one architecture can hold."""
    from lth.spec import DataHparams, ModelHparams, from_dict

    groups: dict[tuple[Any, ...], list[Member]] = {}
    for m in members:
        data_hp, model_hp = from_dict(DataHparams, m[1]["data"]), from_dict(ModelHparams, m[1]["model"])
        groups.setdefault((data_hp, model_hp.model, model_hp.norm, model_hp.width), []).append(m)
    return groups


def eigenvalues(members: list[Member], k: int, iters: int, bn_mode: str, examples: int, data_dir: str | None,
                device: torch.device, which: str = "largest", tol: float | None = None,
                max_iters: int | None = None) -> list[dict[str, Any]]:
    """One row per (run, state, rank) with the eigenvalue, its residual ``||Hv - lambda v||``, whether it converged
    to ``tol`` and the iterations run (Lanczos goes on past ``iters`` up to ``max_iters`` until every eigenvalue of
    the population converged); members of one architecture and dataset share populations of :data:`CHUNK`."""
    from lth.analysis.hessian import top_eigenvalues
    from lth.data import load_dataset
    from lth.data.images import check_same_images, is_lazy
    from lth.models import build_model
    from lth.store import RunDir

    rows = []
    for (data_hp, model, norm, width), group in group_members(members).items():
        data = load_dataset(data_hp, data_dir, device)
        if is_lazy(data.train_x):  # images read from disk: those the runs were trained on
            check_same_images({Path(p): (RunDir(p).spec or {}).get("data_source") or {} for p, _, _ in group},
                              data.source)
        x, y = data.train_x[:examples].to(device), data.train_y[:examples].to(device)
        for a in range(0, len(group), CHUNK):
            chunk = group[a:a + CHUNK]
            net = build_model(model, len(chunk), data.example_shape, data.num_classes, norm, width).to(device)
            masks = {}
            for i, (path, _, state) in enumerate(chunk):
                run = RunDir(path)
                net.load_member(i, {n: v.to(device) for n, v in run.load_state(state).items()})
                if run.has_mask():
                    for n, v in run.load_mask().items():
                        masks.setdefault(n, torch.ones_like(dict(net.named_parameters())[n], dtype=torch.bool))
                        masks[n][i] = v.to(device)
            try:
                res = top_eigenvalues(net, x, y, k, iters, bn_mode, torch.Generator().manual_seed(0),
                                      mask=masks or None, which=which, tol=tol, max_iters=max_iters)
            except ValueError as e:
                raise UserError(f"{ref('k')}/{ref('iters')}: {e}") from None
            for r in res.rows():
                path, _, state = chunk[r["member"]]
                rows.append({"path": str(path), "state": state, **{k_: v for k_, v in r.items() if k_ != "member"}})
    return rows


def write_rows(rows: list[dict[str, Any]], warn: Callable[[str], None]) -> None:
    """Merge ``rows`` into each run's ``hessian.csv``: rows of other states, BatchNorm modes or orders are kept,
    the same ones replaced (under the run's lock, so a concurrent call loses nothing). A damaged file is named
    through ``warn`` and written again with these rows only."""
    import pandas as pd

    from lth.store import RunDir
    from lth.store.run import DamagedFile

    frame = pd.DataFrame(rows)
    key = ("state", "bn_mode", "which")
    for path, sub in frame.groupby("path"):
        run_dir, new = RunDir(Path(path)), sub.drop(columns="path").to_dict("records")
        fresh = {tuple(r[c] for c in key) for r in new}  # earlier rows of other states / settings are kept
        # a file from before ``which`` was a column holds the largest eigenvalues: say so, or the rewritten file
        # has an empty cell that no later call matches (its rows would never be replaced)
        with run_dir.lock():  # read, merge, write as one step: another lth hessian on this run waits, loses nothing
            try:
                stored = run_dir.read_hessian()
            except DamagedFile as e:  # results only, recomputable: named, and replaced by this call's rows
                warn(f"damaged file {e.path}: {e.reason}; written again with this call's rows only")
                stored = []
            earlier = [{**r, "which": r.get("which") or "largest"} for r in stored]
            kept = [r for r in earlier if tuple(r.get(c) for c in key) not in fresh]
            run_dir.write_hessian(kept + new)


def print_warning(face: str = "api") -> Callable[[str], None]:
    """A warning callback printing ``lth: warning: <text>`` on stderr, its field references named as ``face``
    names them (``cli``: ``--steps``; ``api``: ``steps``)."""
    def warn(template: str) -> None:
        print(f"lth: warning: {UserError(template).render(face)}", file=sys.stderr)
    return warn


def run_hessian(options: HessianOptions, runtime: RuntimeOptions | None = None,
                warn: Callable[[str], None] | None = None) -> StudyResult:
    """Find the finished runs under ``runtime.root`` holding a state of ``options.steps``, compute their top
    eigenvalues (a population per architecture), write ``hessian.csv`` per run; the result's document is ``lth
    hessian --json``'s, ``{"rows": [{"path", "state", "rank", "eigenvalue", "residual", "converged", "iters",
    ...}]}``. ``warn``: told (a text with field references) of a step no run holds, of an eigenvalue still above
    the tolerance after ``max_iters`` and of a damaged ``hessian.csv`` (default: printed on stderr with Python's
    names). ``runtime.threads`` holds for this call only."""
    runtime = runtime or RuntimeOptions()
    warn = warn or print_warning("api")
    threads = torch.get_num_threads()
    try:
        if runtime.threads is not None:
            torch.set_num_threads(runtime.threads)
        device = runtime.torch_device()
        root = existing_store(runtime.root)  # expanded (~): the path checked is the path searched
        steps = list(options.steps)
        members = find_runs(root, options.preset, steps)
        if not members:
            raise UserError(f"{ref('steps')} {' '.join(steps)}: no finished run under {root} has such a state",
                            value=steps)
        if missing := [s for s in steps if all(m[2] != s for m in members)]:  # else silently left out
            warn(f"{ref('steps')} {' '.join(missing)}: no finished run under {root} has such a state; left out "
                 f"(keep it with {ref('save_states')} when training)")
        rows = eigenvalues(members, options.k, options.iters, options.bn_mode, options.examples, runtime.data_dir,
                           device, options.which, options.tol, options.max_iters)
        for r in (r for r in rows if r.get("converged") is False):
            rel = r["residual"] / max(abs(r["eigenvalue"]), 1e-300)
            warn(f"{r['path']} {r['state']}: eigenvalue {r['rank']} ({r['eigenvalue']:.6g}) has residual "
                 f"||Hv - lambda v|| = {r['residual']:.3g} ({rel:.3g} of |lambda|) after {r['iters']} iterations, "
                 f"above {ref('tol')} {options.tol:g}; raise {ref('max_iters')}")
        write_rows(rows, warn)
    finally:
        torch.set_num_threads(threads)
    return StudyResult({"rows": rows}, table="rows")


def hessian(root: str | Path = "runs", steps: Any = ("final",), *, warn: Callable[[str], None] | None = None,
            **keywords: Any) -> StudyResult:
    """:func:`run_hessian` with keywords: :class:`HessianOptions`' fields (``k=2``, ``which="smallest"``) and
    the runtime's ``data_dir``, ``device``, ``threads`` (None: the default); a misspelt keyword is a UserError
    suggesting the nearest."""
    own = {f.name for f in HessianOptions.option_fields()}
    known = sorted(own | set(RUNTIME_FIELDS))
    for key in keywords:
        if key not in known:
            e = unknown_name(key, known)
            raise UserError(f"hessian: {e.template}", value=key, allowed=e.allowed)
    # None: the default (as a flag left out); a path as its text; one string of steps split at commas and spaces
    keywords = {k: str(v) if isinstance(v, Path) else v for k, v in keywords.items() if v is not None}
    if isinstance(steps, str):
        steps = steps.replace(",", " ").split()
    options = HessianOptions.from_values({"steps": steps, **{k: v for k, v in keywords.items() if k in own}})
    runtime = RuntimeOptions.from_values({"root": str(root), **{k: v for k, v in keywords.items() if k not in own}})
    return run_hessian(options, runtime, warn)


__all__ = ["CHUNK", "HessianOptions", "eigenvalues", "find_runs", "group_members", "hessian", "print_warning",
           "run_hessian", "write_rows"]
