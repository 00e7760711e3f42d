"""``reinit``: the ticket's mask with a fresh random initialisation (a new seed), trained from step 0
(Frankle & Carbin 2019, Section 2: "random reinitialization")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import REINIT_SEED_BASE, Branch, BranchContext, BranchOptions


@dataclass(frozen=True)
class ReinitOptions(BranchOptions):
    """reinit has only the common options."""


@op("mask_only")
def mask_only(ctx: OpContext, mask: dict) -> Setup:
    """A fresh initialisation (the node's init seed) under ``mask``."""
    return Setup(None, mask)


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level: a new init seed, the trunk level's mask."""
    t = ctx.trunk.spec.train
    spec = dataclasses.replace(ctx.trunk.spec, train=dataclasses.replace(
        t, init_seed=REINIT_SEED_BASE + 1000 * ctx.options.branch_seed + r))
    return [ctx.node(r, level, Recipe.make("mask_only", ctx.ticket(r, level)), spec=spec, rewound=False)]


BRANCH = Branch(ReinitOptions, plan, "the ticket's mask, freshly initialised")
