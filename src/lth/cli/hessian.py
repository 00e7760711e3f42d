"""``lth hessian``: the top-k eigenvalues of the training-loss Hessian of stored runs at chosen states, by Lanczos
on Hessian-vector products (:func:`lth.analysis.hessian.top_eigenvalues`), every architecture's runs evaluated
as one population. Writes ``hessian.csv`` into each run directory (rows of other states, BatchNorm modes or
orders from earlier calls are kept; the same ones are replaced) and prints one JSON document."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

from lth.cli.common import DEFAULT_ROOT, check_device, emit_json, existing_store, whole_number
from lth.errors import UserError
from lth.spec import TrainSpec
from lth.store import paths
from lth.store.run import DamagedFile

HELP = "top-k Hessian eigenvalues of stored runs at chosen states (Lanczos)"
CHUNK = 16  # members per population


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth hessian``."""
    p.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT), help="the store to read")
    p.add_argument("--preset", default=None, help="only runs made with this preset (default: every run)")
    p.add_argument("--steps", nargs="+", required=True,
                   help="stored states to evaluate: init, final, rewind or a step such as 500it")
    p.add_argument("--k", default="1", help="eigenvalues per state (in --which order)")
    p.add_argument("--which", default="largest",
                   help="largest (the k largest, largest first) | magnitude (the k largest |lambda|, signs kept) | "
                        "smallest (the k most negative, most negative first)")
    p.add_argument("--iters", default="20", help="Lanczos iterations (>= k)")
    p.add_argument("--bn-mode", default="train", help="BatchNorm on batch statistics (train) or running ones (eval)")
    p.add_argument("--examples", default="1000", help="training examples in the loss (the first ones)")
    p.add_argument("--data-dir", default=None, help="where the datasets are")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", default=None, metavar="N", help="CPU threads for torch (default: torch's)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (always on)")


def find_runs(root: Path, preset: str | None, steps: list[str]) -> list[tuple[Path, dict[str, Any], str]]:
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


def eigenvalues(members: list[tuple[Path, dict[str, Any], str]], k: int, iters: int, bn_mode: str, examples: int,
                data_dir: str | None, device: torch.device, which: str = "largest") -> list[dict[str, Any]]:
    """One row per (run, state, rank); members of one architecture and dataset share populations."""
    from lth.analysis.hessian import top_eigenvalues
    from lth.data import load_dataset
    from lth.models import build_model
    from lth.spec import DataHparams, ModelHparams, from_dict
    from lth.store import RunDir

    groups: dict[tuple, list[tuple[Path, dict[str, Any], str]]] = {}
    for m in members:
        data_hp, model_hp = from_dict(DataHparams, m[1]["data"]), from_dict(ModelHparams, m[1]["model"])
        groups.setdefault((data_hp, model_hp.model, model_hp.norm, model_hp.width), []).append(m)
    rows = []
    for (data_hp, model, norm, width), group in groups.items():
        data = load_dataset(data_hp, data_dir, device)
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
                                      mask=masks or None, which=which)
            except ValueError as e:
                raise UserError(f"--k/--iters: {e}") from None
            for r in res.rows():
                path, _, state = chunk[r["member"]]
                rows.append({"path": str(path), "state": state, **{k_: v for k_, v in r.items() if k_ != "member"}})
    return rows


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Find the runs, compute, write hessian.csv per run, print {"rows": [...]}."""
    import pandas as pd

    from lth.analysis.hessian import BN_MODES, WHICH
    from lth.store import RunDir

    if args.bn_mode not in BN_MODES:
        raise UserError(f"--bn-mode: bad value {args.bn_mode!r}; allowed: {', '.join(BN_MODES)}")
    if args.which not in WHICH:
        raise UserError(f"--which: bad value {args.which!r}; allowed: {', '.join(WHICH)}")
    k, iters = whole_number(args.k, 1, "--k"), whole_number(args.iters, 1, "--iters")
    examples = whole_number(args.examples, 1, "--examples")
    if iters < k:
        raise UserError(f"--iters {iters}: fewer than --k {k}; allowed: a number >= --k")
    if args.threads is not None:
        torch.set_num_threads(whole_number(args.threads, 1, "--threads"))
    device = check_device(args.device) or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root = existing_store(args.root)  # expanded (~): the path checked is the path searched
    members = find_runs(root, args.preset, list(args.steps))
    if not members:
        raise UserError(f"--steps {' '.join(args.steps)}: no finished run under {root} has such a state")
    if missing := [s for s in args.steps if all(m[2] != s for m in members)]:  # else silently left out
        print(f"lth: warning: --steps {' '.join(missing)}: no finished run under {root} has such a state; left out "
              f"(keep it with --save-states when training)", file=sys.stderr)
    rows = eigenvalues(members, k, iters, args.bn_mode, examples, args.data_dir, device, args.which)
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
                print(f"lth: warning: damaged file {e.path}: {e.reason}; written again with this call's rows only",
                      file=sys.stderr)
                stored = []
            earlier = [{**r, "which": r.get("which") or "largest"} for r in stored]
            kept = [r for r in earlier if tuple(r.get(c) for c in key) not in fresh]
            run_dir.write_hessian(kept + new)
    emit_json({"rows": rows})
    return 0
