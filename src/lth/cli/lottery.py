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
    keep_saved_states,
    print_table,
    pruning_from_args,
    report_divergence,
    spec_from_args,
    step_flag,
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
    p.add_argument("--rewind", nargs="+", default=None,
                   help="rewind step k (default 0it: the original lottery ticket); several make a sweep")
    add_pretrain_flags(p)
    p.add_argument("--branches", nargs="*", default=[], metavar="NAME",
                   help=f"branches trained beside the trunk at every level 1..LEVELS ({' | '.join(BRANCHES)})")
    p.add_argument("--branch-levels", default=None, help="levels of the branches (default: 1..LEVELS)")
    add_branch_option_flags(p, branch_option_fields())
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def add_pretrain_flags(p: argparse.ArgumentParser) -> None:
    """``--pretrain-steps K --pretrain-task T [--pretrain-sparse]`` (Frankle, Schwab & Morcos 2020, Section 5)."""
    from lth.lottery.pretrain import TASKS

    g = p.add_argument_group("pretraining the rewinding point")
    g.add_argument("--pretrain-steps", default=None, metavar="K",
                   help="rewind to a state pretrained for K steps on --pretrain-task instead of level 0's state at K "
                        "(K is the rewind step: --rewind may be left out, or must be K)")
    g.add_argument("--pretrain-task", default=None, metavar="TASK",
                   help=f"the pretraining task ({' | '.join(TASKS)}; default standard)")
    g.add_argument("--pretrain-sparse", action="store_true",
                   help="pretrain each level's ticket under its mask (else one dense pretraining per replicate)")


def pretraining_from_args(args: argparse.Namespace) -> tuple[Any, Step | None]:
    """The trunk's :class:`~lth.lottery.pretrain.Pretraining` and its step K from the flags (``(None, None)``
    without ``--pretrain-steps``; UserError for a task or sparse flag without it, or a bad value)."""
    from lth.lottery.pretrain import Pretraining

    steps, task = getattr(args, "pretrain_steps", None), getattr(args, "pretrain_task", None)
    sparse = getattr(args, "pretrain_sparse", False)
    if steps is None:
        if task is not None or sparse:
            flag = "--pretrain-task" if task is not None else "--pretrain-sparse"
            raise UserError(f"{flag}: needs --pretrain-steps K (the number of pretraining steps)")
        return None, None
    k = step_flag(steps, "--pretrain-steps")
    if k.count < 1:
        raise UserError(f"--pretrain-steps {steps}: bad value; allowed: at least 1it")
    pre = Pretraining(task or "standard", sparse)
    pre.validate()
    return pre, k


def trunks_from_args(args: argparse.Namespace, base: TrainSpec) -> list[Any]:
    """One trunk per ``--rewind`` step; with ``--pretrain-steps K``, one trunk rewound to K whose state at K is
    pretrained (``--rewind``, if given, must be K)."""
    from lth.lottery import Trunk

    spec = spec_from_args(args, base)
    pruning = pruning_from_args(args)
    pretrain, k_pre = pretraining_from_args(args)
    given = args.rewind if args.rewind is not None else ([str(k_pre)] if k_pre is not None else ["0it"])
    rewinds = [step_flag(k, "--rewind") for k in given]
    if k_pre is not None and any(str(k) != str(k_pre) for k in rewinds):
        raise UserError(f"--rewind {' '.join(given)}: with --pretrain-steps {k_pre} the rewind step is {k_pre} (the "
                        f"pretrained state takes the place of the state there); allowed: --rewind {k_pre} or none")
    return [Trunk(spec, pruning, k, Path(args.root), args.preset, pretrain) for k in rewinds]


def branches_from_args(args: argparse.Namespace, names: list[str], given_as: str = "--branches") -> dict[str, Any]:
    """``{name: options}`` for the named branches, from the ``--<option>`` flags; an unknown name is a UserError
    that says where it was given (``given_as``: ``--branches``, or ``lth branch NAME``)."""
    from lth.lottery import BRANCHES, branch_options

    chosen = [n.strip() for raw in names for n in raw.split(",") if n.strip()]
    known = [n for n in chosen if n in BRANCHES]
    takes = {n: {f.name for f in dataclasses.fields(BRANCHES[n].options)} for n in BRANCHES}
    for dest, value in vars(args).items():  # an option no chosen branch has would be silently ignored
        field = dest[len("branch__"):]
        if dest.startswith("branch__") and len(known) == len(chosen) and not any(field in takes[n] for n in known):
            flag = f"--{field.replace('_', '-')}"
            owners = [n for n in BRANCHES if field in takes[n]]
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            raise UserError(f"{flag} {shown}: an option of the branch{'es' if len(owners) > 1 else ''} "
                            f"{', '.join(owners)}, not of {', '.join(known) or 'the trunk (no --branches)'}; "
                            f"allowed: {flag} with {given_as} naming one of those")
    out = {}
    for raw in names:
        for name in (s.strip() for s in raw.split(",")):
            if not name:
                continue
            if name not in BRANCHES:
                raise UserError(f"{given_as}: unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
            cls = BRANCHES[name].options
            out[name] = branch_options(name, dataclasses.asdict(dataclass_from_args(args, cls, "branch__", cls())))
    return out


def branch_levels_from_args(text: str, levels: int) -> list[int]:
    """``--branch-levels`` as sorted level numbers, each one the trunk of ``--levels`` has (0..levels); a
    UserError naming ``--branch-levels`` otherwise (a higher level would silently train trunk levels the command
    does not report)."""
    from lth.lottery import parse_levels

    try:
        out = parse_levels(text)
    except UserError as e:
        raise UserError(str(e).replace("--levels", "--branch-levels", 1)) from None
    if out[-1] > levels:
        raise UserError(f"--branch-levels {text}: level {out[-1]} is beyond the trunk's --levels {levels}; "
                        f"allowed: levels 0-{levels} (or raise --levels)")
    return out


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the trunk (and branches) as one graph, train what is missing, print the records."""
    args._argv = argv  # flags as typed, so errors name them so (--strategy)
    from lth.lottery.branches.retrain import check_set_lengths
    from lth.lottery.plan import LotteryPlan

    levels = whole_number(args.levels, 0, "--levels")
    branches = branches_from_args(args, args.branches)
    branch_levels = branch_levels_from_args(args.branch_levels, levels) if args.branch_levels else None
    trunks = trunks_from_args(args, base)
    n_branch_levels = len(branch_levels) if branch_levels else levels
    per_replicate = len({t.digest for t in trunks}) * (levels + 1 + len(branches) * n_branch_levels)
    check_fits(args, trunks[0].spec, args.replicates * per_replicate,
               *(("--replicates", args.replicates) if args.replicates >= levels else ("--levels", levels)))
    with Progress() as progress:
        plan = LotteryPlan(trunks, levels, args.replicates, branches, branch_levels, data_dir=args.data_dir)
        nodes = plan.nodes()
        check_set_lengths(nodes, args.data_dir)  # a branch's --set milestones inside its training, as lth train
        nodes = keep_saved_states(args, nodes, trunks[0].spec, plan.spe)  # trunk levels and branches
        results = executor_from_args(args, progress).run(nodes)
    records = plan.records(results)
    code = report_divergence(records["runs"] + records["branches"], args.strict)
    if args.json:
        emit_json({"runs": records["runs"], **({"branches": records["branches"]} if branches else {}),
                   **({"pretrain": records["pretrain"]} if "pretrain" in records else {})})
    else:
        print_levels(records["runs"] + records["branches"])
        experiments = list(dict.fromkeys(str(Path(r["path"]).parent.parent) for r in records["runs"]))
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
