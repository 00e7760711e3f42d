"""``transfer``: a ticket found on one dataset (its mask and its rewound start) trained on another dataset of
the same input shape (Morcos, Yu, Paganini & Tian, "One ticket to win them all", NeurIPS 2019), with the
classifier head freshly initialised where the class count differs. ``--transfer-init reinit`` is the control:
the same mask with a fresh random initialisation, trained from step 0 on the target dataset.

Where the head is replaced, its mask (if the output layer is prunable) is all ones: the ticket says nothing
about a layer of another shape. MNIST -> Fashion-MNIST and CIFAR-10 -> CIFAR-100 are the intended pairs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lth.data.describe import KNOWN
from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import REINIT_SEED_BASE, Branch, BranchContext, BranchOptions
from lth.prune.perturb import head_names, replace_head
from lth.spec import help_field

INITS = ("ticket", "reinit")


@dataclass(frozen=True)
class TransferOptions(BranchOptions):
    """Where the ticket is trained, and from what start."""

    target_dataset: str = help_field("", "transfer: the dataset the ticket is trained on (same input shape as the "
                                     "trunk's, e.g. fashion_mnist for an MNIST trunk)")
    transfer_init: str = help_field("ticket", "transfer: the ticket's rewound weights, or a fresh random "
                                    "initialisation under the same mask (the control)", choices=INITS)

    def validate(self) -> None:
        """UserError for a missing or unknown target dataset."""
        super().validate()
        if not self.target_dataset:
            raise UserError(f"{ref('target_dataset')}: missing; the transfer branch needs the dataset to train the "
                            "ticket on, e.g. fashion_mnist")
        from lth.data import DATASETS

        if self.target_dataset not in DATASETS:
            raise UserError(f"{ref('target_dataset')}: unknown value {self.target_dataset!r}; "
                            f"allowed: {', '.join(DATASETS)}", value=self.target_dataset, allowed=", ".join(DATASETS))


def fit_head(ctx: OpContext, state: dict | None, mask: dict) -> tuple[dict | None, dict, bool]:
    """``state`` and ``mask`` fitted to the node's network: where the output layer's shape differs (another
    class count), the head is taken from a fresh initialisation and its mask is all ones."""
    fresh = ctx.fresh_state()
    heads = head_names(ctx._probe) if ctx._probe is not None else []
    differs = any(k in mask and mask[k].shape != fresh[k].shape for k in heads) or (
        state is not None and any(state[k].shape != fresh[k].shape for k in heads))
    if not differs:
        return state, mask, False
    mask = {k: (torch.ones_like(fresh[k], dtype=torch.bool) if k in heads else v) for k, v in mask.items()}
    return (replace_head(state, fresh, heads) if state is not None else None), mask, True


@op("transfer")
def transfer(ctx: OpContext, start: dict, ticket: dict, *, init: str) -> Setup:
    """The ticket's mask (and, for ``init="ticket"``, its rewound weights) on the node's target dataset, the head
    replaced where the class count differs; ``init="reinit"``: a fresh initialisation under the mask."""
    state, mask, replaced = fit_head(ctx, start if init == "ticket" else None, ticket)
    return Setup(state, mask, {"head_replaced": replaced})


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level on the target dataset: rewound to step k (ticket) or from step 0 with a
    new init seed (reinit)."""
    o = ctx.options
    spec = ctx.trunk.spec
    if o.target_dataset in KNOWN and KNOWN[o.target_dataset][0] != tuple(ctx.example_shape):
        raise UserError(f"{ref('target_dataset')} {o.target_dataset}: examples of shape "
                        f"{KNOWN[o.target_dataset][0]}, the trunk's are {tuple(ctx.example_shape)}; allowed: a dataset "
                        "of the same input shape", value=o.target_dataset, allowed="a dataset of the same input shape")
    spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, dataset=o.target_dataset))
    recipe = Recipe.make("transfer", ctx.start(r, level), ctx.ticket(r, level), init=o.transfer_init)
    if o.transfer_init == "reinit":
        spec = dataclasses.replace(spec, train=dataclasses.replace(
            spec.train, init_seed=REINIT_SEED_BASE + 1000 * o.branch_seed + r))
        return [ctx.node(r, level, recipe, spec=spec, rewound=False)]
    return [ctx.node(r, level, recipe, spec=spec)]


BRANCH = Branch(TransferOptions, plan, "the ticket (or a reinit control) trained on another dataset")
