"""``small-dense``: a dense network of the same family whose widths are scaled so that its parameter count
matches the ticket's (the small dense baseline of Ma et al. 2021 and Liu et al. 2019)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lth.graph import Node
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.lottery.trunk import level_hparams
from lth.models import build_model
from lth.prune import full_mask, prune
from lth.prune.ablations import scaled_width_for_params


@dataclass(frozen=True)
class SmallDenseOptions(BranchOptions):
    """small-dense has only the common options."""


def pruned_away(ctx: BranchContext, r: int, level: int) -> int:
    """How many weights the trunk's level l has pruned. Every strategy removes a count that depends only on
    the layers' shapes and the fractions, never on the weights' values, so it is known before the trunk trains:
    prune random weights ``level`` times with the trunk's own strategy and count."""
    m = ctx.trunk.spec.model
    probe = build_model(m.model, 1, ctx.example_shape, ctx.num_classes, m.norm, m.width).member_state(0)
    g = torch.Generator().manual_seed(0)
    mask = full_mask(probe, ctx.prunable)
    for lv in range(1, level + 1):
        weights = {k: torch.randn(probe[k].shape, generator=g) for k in ctx.prunable}
        mask = prune(weights, mask, level_hparams(ctx.trunk.pruning, r, lv), ctx.kinds)
    return sum(int((~v).sum()) for v in mask.values())


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One dense node per replicate and level, at the width whose parameter count matches the ticket's."""
    spec = ctx.trunk.spec
    m = spec.model

    def count(width: float) -> int:
        return build_model(m.model, 1, ctx.example_shape, ctx.num_classes, m.norm, width).num_params()

    width = scaled_width_for_params(count(m.width) - pruned_away(ctx, r, level), count)
    small = dataclasses.replace(spec, model=dataclasses.replace(m, width=width))
    return [ctx.node(r, level, None, spec=small, rewound=False)]


BRANCH = Branch(SmallDenseOptions, plan, "a dense network with the ticket's parameter count")
