"""``random-mask``: a random mask of the ticket's per-layer (or global) density with the trunk's rewound
weights (Frankle & Carbin 2019; "random pruning" in Frankle et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.ablations import random_mask_like
from lth.spec import help_field


@dataclass(frozen=True)
class RandomMaskOptions(BranchOptions):
    """How the random mask keeps the ticket's density."""

    mask_mode: str = help_field("layerwise", "random-mask: same per-layer counts, or the same global count",
                                choices=("layerwise", "global"))


@op("random_mask")
def random_mask(ctx: OpContext, state: dict, ticket: dict, *, mode: str, seed: int, replicate: int,
                level: int) -> Setup:
    """``state`` under a random mask with ``ticket``'s counts."""
    return Setup(state, random_mask_like(ticket, ctx.generator(seed, replicate, level), mode))


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    recipe = Recipe.make("random_mask", ctx.start(r, level), ctx.ticket(r, level), mode=ctx.options.mask_mode,
                         seed=ctx.options.branch_seed, replicate=r, level=level)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(RandomMaskOptions, plan, "a random mask of the ticket's density, rewound weights")
