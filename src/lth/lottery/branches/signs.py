"""``signs``: the rewound ticket with the magnitudes of one step and the signs of another (Frankle, Schwab &
Morcos, "The early phase of neural network training", ICLR 2020, Section 4, Fig. 4: magnitudes from iteration 0
or k, signs from iteration 0 or k, all four combinations)."""

from __future__ import annotations

from dataclasses import dataclass

from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.perturb import effective_std, swap_signs
from lth.spec import help_field

FROM = ("0", "k")


@dataclass(frozen=True)
class SignsOptions(BranchOptions):
    """Which step the magnitudes and the signs come from."""

    magnitudes_from: str = help_field("k", "signs: the kept weights' magnitudes from step 0 (init) or the rewind "
                                      "step k", choices=FROM)
    signs_from: str = help_field("0", "signs: the kept weights' signs from step 0 (init) or the rewind step k",
                                 choices=FROM)


@op("signs")
def signs(ctx: OpContext, start: dict, init: dict, ticket: dict, *, magnitudes_from: str, signs_from: str) -> Setup:
    """The ticket's prunable weights as ``|w_m| * sign(w_s)`` (``m``, ``s`` each step 0 or k); every other
    tensor is the rewound state's (step k). Records the effective standard deviation of the change."""
    by = {"0": init, "k": start}
    out = swap_signs(by[magnitudes_from], by[signs_from], ctx.prunable, ticket)
    out = {k: (out[k] if k in ctx.prunable else v) for k, v in start.items()}
    return Setup(out, ticket, {"effective_std": effective_std(start, out, ctx.prunable, ticket)})


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    o = ctx.options
    recipe = Recipe.make("signs", ctx.start(r, level), ctx.dense(r, "init"), ctx.ticket(r, level),
                         magnitudes_from=o.magnitudes_from, signs_from=o.signs_from)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(SignsOptions, plan, "the rewound ticket with magnitudes and signs from step 0 or k", dense=True)
