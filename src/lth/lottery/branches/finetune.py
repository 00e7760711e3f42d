"""``finetune``: pruning & fine-tuning (Liu et al., ICML 2021, "Lottery Ticket Preserves Weight Correlation", their
Fig. 1 and Fig. 6): the dense network's *trained* weights (level 0's final state) under the ticket's mask, trained
on. Beside the winning ticket (the same mask on the initial, or rewound, weights) and random re-initialisation
(``reinit``) it is Fig. 6's third curve.

How long and at what rate it fine-tunes is our choice (the seed, 002, shows only the curves): by default the
trunk's own schedule from step 0 (the same number of steps, learning rate, warmup and milestones as the ticket's
training, so all three curves get the same budget); ``--finetune-steps`` shortens or lengthens it and
``--finetune-lr`` changes its learning rate (fine-tuning is often run at a smaller rate). Only non-default options
count in the branch's hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.spec import Step, TrainSpec, help_field, replace_fields


@dataclass(frozen=True)
class FinetuneOptions(BranchOptions):
    """How long and at what learning rate the pruned dense network is fine-tuned."""

    finetune_steps: str = help_field("", "finetune: steps of fine-tuning, e.g. 2ep or 300it (default: the trunk's "
                                     "training steps)")
    finetune_lr: float | None = help_field(None, "finetune: learning rate of fine-tuning (default: the trunk's)")

    def validate(self) -> None:
        """UserError for steps that do not parse or a learning rate that is not positive."""
        super().validate()
        if self.finetune_steps:
            try:
                steps = Step.parse(self.finetune_steps)
            except (UserError, ValueError):
                raise UserError(f"{ref('finetune_steps')} {self.finetune_steps!r}: expected steps like 2ep or "
                                "300it", value=self.finetune_steps, allowed="steps like 2ep or 300it") from None
            if steps.count < 1:  # else spec validation would name --training-steps, a flag not given
                raise UserError(f"{ref('finetune_steps')} {self.finetune_steps}: bad value; allowed: at least 1it",
                                value=self.finetune_steps, allowed="at least 1it")
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            raise UserError(f"{ref('finetune_lr')} {self.finetune_lr!r}: expected a learning rate > 0",
                            value=self.finetune_lr, allowed="a learning rate > 0")


def finetune_spec(spec: TrainSpec, options: FinetuneOptions) -> TrainSpec:
    """The trunk's spec with the fine-tuning steps and learning rate, where given."""
    over: dict[str, object] = {}
    if options.finetune_steps:
        over["training_steps"] = options.finetune_steps
    if options.finetune_lr is not None:
        over["lr"] = options.finetune_lr
    out = replace_fields(spec, over) if over else spec
    out.validate()
    return out


@op("finetune")
def finetune(ctx: OpContext, dense_final: dict, ticket: dict) -> Setup:
    """The dense network's trained weights ``dense_final`` under ``ticket`` (pruned weights set to zero; every
    other tensor, e.g. biases and normalisation, as trained)."""
    return Setup({k: v * ticket[k] if k in ticket else v for k, v in dense_final.items()}, ticket)


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level: level 0's final state under the level's mask, trained from step 0."""
    recipe = Recipe.make("finetune", ctx.dense(r), ctx.ticket(r, level))
    return [ctx.node(r, level, recipe, spec=finetune_spec(ctx.trunk.spec, ctx.options), rewound=False)]


BRANCH = Branch(FinetuneOptions, plan, "pruning & fine-tuning: the dense network's trained weights under the ticket's "
                "mask, trained on", dense=True)
