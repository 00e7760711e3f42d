"""``small-dense``: a dense network of the same family whose widths are scaled so that its parameter count
matches the ticket's (the small dense baseline of Ma et al. 2021 and Liu et al. 2019). ``--set KEY=VALUE`` trains
it with other hyperparameters, as ``retrain`` does (Ma et al.'s small dense network at each ticket learning rate);
without it, its spec, and so its directory hash, are as ever."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from lth.graph import Node
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions, TicketContext
from lth.lottery.branches.retrain import retrained_spec
from lth.lottery.trunk import level_hparams
from lth.models import build_model, num_params
from lth.prune import PruneHparams, full_mask, prune
from lth.prune.ablations import scaled_width_for_params
from lth.spec import help_field


@dataclass(frozen=True)
class SmallDenseOptions(BranchOptions):
    """Optional training hyperparameters to change (only non-default options count in the branch's hash)."""

    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")


def pruned_away(ctx: BranchContext, r: int, level: int) -> int:
    """How many weights the trunk's level l has pruned. Every strategy removes a count that depends only on
    the layers' shapes and the fractions, never on the weights' values (nor on the random strategy's seed), so it
    is known before the trunk trains: prune random weights level after level with the trunk's own strategy and
    count (once per trunk architecture and recipe, for all levels). On a ticket given as tensors: what its mask
    removes."""
    if isinstance(ctx, TicketContext):
        return ctx.pruned
    m = ctx.trunk.spec.model
    counts = _pruned_counts(m.model, m.norm, m.width, tuple(ctx.example_shape), ctx.num_classes, ctx.trunk.pruning)
    while len(counts) <= level:  # extend the cached chain only as far as asked
        counts.append(_next_level(counts, ctx, len(counts)))
    return counts[level][0]


@functools.cache
def _pruned_counts(model: str, norm: str, width: float, shape: tuple[int, ...], classes: int,
                   pruning: PruneHparams) -> list[tuple[int, dict]]:
    """``[(pruned count, mask)]`` per level, level 0 first (the dense mask); extended by :func:`_next_level`."""
    probe = build_model(model, 1, shape, classes, norm, width)
    return [(0, full_mask(probe.member_state(0), probe.prunable()))]


def _next_level(counts: list[tuple[int, dict]], ctx: BranchContext, level: int) -> tuple[int, dict]:
    """Level ``level``'s count and mask: the previous mask pruned once more (random weights, fixed seed)."""
    mask = counts[-1][1]
    g = torch.Generator().manual_seed(level)
    weights = {k: torch.randn(v.shape, generator=g) for k, v in mask.items()}
    mask = prune(weights, mask, level_hparams(ctx.trunk.pruning, 0, level), ctx.kinds)
    return sum(int((~v).sum()) for v in mask.values()), mask


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One dense node per replicate and level, at the width whose parameter count matches the ticket's (under the
    ``--set`` overrides, if any)."""
    spec = retrained_spec(ctx.trunk.spec, ctx.options.set) if ctx.options.set else ctx.trunk.spec
    m = spec.model

    def count(width: float) -> int:
        return num_params(m.model, tuple(ctx.example_shape), ctx.num_classes, m.norm, width)

    width = scaled_width_for_params(count(m.width) - pruned_away(ctx, r, level), count)
    small = dataclasses.replace(spec, model=dataclasses.replace(m, width=width))
    return [ctx.node(r, level, None, spec=small, rewound=False)]


BRANCH = Branch(SmallDenseOptions, plan, "a dense network with the ticket's parameter count")
