"""Instability analysis as a run graph: copies of a network (or subnetwork) at step k that differ only in SGD
noise, trained to the end as populations (Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the
Lottery Ticket Hypothesis", ICML 2020, Sec. 2-5).

The parent of every copy is an IMP trunk with rewind step k (:class:`lth.lottery.Trunk`): its dense level 0
keeps its state at step k, and level L's mask is the IMP subnetwork found with rewinding to k. Copy ``c`` of
replicate ``r`` starts from

- ``dense``: level 0's state at step k, no mask (the paper's Sec. 3, full networks);
- ``imp``: level 0's state at step k under level L's mask (Sec. 4-5, IMP subnetworks);
- ``oneshot``: level 0's state at step k under a one-shot mask: level 0's final weights pruned once to the density
  IMP reaches at level L (op ``oneshot_levels``: the trunk's strategy applied L times to the same final weights,
  which for magnitude pruning keeps the largest weights at exactly IMP level L's per-layer or global counts, with
  no training between). Only the dense trunk (level 0) trains, whatever L (``imp`` at level L needs IMP levels
  1..L-1; at level 1 the two masks are one). Table 1's ImageNet rows ("Style: One-Shot", 30% density) are level 1
  of a trunk pruned by 70% a level (the ``resnet50_imagenet`` preset);
- ``random-prune``: level 0's state at step k under a random mask with the ticket's per-layer counts (op
  ``random_mask``, the same draw as the ``random-mask`` branch);
- ``random-reinit``: a fresh initialisation (init seed ``REINIT_SEED_BASE + r``, the ``reinit`` branch's
  draw) under the ticket's mask, placed at step k. At k = 0 this is the paper's random reinitialisation
  (Table 2); for k > 0 the paper's slides leave open what "the reinitialised state at step k" is; lth
  replaces the state at step k by a fresh draw (docs/stability.md);
- ``omp``: level 0's state at step k under a one-shot magnitude mask of level 0's *trained* weights with level
  L's density (op ``oneshot``, the ``oneshot`` branch's draw): one-shot pruning beside IMP, whose training
  trajectories Ma et al. draw on the loss contours (NeurIPS 2021, Figs. 4-5, seed 002).

- ``ticket``: a state and mask given as tensors (a given node, :mod:`lth.graph.given`, stored under
  ``<root>/ticket_<hash>/``), placed at step k: the copies start from exactly those weights under that mask.

Every copy of one replicate shares the start (weights and mask); copies differ only in their data-order and
augmentation seeds, ``COPY_SEED_BASE + 1000 r + c``. Each trains from step k for the remaining T - k steps on
the schedule of step k, or, with ``schedule_from_zero``, for T steps with the schedule restarted at step 0
(the paper's Fig. 4 control). Momentum buffers start at zero (the state at k holds weights only).

Store layout::

    <root>/stability_<hash>/replicate_<r>/level_<l>/copy_<c>/      one trained copy (a run)
    <root>/stability_<hash>/replicate_<r>/level_<l>/pairs.json     the paths' errors (lth.stability.analysis)

The hash covers the trunk (spec, pruning, rewind k), the subnetwork and ``schedule_from_zero``; for a ticket, the
spec, k and the given node (the tensors' hash) instead of the trunk.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Ref, Setup, op
from lth.lottery.branches.base import REINIT_SEED_BASE
from lth.lottery.trunk import Trunk, level_hparams
from lth.prune import full_mask, prune
from lth.spec import Step, spec_hash
from lth.store.paths import experiment_dir

SUBNETWORKS = ("dense", "imp", "oneshot", "random-prune", "random-reinit", "omp")
TICKET = "ticket"  # the subnetwork of copies that start from a ticket given as tensors (Stability.given)
COPY_SEED_BASE = 2_000_000  # data-order / augmentation seeds of copies: never a replicate's own seed


def copy_seed(replicate: int, copy: int) -> int:
    """The data-order and augmentation seed of copy ``copy`` of replicate ``replicate``."""
    return COPY_SEED_BASE + 1000 * replicate + copy


@op("oneshot_levels")
def oneshot_levels(ctx: OpContext, state: dict, dense_final: dict, *, pruning: dict, replicate: int,
                   level: int) -> Setup:
    """``state`` under ``dense_final`` pruned once to IMP level ``level``'s density: the trunk's pruning applied
    ``level`` times in a row to the same weights (each level's hyperparameters as IMP's, no training between)."""
    weights = {k: dense_final[k] for k in ctx.prunable}
    mask = full_mask(weights, list(ctx.kinds))
    for lv in range(1, level + 1):
        mask = prune(weights, mask, level_hparams(pruning, replicate, lv), ctx.kinds)
    return Setup(state, mask)


@dataclass(frozen=True)
class Stability:
    """One instability experiment: a trunk (its rewind step is k), a subnetwork kind, and the schedule choice.

    ``same_noise`` gives every copy copy 0's seeds (a check: such copies are identical and have instability
    exactly 0); it is part of the hash, so it never mixes with real copies. ``given``: a given node
    (:func:`lth.graph.given_node`) holding the ticket the copies start from (subnetwork ``ticket``); the trunk then
    only carries the spec, k, the store and the preset's name (none of its levels is trained)."""

    trunk: Trunk
    subnetwork: str = "dense"
    schedule_from_zero: bool = False
    same_noise: bool = False
    given: Node | None = None

    def __post_init__(self) -> None:
        if (self.given is not None) != (self.subnetwork == TICKET):
            raise ValueError("a ticket's copies are subnetwork 'ticket', and subnetwork 'ticket' needs a given node")
        if self.subnetwork not in SUBNETWORKS and self.given is None:
            allowed = ", ".join(SUBNETWORKS)
            raise UserError(f"{ref('subnetwork')} {self.subnetwork!r}: unknown value; allowed: {allowed}",
                            value=self.subnetwork, allowed=allowed)

    @property
    def k(self) -> Step:
        """The step the copies are made at (the trunk's rewind step)."""
        return self.trunk.rewind

    @property
    def digest(self) -> str:
        """The experiment's hash (names its directory)."""
        extra: dict[str, Any] = {"trunk": self.trunk.digest, "subnetwork": self.subnetwork}
        if self.given is not None:  # the trunk's pruning plays no part: the spec, k and the tensors do
            extra = {"rewind": str(self.k), "ticket": self.given.digest, "subnetwork": self.subnetwork}
        if self.schedule_from_zero:
            extra["schedule_from_zero"] = True
        if self.same_noise:
            extra["same_noise"] = True
        return spec_hash(extra) if self.given is None else spec_hash(self.trunk.spec, extra)

    @property
    def root(self) -> Path:
        """``<root>/stability_<hash>``."""
        return experiment_dir(self.trunk.root, "stability", self.digest)

    def level_dir(self, replicate: int, level: int) -> Path:
        """``<root>/stability_<hash>/replicate_<r>/level_<l>`` (holds the copies and ``pairs.json``)."""
        return self.root / f"replicate_{replicate}" / f"level_{level}"

    def copy_dir(self, replicate: int, level: int, copy: int) -> Path:
        """``.../level_<l>/copy_<c>``."""
        return self.level_dir(replicate, level) / f"copy_{copy}"

    def meta(self, replicate: int, level: int, copy: int) -> dict[str, Any]:
        """What a copy's spec.json records beside its hyperparameters."""
        out = {"kind": "stability", "preset": self.trunk.preset, "level": level, "rewind": str(self.k),
               "subnetwork": self.subnetwork, "copy": copy, "schedule_from_zero": self.schedule_from_zero}
        if self.given is not None:
            return {**out, "ticket": str(self.given.path)}
        return {**out, "pruning": self.trunk.pruning.record(),
                "parent_trunk": str(self.trunk.level_dir(replicate, 0).parent.parent)}

    def recipe(self, replicate: int, level: int) -> Recipe:
        """The start (state at k) and mask shared by every copy of one replicate and level."""
        t, r = self.trunk, replicate
        if self.given is not None:  # the given state, under the given mask (none: dense)
            start = Ref(self.given, "state:final")
            return Recipe.make("ticket", start, *([Ref(self.given, "mask")] if self.given.meta.get("mask") else []))
        if t.pretrain is not None and t.pretrain.sparse and level < 1 and self.subnetwork != "random-reinit":
            raise UserError(f"{ref('subnetwork')} {self.subnetwork} at level 0 with {ref('pretrain_sparse')}: sparse "
                            "pretraining is per pruned level (1, 2, ...); level 0 has none to start from")
        if self.subnetwork == "dense":
            return Recipe.make("ticket", t.start_ref(r, level))
        if self.subnetwork == "oneshot":  # the dense trunk's final weights pruned once: no IMP level trains
            return Recipe.make("oneshot_levels", t.start_ref(r, level), Ref(t.node(r, 0), "state:final"),
                               pruning=t.pruning.record(), replicate=r, level=level)
        ticket = Ref(t.node(r, level), "mask")
        if self.subnetwork == "imp":
            return Recipe.make("ticket", t.start_ref(r, level), ticket)
        if self.subnetwork == "random-prune":
            return Recipe.make("random_mask", t.start_ref(r, level), ticket, mode="layerwise", seed=0, replicate=r,
                               level=level)
        if self.subnetwork == "omp":  # one-shot: level 0's trained weights pruned at once to the ticket's density
            return Recipe.make("oneshot", t.start_ref(r, level), Ref(t.node(r, 0), "state:final"), ticket,
                               pruning=t.pruning.record(), replicate=r, level=level)
        return Recipe.make("mask_only", ticket)  # random-reinit: a fresh init (the spec's init seed)

    def node(self, replicate: int, level: int, copy: int, trajectory: tuple[tuple[str, Step], ...] = ()) -> Node:
        """Copy ``copy`` of replicate ``replicate`` at trunk level ``level`` (``dense``: level 0). It keeps its
        start state as ``start`` and the states named in ``trajectory`` (for landscapes)."""
        if self.subnetwork in ("dense", TICKET) and level != 0:
            raise UserError(f"{ref('levels')}: the {'dense network' if self.subnetwork == 'dense' else 'ticket'} is "
                            f"level 0; got level {level}")
        spec = self.trunk.spec
        seed = copy_seed(replicate, 0 if self.same_noise else copy)
        train = dataclasses.replace(spec.train, order_seed=seed, augment_seed=seed)
        if self.subnetwork == "random-reinit":
            train = dataclasses.replace(train, init_seed=REINIT_SEED_BASE + replicate)
        spec = dataclasses.replace(spec, train=train)
        start = Step(0, "it") if self.schedule_from_zero else self.k
        keep = tuple(sorted({("start", start), *trajectory}, key=lambda kv: (kv[1].unit, kv[1].count, kv[0])))
        return Node(spec, replicate, self.copy_dir(replicate, level, copy), start_step=start,
                    setup=self.recipe(replicate, level), keep=keep,
                    meta=self.meta(replicate, level, copy))


def trajectory_steps(start: int, total: int, points: int) -> tuple[tuple[str, Step], ...]:
    """``points`` evenly spaced steps strictly between ``start`` and ``total`` (iterations) to keep as
    ``(name, step)``: the states a landscape projects as a trajectory (init and final are always kept)."""
    if points <= 0 or total - start < 2:
        return ()
    its = sorted({start + round((total - start) * (i + 1) / (points + 1)) for i in range(points)} - {start, total})
    return tuple((f"{i}it", Step(i, "it")) for i in its)


@dataclass
class StabilityPlan:
    """Stability experiments over rewind steps k, subnetworks and trunk levels; ``copies`` copies per
    replicate. Level 0 is the dense network (recorded as subnetwork ``dense``); levels >= 1 are the
    non-dense subnetworks at that trunk level. With ``given`` (a ticket as a given node), the only cell is the
    ticket's (subnetwork ``ticket``, level 0) per trunk, i.e. per k."""

    trunks: list[Trunk]
    subnetworks: list[str]
    levels: list[int]
    replicates: int = 1
    copies: int = 2
    schedule_from_zero: bool = False
    same_noise: bool = False
    trajectory_points: int = 4
    steps_per_epoch: int = 1
    given: Node | None = None

    def __post_init__(self) -> None:
        self.trunks = list({t.digest: t for t in self.trunks}.values())
        if self.given is not None:
            self.subnetworks, self.levels = [TICKET], [0]
        bad = [s for s in self.subnetworks if s not in SUBNETWORKS and not (s == TICKET and self.given is not None)]
        if bad:
            raise UserError(f"{ref('subnetwork')} {bad[0]!r}: unknown value; allowed: {', '.join(SUBNETWORKS)}",
                            value=bad[0], allowed=", ".join(SUBNETWORKS))
        if self.copies < 2:
            raise UserError(f"{ref('copies')} {self.copies}: need at least 2 copies to make a path; allowed: a whole "
                            "number >= 2", value=self.copies, allowed="a whole number >= 2")
        if any(s not in ("dense", TICKET) for s in self.subnetworks) and not any(lv > 0 for lv in self.levels):
            raise UserError(f"{ref('levels')} {','.join(map(str, self.levels))}: subnetworks "
                            f"{', '.join(s for s in self.subnetworks if s != 'dense')} need trunk levels >= 1")

    def cells(self) -> list[tuple[Stability, int]]:
        """Every (experiment, level): dense at level 0 (when asked for, or when level 0 is in ``levels``),
        every other subnetwork at each level >= 1; with a ticket, the ticket's cell at each k."""
        if self.given is not None:
            return [(Stability(t, TICKET, self.schedule_from_zero, self.same_noise, self.given), 0)
                    for t in self.trunks]
        out = []
        for t in self.trunks:
            for sub in dict.fromkeys(["dense", *self.subnetworks]):
                exp = Stability(t, sub, self.schedule_from_zero, self.same_noise)
                if sub == "dense":
                    if "dense" in self.subnetworks or 0 in self.levels:
                        out.append((exp, 0))
                else:
                    out.extend((exp, lv) for lv in self.levels if lv > 0)
        return out

    def _trajectory(self, exp: Stability) -> tuple[tuple[str, Step], ...]:
        total = exp.trunk.spec.train.training_steps.iterations(self.steps_per_epoch)
        start = 0 if exp.schedule_from_zero else exp.k.iterations(self.steps_per_epoch)
        return trajectory_steps(start, total, self.trajectory_points)

    def copy_nodes(self) -> list[Node]:
        """Every copy of every cell and replicate (their trunk ancestors come with them in the executor)."""
        return [exp.node(r, lv, c, self._trajectory(exp)) for exp, lv in self.cells()
                for r in range(self.replicates) for c in range(self.copies)]

    def pairs(self) -> list[tuple[Stability, int, int, tuple[int, int]]]:
        """``(experiment, level, replicate, (c1, c2))`` for every pair of copies (c1 < c2)."""
        return [(exp, lv, r, pair) for exp, lv in self.cells() for r in range(self.replicates)
                for pair in itertools.combinations(range(self.copies), 2)]
