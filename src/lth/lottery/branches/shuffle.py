"""``shuffle``: the rewound ticket's kept weights randomly permuted within each layer or each unit (output
neuron / filter) or over the whole network, optionally only among weights of the same sign (Frankle, Schwab &
Morcos, ICLR 2020, Section 4, Figs. 5 and 6)."""

from __future__ import annotations

from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.perturb import SHUFFLE_WITHIN, effective_std, perturb
from lth.spec import help_field


@dataclass(frozen=True)
class ShuffleOptions(BranchOptions):
    """Where the permutation acts."""

    shuffle_within: str = help_field("layer", "shuffle: permute the kept weights within each layer, within each "
                                     "output neuron / filter, or over the whole network (all prunable layers)",
                                     choices=SHUFFLE_WITHIN)
    same_sign: bool = help_field(False, "shuffle: permute only among weights of the same sign (signs stay put)")


@op("shuffle")
def shuffle(ctx: OpContext, start: dict, ticket: dict, *, within: str, same_sign: bool, seed: int, replicate: int,
            level: int) -> Setup:
    """The rewound state with the ticket's kept weights permuted; records the effective standard deviation."""
    out = perturb("shuffle", start, ctx.prunable, ctx.generator(seed, replicate, level), mask=ticket,
                  within=within, same_sign=same_sign)
    return Setup(out, ticket, {"effective_std": effective_std(start, out, ctx.prunable, ticket)})


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    o = ctx.options
    recipe = Recipe.make("shuffle", ctx.start(r, level), ctx.ticket(r, level), within=o.shuffle_within,
                         same_sign=o.same_sign, seed=o.branch_seed, replicate=r, level=level)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(ShuffleOptions, plan, "the rewound ticket's weights permuted within layers, units or the network")
