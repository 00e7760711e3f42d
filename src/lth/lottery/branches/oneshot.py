"""``oneshot``: one-shot magnitude pruning of the dense network (level 0's final weights) straight to the
ticket's density, rewound the same way (iterative against one-shot pruning, Frankle & Carbin 2019 Section 5).
``--set KEY=VALUE`` trains it with other hyperparameters, as ``retrain`` does (Ma et al. 2021's OMP at each ticket
learning rate, Table 4); without it, its spec, and so its directory hash, are the trunk's as ever."""

from __future__ import annotations

from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.lottery.branches.retrain import retrained_spec
from lth.lottery.trunk import level_hparams
from lth.prune import density, prune_to_density
from lth.spec import help_field


@dataclass(frozen=True)
class OneshotOptions(BranchOptions):
    """Optional training hyperparameters to change (only non-default options count in the branch's hash)."""

    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")


@op("oneshot")
def oneshot(ctx: OpContext, state: dict, dense_final: dict, ticket: dict, *, pruning: dict, replicate: int,
            level: int) -> Setup:
    """``state`` under a one-shot mask of ``dense_final`` with ``ticket``'s density (level 0: the ticket)."""
    target = density(ticket)
    if target >= 1.0:  # level 0: nothing to prune
        return Setup(state, ticket)
    hp = level_hparams(pruning, replicate, level)
    return Setup(state, prune_to_density({k: dense_final[k] for k in ctx.prunable}, hp, ctx.kinds, target))


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k (under the ``--set`` overrides, if any)."""
    recipe = Recipe.make("oneshot", ctx.start(r, level), ctx.dense(r), ctx.ticket(r, level),
                         pruning=ctx.trunk.pruning.record(), replicate=r, level=level)
    spec = retrained_spec(ctx.trunk.spec, ctx.options.set) if ctx.options.set else None
    return [ctx.node(r, level, recipe, spec=spec)]


BRANCH = Branch(OneshotOptions, plan, "one-shot pruning of the dense network to the ticket's density "
                "(--set lr=... to train it at another rate)", dense=True)
