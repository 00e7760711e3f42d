"""``lth train``: train a preset (replicates train together as one population); flags -> options -> the train study
(:mod:`lth.studies.train`) -> printed records."""

from __future__ import annotations

import argparse
import sys

from lth.cli.flags import (
    add_options,
    add_preset_flag,
    add_runtime_flags,
    add_spec_flags,
    options_values,
    runtime_from_args,
    spec_flags,
)
from lth.cli.output import emit_json, report_divergence
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.base import resolve_spec
from lth.studies.train import TrainOptions, plan_train, run_train

HELP = "train a preset (replicates train together as one population)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth train``."""
    add_preset_flag(p)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    add_options(p, TrainOptions, "train", skip=("replicates",))


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Train what is missing; print the records."""
    given = spec_flags(args)
    spec, preset = resolve_spec(args.preset, given)
    opts = TrainOptions.from_values(options_values(args, TrainOptions))
    plan = plan_train(spec, opts, runtime_from_args(args), preset=preset, given=given)
    with Progress() as progress:
        records = run_train(plan, progress)["runs"]
    code = report_divergence(records, opts.strict)
    if args.json:
        emit_json({"runs": records})
    else:
        for r in records:
            acc = r["final_test_accuracy"]
            print(f"replicate {r['replicate']}: {r['status']}, final test accuracy "
                  f"{'n/a' if acc is None else f'{acc:.4f}'}  {r['path']}", file=sys.stderr)
        print(f"results in {plan[0].path.parent}", file=sys.stderr)
    return code
