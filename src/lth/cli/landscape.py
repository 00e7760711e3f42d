"""``lth landscape``: test error and loss over a plane through stability copies (their common start and two
trained copies, or the principal directions of a copy's trajectory), with the trajectories projected on it."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from lth.cli.common import Progress, emit_json, executor_from_args, keep_saved_states, whole_number
from lth.cli.stability import add_arguments as add_stability_arguments
from lth.cli.stability import evaluation_from_args, plan_from_args
from lth.spec import TrainSpec

HELP = "loss landscape: error and loss over a plane through stability copies, trajectories projected on it"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """The flags of ``lth stability`` (which copies) plus the plane and its grid."""
    from lth.stability.landscape import PLANES

    add_stability_arguments(p, base, base_name)
    g = p.add_argument_group("landscape")
    g.add_argument("--plane", default="copies", help=f"the plane ({' | '.join(PLANES)})")
    g.add_argument("--grid", default="21", help="grid points along each direction")
    g.add_argument("--margin", default="0.25", help="grid margin around the projected states, times their extent")


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Train the copies if missing, evaluate the grid of every cell and replicate, draw the contours."""
    from lth.errors import UserError
    from lth.report.stability import plot_contour
    from lth.stability.landscape import PLANES, landscape

    if args.plane not in PLANES:
        raise UserError(f"--plane {args.plane!r}: unknown value; allowed: {', '.join(PLANES)}")
    steps = whole_number(args.grid, 2, "--grid")
    try:
        margin = float(args.margin)
    except ValueError:
        margin = -1.0
    if not math.isfinite(margin) or margin < 0:
        raise UserError(f"--margin {args.margin!r}: expected a number >= 0, e.g. 0.25")
    args._argv = argv
    train_examples = evaluation_from_args(args)[2]  # --alphas and --threshold too: checked, not silently ignored
    plan = plan_from_args(args, base)
    copies = keep_saved_states(args, plan.copy_nodes(), plan.trunks[0].spec, plan.steps_per_epoch)
    out: list[dict[str, Any]] = []
    with Progress() as progress:
        ex = executor_from_args(args, progress)
        ex.run(copies)
        data = ex.dataset(plan.trunks[0].spec.data)
        for exp, lv in plan.cells():
            for r in range(plan.replicates):
                progress.console.print(f"landscape: {exp.subnetwork}, k = {exp.k}, level {lv}, replicate {r}")
                doc = landscape(exp, lv, r, data, plane=args.plane, steps=steps, margin=margin,
                                device=str(ex.options.torch_device()), max_population=args.max_population or 64,
                                train_examples=train_examples)
                figs = plot_contour(doc["xs"], doc["ys"], doc["test_error"], exp.level_dir(r, lv),
                                    name=f"landscape_{args.plane}", points=doc["points"],
                                    trajectories=doc["trajectories"],
                                    title=f"{exp.subnetwork}, k = {exp.k}, level {lv}")
                out.append({"file": doc["file"], "figures": [str(f) for f in figs], "subnetwork": exp.subnetwork,
                            "rewind": str(exp.k),
                            "rewind_iteration": exp.k.iterations(plan.steps_per_epoch), "level": lv, "replicate": r,
                            "plane": args.plane,
                            "min_test_error": min(min(row) for row in doc["test_error"])})
    if args.json:
        emit_json({"landscapes": out})
    else:
        for o in out:
            print(f"{o['subnetwork']} k={o['rewind']} level {o['level']} replicate {o['replicate']}: "
                  f"{o['figures'][0]}", file=sys.stderr)
    return 0
