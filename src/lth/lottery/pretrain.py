"""Pretraining the rewinding point (Frankle, Schwab & Morcos, ICLR 2020, Section 5, "data dependence").

Instead of rewinding a ticket to level 0's state at step k, IMP rewinds it to the state of a network that was
trained for E steps (``Pretraining.steps``; default k) on a *pretraining task* from the same initialisation W_0,
and trains on from step k of the schedule: the standard task (a control that
re-creates W_k), random labels (fixed per example), self-supervised rotation (a 4-way task: which of 0, 90, 180,
270 degrees the image was turned by; its head is replaced by a fresh 10-way head afterwards), 4x blurred images,
or rotation of blurred images. With ``sparse`` the ticket itself is pretrained: level l's pretraining trains
under level l's IMP mask (the paper's "sparse pretraining").

The data transforms are :class:`lth.spec.DataHparams` options (``random_labels_fraction``, ``blur``,
``rotation_task``; see ``lth.data.datasets``). This module maps a task onto them and holds the op
``pretrain_head`` (the pretrained state with its head replaced, for the rotation tasks); the pretraining run's start
(``pretrain_init``: level 0's init W_0, the head fitted to the task's class count, and for sparse pretraining the
level's mask) is an op beside ``imp`` in ``lottery/trunk.py``.
The nodes themselves are planned by :class:`lth.lottery.trunk.Trunk`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lth.errors import UserError, ref
from lth.graph import OpContext, Setup, op
from lth.spec import DataHparams, Step, TrainSpec

TASKS = ("standard", "random-labels", "rotation", "blur", "rotation+blur")


@dataclass(frozen=True)
class Pretraining:
    """What the rewinding point is pretrained on, and for how long. The pretrained state takes the place of level
    0's state at the trunk's rewind step k: the levels train on from it at step k of the schedule. ``steps`` (E) is
    the pretraining run's length; None trains it for k steps (the default, and how lth did it before E was an
    option). Frankle, Schwab & Morcos (2020, Section 5) pretrain for E epochs (up to 40) and compare with
    rewinding to k = 500 iterations (1.25 epochs): E and k are apart."""

    task: str = "standard"
    sparse: bool = False  # pretrain each level's ticket under its mask (else one dense pretraining per replicate)
    steps: Step | None = None  # E, the pretraining run's length (None: the rewind step k)

    def validate(self) -> None:
        """UserError for an unknown task or a length under one step."""
        if self.task not in TASKS:
            raise UserError(f"{ref('pretrain_task')}: unknown value {self.task!r}; allowed: {', '.join(TASKS)}",
                            value=self.task, allowed=", ".join(TASKS))
        if self.steps is not None and self.steps.count < 1:
            raise UserError(f"{ref('pretrain_length')} {self.steps}: bad value; allowed: at least 1it",
                            value=str(self.steps), allowed="at least 1it")

    def length(self, rewind: Step) -> Step:
        """The pretraining run's length: ``steps`` (E), else the rewind step k."""
        return rewind if self.steps is None else self.steps

    @property
    def rotation(self) -> bool:
        """Whether the task has its own (4-way) head, replaced by a fresh one afterwards."""
        return "rotation" in self.task

    def identity(self) -> dict[str, object]:
        """What the trunk's hash records of it (the length only when given, so trunks pretrained for k keep their
        hash; the rotation tasks' per-presentation rotations, so no trunk stored with fixed ones is taken for
        one)."""
        out: dict[str, object] = {"task": self.task, "sparse": self.sparse}
        if self.rotation:  # since 2026-12: rotations drawn afresh per presentation (runs before had them fixed)
            out["rotations"] = "per-presentation"
        if self.steps is not None:
            out["steps"] = str(self.steps)
        return out


def task_data(data: DataHparams, task: str) -> DataHparams:
    """The data options of a pretraining task (the trunk's data otherwise unchanged): random labels redraw every
    training label once, fixed per example by ``data_seed`` (``random_labels_fraction=1``); blur is 4x average
    downsampling and upsampling back; rotation turns each image by n quarter turns, label n (the training images'
    n is drawn afresh at every presentation by the engine's batches: ``lth.engine.batches.EpochBatches``)."""
    if task not in TASKS:
        raise UserError(f"{ref('pretrain_task')}: unknown value {task!r}; allowed: {', '.join(TASKS)}", value=task,
                        allowed=", ".join(TASKS))
    changes: dict[str, object] = {}
    if task == "random-labels":
        changes["random_labels_fraction"] = 1.0
    if "blur" in task:
        changes["blur"] = True
    if "rotation" in task:
        changes["rotation_task"] = True
    return dataclasses.replace(data, **changes)


def pretrain_spec(spec: TrainSpec, task: str, steps: Step) -> TrainSpec:
    """The pretraining run's spec: the trunk's model, optimiser, seeds and schedule (milestones and warmup are
    absolute steps, so the learning rate over the first ``steps`` is the trunk's), the task's data, trained for
    ``steps`` (E, or the rewind step k)."""
    train = dataclasses.replace(spec.train, training_steps=steps)
    return dataclasses.replace(spec, data=task_data(spec.data, task), train=train)


def fit_heads(ctx: OpContext, state: dict, mask: dict | None) -> tuple[dict, dict | None, bool]:
    """``state`` (and ``mask``) with the output layer taken from a fresh initialisation of the node's network
    (its init seed; its mask all ones) where the shapes differ: a 10-way head on the 4-way rotation task."""
    from lth.prune.perturb import head_names, replace_head

    fresh = ctx.fresh_state()
    heads = head_names(ctx._probe) if ctx._probe is not None else []
    if not any(state[k].shape != fresh[k].shape for k in heads):
        return state, mask, False
    if mask is not None:
        mask = {k: (torch.ones_like(fresh[k], dtype=torch.bool) if k in heads else v) for k, v in mask.items()}
    return replace_head(state, fresh, heads), mask, True


@op("pretrain_head")
def pretrain_head(ctx: OpContext, pretrained: dict) -> Setup:
    """The pretrained state with its output layer replaced by a fresh one of the node's class count (drawn from
    the node's init seed, i.e. level 0's initial head): after the rotation task, the network is trained on the
    real labels with a new classifier (Frankle et al. 2020, Section 5)."""
    state, _, replaced = fit_heads(ctx, pretrained, None)
    return Setup(state, None, {"head_replaced": replaced})
