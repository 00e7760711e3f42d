"""``noise``: the rewound ticket's kept weights plus Gaussian noise of ``n * sigma``, sigma the standard deviation
of the layer's initialisation distribution (Frankle, Schwab & Morcos, ICLR 2020, Section 4, Fig. 7)."""

from __future__ import annotations

from dataclasses import dataclass

from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.prune.perturb import effective_std, perturb
from lth.spec import help_field


@dataclass(frozen=True)
class NoiseOptions(BranchOptions):
    """How much noise."""

    noise_scale: float = help_field(1.0, "noise: n of the n*sigma Gaussian noise added to each kept weight (sigma: "
                                    "the layer's initialisation standard deviation)")

    def validate(self) -> None:
        """UserError for a negative or non-finite scale."""
        super().validate()
        if not 0 <= self.noise_scale < float("inf"):
            raise UserError(f"{ref('noise_scale')} {self.noise_scale!r}: bad value; allowed: a number >= 0",
                            value=self.noise_scale, allowed="a number >= 0")


@op("noise")
def noise(ctx: OpContext, start: dict, ticket: dict, *, scale: float, seed: int, replicate: int,
          level: int) -> Setup:
    """The rewound state plus noise on the ticket's kept weights; records the effective standard deviation."""
    out = perturb("noise", start, ctx.prunable, ctx.generator(seed, replicate, level), mask=ticket, scale=scale,
                  sigmas=ctx.node.spec.model.init)
    return Setup(out, ticket, {"effective_std": effective_std(start, out, ctx.prunable, ticket)})


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k."""
    o = ctx.options
    recipe = Recipe.make("noise", ctx.start(r, level), ctx.ticket(r, level), scale=o.noise_scale, seed=o.branch_seed,
                         replicate=r, level=level)
    return [ctx.node(r, level, recipe)]


BRANCH = Branch(NoiseOptions, plan, "the rewound ticket plus n*sigma Gaussian noise")
