"""``dn-reinit``: the ticket's mask; each kept weight drawn uniformly from the ticket's own nonzero starting
weights D_n (study 004, Section 2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.ablations import DN_POOLS, sample_dn
from lth.spec import help_field


@dataclass(frozen=True)
class DnReinitOptions(BranchOptions):
    """Where D_n's samples come from."""

    dn_pool: str = help_field("network", "dn-reinit/remask: draw each kept weight from the ticket's nonzero starting "
                              "weights of the whole network (study 004's D_n) or of its own layer",
                              choices=DN_POOLS)
    # the default changed from per-layer to whole-network pools: the pool always names the directory
    ALWAYS_HASHED: ClassVar[tuple[str, ...]] = ("dn_pool",)


def with_weights(state: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with some tensors replaced (in the state's dtype)."""
    return {**state, **{k: v.to(state[k].dtype) for k, v in weights.items()}}


@op("dn_reinit")
def dn_reinit(ctx: OpContext, state: dict, ticket: dict, *, seed: int, replicate: int, level: int,
              pool: str = "layer") -> Setup:
    """Kept weights redrawn from D_n, the ticket's mask unchanged."""
    drawn = sample_dn({k: state[k] for k in ctx.prunable}, ticket, ctx.generator(seed, replicate, level), pool)
    return Setup(with_weights(state, drawn), ticket)


def dn_plan(op_name: str) -> Callable[[BranchContext, int, int], list[Node]]:
    """The plan of a branch that redraws weights from D_n with op ``op_name`` (dn-reinit, remask): one node per
    replicate and level, rewound to the trunk's step k."""
    def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
        recipe = Recipe.make(op_name, ctx.start(r, level), ctx.ticket(r, level), seed=ctx.options.branch_seed,
                             replicate=r, level=level, pool=ctx.options.dn_pool)
        return [ctx.node(r, level, recipe)]
    return plan


plan = dn_plan("dn_reinit")


BRANCH = Branch(DnReinitOptions, plan, "the ticket's mask, weights redrawn from its D_n")
