"""``remask``: each layer's mask permuted (same count per layer), its weights drawn from the ticket's D_n
(study 004, Section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext
from lth.lottery.branches.dn_reinit import DnReinitOptions, with_weights
from lth.prune.ablations import permute_mask, sample_dn


@dataclass(frozen=True)
class RemaskOptions(DnReinitOptions):
    """remask draws from D_n as dn-reinit does."""


@op("remask")
def remask(ctx: OpContext, state: dict, ticket: dict, *, seed: int, replicate: int, level: int,
           pool: str = "layer") -> Setup:
    """A permuted mask carrying weights drawn from D_n."""
    g = ctx.generator(seed, replicate, level)
    drawn = sample_dn({k: state[k] for k in ctx.prunable}, ticket, g, pool)
    moved = permute_mask(ticket, g)
    weights = {}
    for k in ctx.prunable:
        w = torch.zeros_like(drawn[k])
        w[moved[k]] = drawn[k][ticket[k]]
        weights[k] = w
    return Setup(with_weights(state, weights), moved)


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    recipe = Recipe.make("remask", ctx.start(r), ctx.ticket(r, level), seed=ctx.options.branch_seed,
                         replicate=r, level=level, pool=ctx.options.dn_pool)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(RemaskOptions, plan, "a permuted mask, weights redrawn from the ticket's D_n")
