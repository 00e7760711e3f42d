"""``lth branch NAME``: an ablation of an existing trunk's tickets at chosen levels; flags -> options -> the branch
study (:mod:`lth.studies.branch`) -> printed records."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lth.cli.flags import (
    add_options,
    add_preset_flag,
    add_pruning_flags,
    add_runtime_flags,
    add_spec_flags,
    options_values,
    pruning_from_args,
    runtime_from_args,
    spec_flags,
)
from lth.cli.lottery import add_branch_option_flags, branch_flags, print_levels
from lth.cli.output import emit_json, report_divergence
from lth.lottery import BRANCHES
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.base import resolve_spec
from lth.studies.branch import BranchStudyOptions, plan_branch, run_branch
from lth.studies.lottery import branch_choices

HELP = "an ablation of an existing trunk's tickets at chosen levels (reinit, random-mask, ...)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth branch``."""
    p.description = f"an ablation of a trunk's tickets: {', '.join(BRANCHES)}"
    p.add_argument("name", help=f"the branch ({' | '.join(BRANCHES)})")
    add_options(p, BranchStudyOptions, "branch", skip=("name", "replicates", "rewind", "options"))
    add_branch_option_flags(p)
    add_preset_flag(p)
    p.add_argument("--rewind", nargs="+", default=["0it"], help="the trunk's rewind step k (0it: reset to init)")
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)


def trunk_command(argv: list[str], highest: int | None = None) -> str:
    """The `lth lottery` command that makes the trunk a `lth branch` command points at (up to level
    ``highest``): the branch's own flags (its name, levels, options, ``--json``, ``--strict``) dropped."""
    own = {f"--{f.name.replace('_', '-')}" for b in BRANCHES.values() for f in dataclasses.fields(b.options)}
    own |= {"--levels", "--json", "--strict"}
    out, skipping = ["lth", "lottery"], False
    for a in argv[2:]:  # drop "branch NAME"
        if a.startswith("--"):
            skipping = a.split("=", 1)[0] in own
        if not skipping:
            out.append(a)
    return " ".join(out + ["--levels", "<highest level>" if highest is None else str(highest)])


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the branch's runs off a trained trunk, train what is missing, print the records."""
    given = spec_flags(args)
    spec, preset = resolve_spec(args.preset, given)
    options = branch_choices([args.name], branch_flags(args), "branch_name")[args.name]
    opts = BranchStudyOptions.from_values(options_values(args, BranchStudyOptions), name=args.name,
                                          rewind=args.rewind, options=options)
    plan = plan_branch(spec, pruning_from_args(args), opts, runtime_from_args(args), preset=preset, given=given,
                       command=trunk_command(argv, max(opts.levels)))
    with Progress() as progress:
        records = run_branch(plan, progress)["runs"]
    code = report_divergence(records, opts.strict)
    if args.json:
        emit_json({"runs": records})
    else:
        print_levels(records)
        print(f"results in {plan.trunk.level_dir(0, 0).parent.parent}", file=sys.stderr)
    return code
