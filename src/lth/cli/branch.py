"""``lth branch NAME``: an ablation of an existing trunk's tickets at chosen levels."""

from __future__ import annotations

import argparse
import sys
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
    report_divergence,
)
from lth.cli.lottery import (
    add_branch_option_flags,
    branch_option_fields,
    branches_from_args,
    print_levels,
    trunks_from_args,
)
from lth.errors import UserError
from lth.spec import TrainSpec


def _help() -> str:
    from lth.lottery import BRANCHES

    return f"an ablation of a trunk's tickets: {', '.join(BRANCHES)}"


HELP = "an ablation of an existing trunk's tickets at chosen levels (reinit, random-mask, ...)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth branch``."""
    from lth.lottery import BRANCHES

    p.description = _help()
    p.add_argument("name", help=f"the branch ({' | '.join(BRANCHES)})")
    p.add_argument("--levels", required=True, help="trunk levels, a range like 0-15 or a list like 3,5,8")
    add_branch_option_flags(p, branch_option_fields())
    add_preset_flag(p)
    p.add_argument("--rewind", nargs="+", default=["0it"], help="the trunk's rewind step k (0it: reset to init)")
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def trunk_command(argv: list[str], highest: int | None = None) -> str:
    """The `lth lottery` command that makes the trunk a `lth branch` command points at (up to level
    ``highest``): the branch's own flags (its name, levels, options, ``--json``, ``--strict``) dropped."""
    import dataclasses

    own = {f"--{f.name.replace('_', '-')}" for c in branch_option_fields() for f in dataclasses.fields(c)}
    own |= {"--levels", "--json", "--strict"}
    out, skipping = ["lth", "lottery"], False
    for a in argv[2:]:  # drop "branch NAME"
        if a.startswith("--"):
            skipping = a.split("=", 1)[0] in own
        if not skipping:
            out.append(a)
    return " ".join(out + ["--levels", "<highest level>" if highest is None else str(highest)])


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Check the trunk's levels exist, plan the branch's nodes, train what is missing, print the records."""
    args._argv = argv  # flags as typed, so errors name them so (--strategy)
    from lth.lottery import parse_levels
    from lth.lottery.branches.retrain import check_set_lengths
    from lth.lottery.plan import LotteryPlan
    from lth.lottery.trunk import require_level

    if len(args.rewind) != 1:
        raise UserError(f"--rewind {' '.join(args.rewind)}: a branch hangs off one trunk; give one rewind step")
    options = branches_from_args(args, [args.name], given_as="lth branch NAME")
    levels = parse_levels(args.levels)
    trunks = trunks_from_args(args, base)
    check_fits(args, trunks[0].spec, args.replicates * len(levels))
    plan = LotteryPlan(trunks, max(levels), args.replicates, options, levels, data_dir=args.data_dir)
    nodes = plan.branch_nodes()  # the branch's options are checked here, before the trunk is looked for
    check_set_lengths(nodes, args.data_dir)  # --set milestones=5ep on a 3ep run: refused as lth train refuses it
    kept = keep_saved_states(args, nodes, trunks[0].spec, plan.spe)  # the branch's runs (its trunk is trained)
    for r in range(args.replicates):
        for level in levels:
            require_level(trunks[0], r, level, trunk_command(argv, max(levels)))
    with Progress() as progress:
        results = executor_from_args(args, progress).run(kept)
    by_path = {res["path"]: res for res in results}
    from lth.lottery.branches import branch_record

    records: list[dict[str, Any]] = [branch_record(n, by_path[str(n.path)], plan._rewind_it(n))
                                     for n in nodes]
    code = report_divergence(records, args.strict)
    if args.json:
        emit_json({"runs": records})
    else:
        print_levels(records)
        print(f"results in {trunks[0].level_dir(0, 0).parent.parent}", file=sys.stderr)
    return code
