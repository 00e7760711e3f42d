"""``oneshot``: one-shot magnitude pruning of the dense network (level 0's final weights) straight to the
ticket's density, rewound the same way (iterative against one-shot pruning, Frankle & Carbin 2019 Section 5).
``--set KEY=VALUE`` trains it with other hyperparameters, as ``retrain`` does (Ma et al. 2021's OMP at each ticket
learning rate, Table 4); without it, its spec, and so its directory hash, are the trunk's as ever.

``--oneshot-density D`` prunes the dense network to D instead of a trunk level's density: one-shot masks at any
number of densities from one dense run, with no IMP level trained for them (Liu et al. ICML 2021, Figs. 6c and 7,
seed 002). It hangs off level 0 (``--branch-levels 0``), the dense network it prunes. ``--oneshot-start`` says what
trains under that one-shot mask: ``rewind`` (default) the dense network's state at the rewind step (the one-shot
"winning ticket"), ``trained`` its trained weights from step 0 (pruning & fine-tuning, as the ``finetune`` branch
does with the IMP mask), ``reinit`` a fresh initialisation from step 0 (as the ``reinit`` branch). Only non-default
options count in the branch's hash.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Setup, op
from lth.lottery.branches.base import REINIT_SEED_BASE, Branch, BranchContext, BranchOptions
from lth.lottery.branches.retrain import retrained_spec
from lth.lottery.trunk import level_hparams
from lth.prune import density, prune_to_density
from lth.spec import help_field

STARTS = ("rewind", "trained", "reinit")


@dataclass(frozen=True)
class OneshotOptions(BranchOptions):
    """Optional training hyperparameters to change, and a density of its own (only non-default options count in
    the branch's hash)."""

    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")
    oneshot_density: float | None = help_field(None, "oneshot: prune the dense network to this density (0 < D <= 1) "
                                               "instead of the ticket's; at --branch-levels 0, one dense run "
                                               "gives masks at any density")
    oneshot_start: str = help_field("rewind", "oneshot: what trains under the one-shot mask: the dense network "
                                    "rewound (rewind), its trained weights fine-tuned from step 0 (trained), or "
                                    "a fresh initialisation from step 0 (reinit)", choices=STARTS)

    def validate(self) -> None:
        """UserError for a start outside :data:`STARTS` or a density outside (0, 1]."""
        super().validate()
        d = self.oneshot_density
        if d is not None and (isinstance(d, bool) or not 0 < d <= 1):
            raise UserError(f"{ref('oneshot_density')} {d!r}: bad value; allowed: a density 0 < D <= 1", value=d,
                            allowed="a density 0 < D <= 1")


def _mask(ctx: OpContext, dense_final: dict, target: float, pruning: dict, replicate: int, level: int) -> dict:
    """The one-shot magnitude mask of ``dense_final`` at density ``target``."""
    hp = level_hparams(pruning, replicate, level)
    return prune_to_density({k: dense_final[k] for k in ctx.prunable}, hp, ctx.kinds, target)


def _setup(state: dict | None, mask: dict) -> Setup:
    """``state`` (None: a fresh initialisation) under ``mask``, pruned weights set to zero."""
    if state is None:
        return Setup(None, mask)
    return Setup({k: v * mask[k] if k in mask else v for k, v in state.items()}, mask)


@op("oneshot")
def oneshot(ctx: OpContext, state: dict, dense_final: dict, ticket: dict, *, pruning: dict, replicate: int,
            level: int) -> Setup:
    """``state`` under a one-shot mask of ``dense_final`` with ``ticket``'s density (level 0: the ticket)."""
    target = density(ticket)
    if target >= 1.0:  # level 0: nothing to prune
        return Setup(state, ticket)
    return Setup(state, _mask(ctx, dense_final, target, pruning, replicate, level))


@op("oneshot_at")
def oneshot_at(ctx: OpContext, dense_final: dict, *start: dict, target: float, pruning: dict, replicate: int,
               level: int) -> Setup:
    """A one-shot mask of ``dense_final`` at density ``target``, over ``start`` (none given: a fresh
    initialisation; ``dense_final`` itself: pruning & fine-tuning)."""
    return _setup(start[0] if start else None, _mask(ctx, dense_final, target, pruning, replicate, level))


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level, rewound to the trunk's step k (under the ``--set`` overrides, if any);
    with ``--oneshot-density``, one node per replicate at level 0 started as ``--oneshot-start`` says."""
    o = ctx.options
    spec = retrained_spec(ctx.trunk.spec, o.set) if o.set else None
    if o.oneshot_density is None:
        if o.oneshot_start != "rewind":
            raise UserError(f"{ref('oneshot_start')} {o.oneshot_start}: needs {ref('oneshot_density')} (at a trunk "
                            "level's own density, the trained and fresh starts are the finetune and reinit "
                            "branches); allowed: rewind", value=o.oneshot_start, allowed="rewind")
        recipe = Recipe.make("oneshot", ctx.start(r, level), ctx.dense(r), ctx.ticket(r, level),
                             pruning=ctx.trunk.pruning.record(), replicate=r, level=level)
        return [ctx.node(r, level, recipe, spec=spec)]
    if level != 0:
        raise UserError(f"{ref('oneshot_density')} {o.oneshot_density}: prunes the dense network, so it branches "
                        f"off level 0, not level {level}; allowed: {ref('branch_levels')} 0", value=level,
                        allowed="level 0")
    starts = {"rewind": (ctx.start(r, 0),), "trained": (ctx.dense(r),), "reinit": ()}[o.oneshot_start]
    recipe = Recipe.make("oneshot_at", ctx.dense(r), *starts, target=float(o.oneshot_density),
                         pruning=ctx.trunk.pruning.record(), replicate=r, level=0)
    if o.oneshot_start == "rewind":
        return [ctx.node(r, 0, recipe, spec=spec)]
    base = spec or ctx.trunk.spec
    if o.oneshot_start == "reinit":
        base = dataclasses.replace(base, train=dataclasses.replace(
            base.train, init_seed=REINIT_SEED_BASE + 1000 * o.branch_seed + r))
    return [ctx.node(r, 0, recipe, spec=base, rewound=False)]


BRANCH = Branch(OneshotOptions, plan, "one-shot pruning of the dense network to the ticket's density "
                "(--set lr=... to train it at another rate; --oneshot-density D for any density off level 0)",
                dense=True)
