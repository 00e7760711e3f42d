"""``reinit``: the ticket's mask with a fresh random initialisation (a new seed), trained from step 0
(Frankle & Carbin 2019, Section 2: "random reinitialization"). ``--set KEY=VALUE`` trains it with other
hyperparameters, as ``retrain`` does (Ma et al. 2021's condition [3]: the reinitialised ticket at every learning
rate); without it, its spec, and so its directory hash, are as ever."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import REINIT_SEED_BASE, Branch, BranchContext, BranchOptions
from lth.lottery.branches.retrain import retrained_spec
from lth.spec import help_field


@dataclass(frozen=True)
class ReinitOptions(BranchOptions):
    """Optional training hyperparameters to change (only non-default options count in the branch's hash)."""

    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")


@op("mask_only")
def mask_only(ctx: OpContext, mask: dict) -> Setup:
    """A fresh initialisation (the node's init seed) under ``mask``."""
    return Setup(None, mask)


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level: a new init seed, the trunk level's mask (under the ``--set`` overrides,
    if any)."""
    base = retrained_spec(ctx.trunk.spec, ctx.options.set) if ctx.options.set else ctx.trunk.spec
    t = base.train
    spec = dataclasses.replace(base, train=dataclasses.replace(
        t, init_seed=REINIT_SEED_BASE + 1000 * ctx.options.branch_seed + r))
    return [ctx.node(r, level, Recipe.make("mask_only", ctx.ticket(r, level)), spec=spec, rewound=False)]


BRANCH = Branch(ReinitOptions, plan, "the ticket's mask, freshly initialised")
