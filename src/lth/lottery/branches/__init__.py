"""Branches: the ablations the lottery-ticket papers run on a trunk's tickets to show what makes them win.

One file per branch, one line per branch here. ``plan_branch`` turns a branch, a trunk, levels and
replicates into nodes; they depend on the trunk's nodes, so the executor trains each beside the trunk level
whose ticket it needs. ``plan_ticket_branch`` plans a branch on a ticket given as tensors (a given node) instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lth.errors import UserError, ref
from lth.graph import Node
from lth.lottery.branches import (
    dn_reinit,
    finetune,
    noise,
    oneshot,
    random_mask,
    reinit,
    remask,
    retrain,
    shuffle,
    signs,
    small_dense,
    transfer,
)
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions, TicketContext
from lth.lottery.trunk import Trunk, mask_densities
from lth.prune import density
from lth.store import RunDir

BRANCHES: dict[str, Branch] = {
    "reinit": reinit.BRANCH,
    "random-mask": random_mask.BRANCH,
    "dn-reinit": dn_reinit.BRANCH,
    "remask": remask.BRANCH,
    "small-dense": small_dense.BRANCH,
    "retrain": retrain.BRANCH,
    "oneshot": oneshot.BRANCH,
    "signs": signs.BRANCH,
    "shuffle": shuffle.BRANCH,
    "noise": noise.BRANCH,
    "transfer": transfer.BRANCH,
    "finetune": finetune.BRANCH,
}


def branch_options(name: str, values: dict[str, Any] | None = None) -> Any:
    """Branch ``name``'s options dataclass with the given field values (fields it does not have are ignored)."""
    if name not in BRANCHES:
        raise UserError(f"unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
    cls = BRANCHES[name].options
    own = {f.name for f in dataclasses.fields(cls)}
    opts = cls(**{k: v for k, v in (values or {}).items() if k in own})
    opts.validate()
    return opts


MAX_LEVELS = 1_000_000  # at 20% a level, density 0.8^1000 is already below any float32 weight's share


def parse_levels(raw: Any, path: str = "levels") -> list[int]:
    """Levels as sorted numbers: ``3``, ``"0-15"``, ``"3,5,8"``, a mix (``"0-3,8"``) or a list of those; a
    UserError naming the field ``path`` otherwise (a range of more than :data:`MAX_LEVELS` levels too: a typo
    such as ``0-100000000`` would fill memory before any other check)."""
    items = list(raw) if isinstance(raw, list | tuple | set | range) else [raw]
    text = ",".join(str(x) for x in items)
    out: set[int] = set()
    try:
        for item in items:
            if isinstance(item, bool | float):
                raise ValueError
            for part in str(item).split(","):
                part = part.strip()
                if "-" in part:
                    a, b = part.split("-", 1)
                    lo, hi = int(a), int(b)
                    if lo > hi:
                        raise ValueError
                    if hi - lo >= MAX_LEVELS:
                        raise UserError(f"{ref(path)} {text!r}: {hi - lo + 1} levels; allowed: at most {MAX_LEVELS}",
                                        value=raw, allowed=f"at most {MAX_LEVELS} levels")
                    out.update(range(lo, hi + 1))
                elif part:
                    out.add(int(part))
    except ValueError:
        raise UserError(f"{ref(path)} {text!r}: expected a range like 0-15 or a list like 3,5,8", value=raw,
                        allowed="a range like 0-15 or a list like 3,5,8") from None
    if not out or min(out) < 0:
        raise UserError(f"{ref(path)} {text!r}: expected levels >= 0, e.g. 0-15 or 3,5,8", value=raw,
                        allowed="levels >= 0")
    return sorted(out)


def plan_branch(name: str, trunk: Trunk, levels: list[int], replicates: int, options: Any,
                prunable: list[str], kinds: dict[str, str], example_shape: tuple[int, ...],
                num_classes: int) -> list[Node]:
    """The nodes of branch ``name`` at ``levels`` of every replicate (replicate-major, then level)."""
    if name not in BRANCHES:
        raise UserError(f"unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
    options.validate()
    ctx = BranchContext(trunk, name, options, prunable, kinds, example_shape, num_classes)
    return [n for r in range(replicates) for level in levels for n in BRANCHES[name].plan(ctx, r, level)]


def plan_ticket_branch(name: str, trunk: Trunk, given: Node, pruned: int, options: Any, prunable: list[str],
                       kinds: dict[str, str], example_shape: tuple[int, ...], num_classes: int) -> list[Node]:
    """The node of branch ``name`` on the ticket stored as the given node ``given`` (level 0, replicate 0; ``trunk``
    gives the spec, pruning and rewind step; ``pruned``: how many weights the ticket's mask removes). A branch that
    needs the trunk's dense network is a UserError naming ``ticket``."""
    if name not in BRANCHES:
        raise UserError(f"unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
    options.validate()
    ctx = TicketContext(trunk, name, options, prunable, kinds, example_shape, num_classes, given, pruned)
    return BRANCHES[name].plan(ctx, 0, 0)


def branch_record(node: Node, base: dict[str, Any], rewind_iteration: int) -> dict[str, Any]:
    """The CONTRACT's branch record: the run record plus branch, level, density (small-dense: width)."""
    level = node.meta["level"]
    rec = {**base, "branch": node.meta["branch"], "level": level, "rewind": node.meta["rewind"],
           "rewind_iteration": rewind_iteration}
    run = RunDir(node.path)
    if run.has_mask():
        rec.update(mask_densities(run.load_mask(), node.spec))
    elif node.meta["branch"] == "small-dense" and level > 0:
        trunk_mask = RunDir(run.path.parent.parent / f"level_{level}")
        rec["density"] = 1.0
        if trunk_mask.has_mask():
            rec["ticket_density"] = density(trunk_mask.load_mask())
        rec["width"] = node.spec.model.width
    else:
        rec["density"] = 1.0 if rec.get("status") == "complete" else None
    spec = run.spec
    for key in ("effective_std", "head_replaced"):  # what the branch's op recorded (lth.graph.Setup.info)
        if isinstance(spec, dict) and key in spec:
            rec[key] = spec[key]
    return rec


__all__ = ["BRANCHES", "Branch", "BranchContext", "BranchOptions", "branch_options", "branch_record",
           "parse_levels", "plan_branch", "plan_ticket_branch"]
