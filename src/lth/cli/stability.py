"""``lth stability``: instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020): copies of a network or
subnetwork at step k trained with different SGD noise, and the error along the straight line between them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lth.cli.common import (
    Progress,
    add_preset_flag,
    add_pruning_flags,
    add_runtime_flags,
    add_spec_flags,
    check_fits,
    emit_json,
    executor_from_args,
    keep_saved_states,
    print_table,
    report_divergence,
    whole_number,
)
from lth.errors import UserError
from lth.spec import TrainSpec

HELP = "instability analysis: copies at step k trained with different SGD noise, error along the path between them"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth stability``."""
    from lth.stability import SUBNETWORKS

    add_preset_flag(p)
    p.add_argument("--rewind", nargs="+", default=["0it"], help="steps k at which the copies are made (a sweep)")
    p.add_argument("--levels", default="0",
                   help="trunk levels: 0 is the dense network, >= 1 the subnetworks of that IMP level (e.g. 0-3)")
    p.add_argument("--subnetwork", nargs="+", default=["dense"], metavar="KIND",
                   help=f"what is copied at step k ({' | '.join(SUBNETWORKS)}); several allowed")
    p.add_argument("--copies", default="2", help="copies per replicate (every pair is a path)")
    p.add_argument("--alphas", default="30", help="evenly spaced points on each path, ends included (paper: 30)")
    p.add_argument("--threshold", default="0.02", help="stable when test instability < this fraction (paper: 0.02)")
    p.add_argument("--train-examples", default="10000",
                   help="size of the fixed training subset for train instability and BatchNorm statistics")
    p.add_argument("--schedule-from-zero", action="store_true",
                   help="train copies for T steps with the schedule restarted at 0 (the paper's Fig. 4 control)")
    p.add_argument("--align", action="store_true",
                   help="permute the second copy's hidden units to match the first (weight matching) first")
    p.add_argument("--same-noise", action="store_true", help=argparse.SUPPRESS)  # check: identical copies
    p.add_argument("--trajectory-points", default="4", help="states each copy keeps for `lth landscape`")
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def _fraction(text: str, flag: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 < v < 1.0:
        raise UserError(f"{flag} {text!r}: expected a fraction between 0 and 1, e.g. 0.02")
    return v


def evaluation_from_args(args: argparse.Namespace) -> tuple[list[float], float, int]:
    """``--alphas`` (as the points on each path), ``--threshold`` and ``--train-examples``, checked before anything
    trains (``lth landscape`` has them too)."""
    from lth.analysis.stability import default_alphas

    return (default_alphas(whole_number(args.alphas, 2, "--alphas")), _fraction(args.threshold, "--threshold"),
            whole_number(args.train_examples, 2, "--train-examples"))


def plan_from_args(args: argparse.Namespace, base: TrainSpec, same_noise: bool = False) -> Any:
    """The :class:`lth.stability.StabilityPlan` of the flags (shared with ``lth landscape``)."""
    from lth.cli.lottery import trunks_from_args
    from lth.data.describe import describe
    from lth.lottery import parse_levels
    from lth.lottery.trunk import check_trunks
    from lth.models import build_model
    from lth.prune import kinds_of
    from lth.stability import StabilityPlan

    trunks = trunks_from_args(args, base)
    spec = trunks[0].spec
    levels = parse_levels(args.levels)
    copies = whole_number(args.copies, 2, "--copies")
    # before a network is built: a --width or --replicates that cannot fit is one line naming it, as in lth train
    check_fits(args, spec, args.replicates * copies * len(trunks) * len(args.subnetwork) * len(levels))
    info = describe(spec.data, args.data_dir)
    spe = max(1, info.steps_per_epoch(spec.data.batch_size))
    m = spec.model
    kinds = kinds_of(build_model(m.model, 1, info.example_shape, info.num_classes, m.norm, m.width))
    check_trunks(trunks, spec.train.training_steps.iterations(spe), spe, kinds)
    return StabilityPlan(trunks, list(args.subnetwork), levels, args.replicates,
                         copies, args.schedule_from_zero, same_noise,
                         whole_number(args.trajectory_points, 0, "--trajectory-points"), spe)


_STEP_KEYS = ("rewind", "first_stable", "first_stable_and_matching", "median_first_stable",
              "median_first_stable_and_matching")


def with_iterations(rows: list[dict[str, Any]], steps_per_epoch: int) -> None:
    """Beside every step (``"rewind": "2ep"``, ``"first_stable": "500it"``) its integer ``<key>_iteration``, as
    docs/CONTRACT.md asks of every step reported (None beside a step that is None)."""
    from lth.spec import Step

    for row in rows:
        for key in [k for k in row if k in _STEP_KEYS]:
            v = row[key]
            row[f"{key}_iteration"] = None if v is None else Step.parse(str(v)).iterations(steps_per_epoch)


def dense_accuracy(plan: Any) -> float | None:
    """Mean final test accuracy of the trunks' dense level 0 over replicates (what matching compares to)."""
    from lth.store import RunDir

    accs = [(RunDir(t.level_dir(r, 0)).done or {}).get("final_test_accuracy")
            for t in plan.trunks for r in range(plan.replicates)]
    accs = [a for a in accs if a is not None]
    return sum(accs) / len(accs) if accs else None


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the copies (and the trunks they hang off), train what is missing, evaluate every path."""
    from lth.stability.analysis import evaluate_pairs, full_accuracy, record, summary

    args._argv = argv  # flags as typed, so errors name them so (--strategy)
    alphas, threshold, train_examples = evaluation_from_args(args)
    plan = plan_from_args(args, base, same_noise=bool(getattr(args, "same_noise", False)))
    copies = keep_saved_states(args, plan.copy_nodes(), plan.trunks[0].spec, plan.steps_per_epoch)
    with Progress() as progress:
        ex = executor_from_args(args, progress)
        runs = ex.run(copies)
        code = report_divergence(runs, args.strict)
        data = ex.dataset(plan.trunks[0].spec.data)
        items = plan.pairs()
        entries = evaluate_pairs(items, data, alphas=alphas, align=args.align, train_examples=train_examples,
                                 device=str(ex.options.torch_device()), max_population=args.max_population or 64,
                                 log=progress.console.print)
    records = [record(exp, lv, r, pair, e, threshold) for (exp, lv, r, pair), e in zip(items, entries, strict=True)]
    full, copies = full_accuracy(records)  # dense copies at k = 0, as Table 2; else the dense trunk's level 0
    summ = summary(records, full if full is not None else dense_accuracy(plan), threshold)
    with_iterations(records + summ, plan.steps_per_epoch)
    basis = (f"the dense copies made at k = 0 ({copies} copies)" if full is not None
             else "the dense trunk's level 0 (no dense copies at k = 0 in this command)")
    if args.json:
        emit_json({"results": records, "summary": summ})
    else:
        _print(records, summ, threshold, basis)
        print(f"results in {Path(records[0]['runs'][0]).parents[3]}" if records else "no paths", file=sys.stderr)
    return code


def _print(records: list[dict[str, Any]], summ: list[dict[str, Any]], threshold: float = 0.02,
           basis: str = "") -> None:
    from rich.console import Console

    # the subnetwork's name is never cut: random-prune and random-reinit would both read "random-…" in 80 columns
    rows = []
    for r in records:
        ti, tr = r["test_instability"], r["train_instability"]
        rows.append([r["subnetwork"], r["rewind"], str(r["level"]), str(r["replicate"]),
                     "-".join(map(str, r["copies"])), "n/a" if ti is None else f"{ti:.4f}",
                     "n/a" if tr is None else f"{tr:.4f}", str(r["stable"])])
    print_table(["subnetwork", "rewind", "level", "replicate", "copies", "test instability", "train instability",
                 "stable"], rows)
    console = Console(stderr=True)
    for s in summ:
        console.print(f"{s['subnetwork']} level {s['level']}: first stable k = {s['first_stable']}; "
                      f"first stable and matching k = {s['first_stable_and_matching']}")
    if summ:
        full = summ[0]["dense_accuracy"]
        console.print(f"stable: mean test instability (test split) < {threshold:g}; matching: mean end-point test "
                      f"accuracy >= full - 0.002 (full = {'n/a' if full is None else f'{full:.4f}'}, {basis}); "
                      "means over the replicates' pairs of copies at each k (Frankle et al. ICML 2020, Sec. 2, "
                      "Fig. 9)")
