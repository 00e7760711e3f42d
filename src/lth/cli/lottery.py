"""``lth lottery``: iterative magnitude pruning with rewinding (the trunk), and optionally branches off every
level, planned and trained as one graph."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from lth.cli.common import (
    Progress,
    add_dataclass_flags,
    add_preset_flag,
    add_pruning_flags,
    add_runtime_flags,
    add_spec_flags,
    check_fits,
    dataclass_from_args,
    emit_json,
    executor_from_args,
    pruning_from_args,
    report_divergence,
    spec_from_args,
    whole_number,
)
from lth.errors import UserError
from lth.spec import Step, TrainSpec

HELP = "iterative magnitude pruning with rewinding (the trunk), with --branches off its levels"


def branch_option_fields() -> list[type]:
    """Every branch's options class, for one flag per distinct field."""
    from lth.lottery import BRANCHES

    return [b.options for b in BRANCHES.values()]


def add_branch_option_flags(p: argparse.ArgumentParser, classes: list[type]) -> None:
    """One flag per distinct field of the given branch options classes (dest ``branch__<field>``)."""
    seen: set[str] = set()
    fields = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name not in seen:
                seen.add(f.name)
                fields.append(f)
    merged = dataclasses.make_dataclass("BranchFlags", [(f.name, f.type, f) for f in fields], frozen=True)
    add_dataclass_flags(p, merged, "branch options", lambda n: f"--{n.replace('_', '-')}", "branch__")


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth lottery``."""
    from lth.lottery import BRANCHES

    p.add_argument("--levels", required=True, help="pruning levels after the dense level 0")
    add_preset_flag(p)
    p.add_argument("--rewind", nargs="+", default=["0it"],
                   help="rewind step k (0it: the original lottery ticket); several make a sweep")
    p.add_argument("--branches", nargs="*", default=[], metavar="NAME",
                   help=f"branches trained beside the trunk at every level 1..LEVELS ({' | '.join(BRANCHES)})")
    p.add_argument("--branch-levels", default=None, help="levels of the branches (default: 1..LEVELS)")
    add_branch_option_flags(p, branch_option_fields())
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def trunks_from_args(args: argparse.Namespace, base: TrainSpec) -> list[Any]:
    """One trunk per ``--rewind`` step."""
    from lth.lottery import Trunk

    spec = spec_from_args(args, base)
    pruning = pruning_from_args(args)
    rewinds = []
    for k in args.rewind:
        try:
            rewinds.append(Step.parse(k))
        except UserError as e:
            raise UserError(f"--rewind: {e}") from None
    return [Trunk(spec, pruning, k, Path(args.root), args.preset) for k in rewinds]


def branches_from_args(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """``{name: options}`` for the named branches, from the ``--<option>`` flags."""
    from lth.lottery import BRANCHES, branch_options

    out = {}
    for raw in names:
        for name in (s.strip() for s in raw.split(",")):
            if not name:
                continue
            if name not in BRANCHES:
                raise UserError(f"--branches: unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
            cls = BRANCHES[name].options
            out[name] = branch_options(name, dataclasses.asdict(dataclass_from_args(args, cls, "branch__", cls())))
    return out


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the trunk (and branches) as one graph, train what is missing, print the records."""
    args._argv = argv  # flags as typed, so errors name them so (--strategy)
    from lth.lottery import parse_levels
    from lth.lottery.plan import LotteryPlan

    levels = whole_number(args.levels, 0, "--levels")
    branches = branches_from_args(args, args.branches)
    branch_levels = parse_levels(args.branch_levels) if args.branch_levels else None
    trunks = trunks_from_args(args, base)
    n_branch_levels = len(branch_levels) if branch_levels else levels
    per_replicate = len({t.digest for t in trunks}) * (levels + 1 + len(branches) * n_branch_levels)
    check_fits(args, trunks[0].spec, args.replicates * per_replicate,
               *(("--replicates", args.replicates) if args.replicates >= levels else ("--levels", levels)))
    with Progress() as progress:
        plan = LotteryPlan(trunks, levels, args.replicates, branches, branch_levels, data_dir=args.data_dir)
        results = executor_from_args(args, progress).run(plan.nodes())
    records = plan.records(results)
    code = report_divergence(records["runs"] + records["branches"], args.strict)
    if args.json:
        emit_json({"runs": records["runs"], **({"branches": records["branches"]} if branches else {})})
    else:
        print_levels(records["runs"] + records["branches"])
        print(f"results in {Path(records['runs'][0]['path']).parent.parent}", file=sys.stderr)
    return code


def print_levels(records: list[dict[str, Any]]) -> None:
    """A table of records on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table("branch", "rewind", "level", "density", "replicate", "test accuracy", "status")
    for r in records:
        acc = r["final_test_accuracy"]
        density = "n/a" if r.get("density") is None else f"{r['density']:.4f}"
        table.add_row(r.get("branch", "trunk"), r["rewind"], str(r["level"]), density, str(r["replicate"]),
                      "n/a" if acc is None else f"{acc:.4f}", r["status"])
    Console(stderr=True).print(table)
