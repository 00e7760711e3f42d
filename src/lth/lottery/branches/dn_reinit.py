"""``dn-reinit``: the ticket's mask; each kept weight drawn uniformly from the ticket's own nonzero starting
weights D_n (study 004, Section 2). ``--set KEY=VALUE`` trains it with other hyperparameters, as ``retrain`` does:
study 004's Algorithm 1 finds the mask training j = 5 iterations per round, then trains every network for 100
(FC-1) or 300 (LeNet-5) epochs, i.e. a short trunk and ``--set training_steps=100ep`` on ``retrain``, ``dn-reinit``
and ``remask``. Without ``--set`` its spec, and so its directory hash, are as ever."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.lottery.branches.retrain import retrained_spec
from lth.prune.ablations import DN_POOLS, sample_dn
from lth.spec import help_field


@dataclass(frozen=True)
class DnReinitOptions(BranchOptions):
    """Where D_n's samples come from."""

    dn_pool: str = help_field("network", "dn-reinit/remask: draw each kept weight from the ticket's nonzero starting "
                              "weights of the whole network (study 004's D_n) or of its own layer",
                              choices=DN_POOLS)
    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")
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
    replicate and level, rewound to the trunk's step k, trained under the ``--set`` overrides (if any)."""
    def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
        recipe = Recipe.make(op_name, ctx.start(r, level), ctx.ticket(r, level), seed=ctx.options.branch_seed,
                             replicate=r, level=level, pool=ctx.options.dn_pool)
        spec = retrained_spec(ctx.trunk.spec, ctx.options.set) if ctx.options.set else None
        return [ctx.node(r, level, recipe, spec=spec)]
    return plan


plan = dn_plan("dn_reinit")


BRANCH = Branch(DnReinitOptions, plan, "the ticket's mask, weights redrawn from its D_n")
