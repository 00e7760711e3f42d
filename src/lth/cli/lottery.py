"""``lth lottery``: iterative magnitude pruning with rewinding (the trunk), and optionally branches off every
level, planned and trained as one graph; flags -> options -> the lottery study (:mod:`lth.studies.lottery`) ->
printed records."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from lth.cli.flags import (
    add_dataclass_flags,
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
from lth.cli.output import emit_json, print_table, report_divergence
from lth.lottery import BRANCHES
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.base import resolve_spec
from lth.studies.lottery import LotteryOptions, branch_choices, plan_lottery, run_lottery

HELP = "iterative magnitude pruning with rewinding (the trunk), with --branches off its levels"
BRANCH_DEST = "branch__"  # the dest prefix of the branch option flags


def add_branch_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per distinct field of every branch's options (dest ``branch__<field>``)."""
    seen: dict[str, dataclasses.Field] = {}
    for b in BRANCHES.values():
        for f in dataclasses.fields(b.options):
            seen.setdefault(f.name, f)
    merged = dataclasses.make_dataclass("BranchFlags", [(f.name, f.type, f) for f in seen.values()], frozen=True)
    add_dataclass_flags(p, merged, "branch options", lambda n: f"--{n.replace('_', '-')}", BRANCH_DEST)


def branch_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The branch options the user gave (``{"dn_pool": "layer"}``)."""
    return {k[len(BRANCH_DEST):]: v for k, v in vars(args).items() if k.startswith(BRANCH_DEST)}


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth lottery``."""
    add_preset_flag(p)
    add_options(p, LotteryOptions, "lottery", skip=("replicates", "branches"))
    p.add_argument("--branches", nargs="*", default=[], metavar="NAME",
                   help=f"branches trained beside the trunk at every level 1..LEVELS ({' | '.join(BRANCHES)})")
    add_branch_option_flags(p)
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the trunk (and branches) as one graph, train what is missing, print the records."""
    given = spec_flags(args)
    spec, preset = resolve_spec(args.preset, given)
    pruning = pruning_from_args(args)
    values = {**options_values(args, LotteryOptions), "branches": branch_choices(args.branches, branch_flags(args))}
    opts = LotteryOptions.from_values(values)
    plan = plan_lottery(spec, pruning, opts, runtime_from_args(args), preset=preset, given=given)
    with Progress() as progress:
        doc = run_lottery(plan, progress).to_json()
    code = report_divergence(doc["runs"] + doc.get("branches", []), opts.strict)
    if args.json:
        emit_json(doc)
    else:
        print_levels(doc["runs"] + doc.get("branches", []))
        experiments = list(dict.fromkeys(str(Path(r["path"]).parent.parent) for r in doc["runs"]))
        print(f"results in {', '.join(experiments)}", file=sys.stderr)  # one lottery_<hash> per --rewind step
    return code


def print_levels(records: list[dict[str, Any]]) -> None:
    """A table of records on stderr."""
    rows = []
    for r in records:
        acc = r["final_test_accuracy"]
        density = "n/a" if r.get("density") is None else f"{r['density']:.4f}"
        rows.append([r.get("branch", "trunk"), r["rewind"], str(r["level"]), density, str(r["replicate"]),
                     "n/a" if acc is None else f"{acc:.4f}", r["status"]])
    print_table(["branch", "rewind", "level", "density", "replicate", "test accuracy", "status"], rows)
