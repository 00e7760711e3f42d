"""``lth demo``: a small lottery-ticket experiment end to end in 20-40 s on two CPU cores.

IMP with reset to init (the trunk) beside the ``reinit`` and ``random-mask`` branches at every level (Frankle &
Carbin, ICLR 2019, Section 2: a winning ticket beats the same mask re-initialised and a random mask of the same
per-layer density), then the report. On the bundled digits data by default; with ``--data-dir`` holding MNIST,
LeNet-300-100 on MNIST.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lth.cli.common import DEFAULT_ROOT, Progress, check_root, emit_json, step_flag, whole_number
from lth.errors import UserError
from lth.spec import TrainSpec

HELP = "a small IMP experiment with the reinit and random-mask branches, and its report (20-40 s on a 2-core CPU)"

BRANCHES = ("reinit", "random-mask")
# preset, levels, replicates, training steps: sized for 20-40 s on 2 CPU cores (timed in the README)
DIGITS = ("digits_mlp", 12, 3, "10ep")
MNIST = ("lenet_300_100", 5, 1, "1ep")


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth demo``."""
    p.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT), help="store directory")
    p.add_argument("--data-dir", default=None,
                   help="a data root holding MNIST: run LeNet-300-100 on MNIST instead of the bundled digits")
    p.add_argument("--levels", default=None, help="pruning levels (default: 12 on digits, 5 on MNIST)")
    p.add_argument("--replicates", default=None, help="replicates (default: 3 on digits, 1 on MNIST)")
    p.add_argument("--training-steps", default=None, help="training steps per level (default: 10ep digits, 1ep MNIST)")
    p.add_argument("--threads", default=None,
                   help="CPU threads for torch (default: 1 unless OMP_NUM_THREADS is set: the demo's small networks "
                        "gain nothing from more, and more are much slower on a machine busy with other work)")
    p.add_argument("--json", action="store_true", help="print the records and the report path as JSON")


def sparsest(records: dict[str, list[dict[str, Any]]], level: int) -> dict[str, float | None]:
    """Mean final test accuracy (a fraction) of the ticket and of each branch at ``level``."""
    out: dict[str, float | None] = {}
    groups = {"ticket": [r for r in records["runs"] if r["level"] == level]}
    for name in BRANCHES:
        groups[name] = [r for r in records["branches"] if r["level"] == level and r.get("branch") == name]
    for name, rs in groups.items():
        accs = [r["final_test_accuracy"] for r in rs if r.get("final_test_accuracy") is not None]
        out[name] = sum(accs) / len(accs) if accs else None
    return out


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Train the demo (what is missing), build the report, print its path and the sparsest level's accuracies."""
    import lth.api as api
    from lth.engine.train import EngineOptions
    from lth.executor import EXECUTORS
    from lth.report import build_report

    preset, levels, replicates, steps = MNIST if args.data_dir else DIGITS
    if args.data_dir and not Path(args.data_dir).expanduser().is_dir():
        raise UserError(f"--data-dir {args.data_dir!r}: no such directory (it should hold MNIST/raw/)")
    levels = whole_number(args.levels, 1, "--levels") if args.levels is not None else levels
    replicates = whole_number(args.replicates, 1, "--replicates") if args.replicates is not None else replicates
    if args.training_steps is not None:
        step_flag(args.training_steps, "--training-steps")
        steps = args.training_steps
    check_root(args.root)
    if args.threads is not None:
        torch.set_num_threads(whole_number(args.threads, 1, "--threads"))
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    started = time.perf_counter()
    plan = api.lottery(preset, levels, replicates=replicates, branches=list(BRANCHES), root=args.root,
                       data_dir=args.data_dir, training_steps=steps)
    with Progress() as progress:
        ex = EXECUTORS["local"](data_dir=args.data_dir, options=EngineOptions(callback=progress.callback),
                                on_population=progress.population, on_event=progress.graph_event)
        data = ex.dataset(plan.trunks[0].spec.data)  # a missing data file is the one line said, before anything
        print(f"lth demo: {preset}, IMP to level {levels} with the {' and '.join(BRANCHES)} branches, "
              f"{replicates} replicate{'s' if replicates > 1 else ''}, {steps} per level, in "
              f"{Path(args.root).resolve()}", file=sys.stderr)
        records = api.run(plan, ex=ex)
    report = build_report(Path(args.root))
    seconds = time.perf_counter() - started
    accs = sparsest(records, levels)
    density = next((r["density"] for r in records["runs"] if r["level"] == levels and r.get("density")), None)
    if args.json:
        emit_json({"report": str(report.index), "level": levels, "density": density, "accuracy": accs,
                   "seconds": seconds, **records})
        return 0
    shown = "  ".join(f"{k} {'n/a' if v is None else f'{100 * v:.2f}%'}" for k, v in accs.items())
    where = f" (density {100 * density:.1f}%)" if density else ""
    reps = f"{replicates} replicate{'s' if replicates > 1 else ''}"
    split = f"the {plan.trunks[0].spec.data.dataset} test split, {data.test_x.shape[0]:,} examples"
    print(f"sparsest level {levels}{where}, mean test accuracy ({split}) over {reps}: {shown}", file=sys.stderr)
    print(f"done in {seconds:.0f} s; open the report:", file=sys.stderr)
    print(report.index)
    return 0
