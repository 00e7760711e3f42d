"""``remask``: each layer's mask permuted (same count per layer), its weights drawn from the ticket's D_n
(study 004, Section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lth.graph import OpContext, Setup, op
from lth.lottery.branches.base import Branch
from lth.lottery.branches.dn_reinit import DnReinitOptions, dn_plan, with_weights
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


plan = dn_plan("remask")


BRANCH = Branch(RemaskOptions, plan, "a permuted mask, weights redrawn from the ticket's D_n")
