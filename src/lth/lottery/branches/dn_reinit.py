"""``dn-reinit``: the ticket's mask; each kept weight drawn uniformly from the ticket's own nonzero starting
weights D_n (study 004, Section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.ablations import sample_dn


@dataclass(frozen=True)
class DnReinitOptions(BranchOptions):
    """dn-reinit has only the common options."""


def with_weights(state: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with some tensors replaced (in the state's dtype)."""
    return {**state, **{k: v.to(state[k].dtype) for k, v in weights.items()}}


@op("dn_reinit")
def dn_reinit(ctx: OpContext, state: dict, ticket: dict, *, seed: int, replicate: int, level: int) -> Setup:
    """Kept weights redrawn from D_n, the ticket's mask unchanged."""
    drawn = sample_dn({k: state[k] for k in ctx.prunable}, ticket, ctx.generator(seed, replicate, level))
    return Setup(with_weights(state, drawn), ticket)


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    recipe = Recipe.make("dn_reinit", ctx.start(r), ctx.ticket(r, level), seed=ctx.options.branch_seed,
                         replicate=r, level=level)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(DnReinitOptions, plan, "the ticket's mask, weights redrawn from its D_n")
