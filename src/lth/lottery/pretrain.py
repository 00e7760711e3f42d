"""Pretraining the rewinding point (Frankle, Schwab & Morcos, ICLR 2020, Section 5, "data dependence").

Instead of rewinding a ticket to level 0's state at step k, IMP rewinds it to the state of a network that was
trained for k steps on a *pretraining task* from the same initialisation W_0: the standard task (a control that
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
    """What the rewinding point is pretrained on. The number of steps is the trunk's rewind step k: the
    pretrained state takes the place of level 0's state at step k."""

    task: str = "standard"
    sparse: bool = False  # pretrain each level's ticket under its mask (else one dense pretraining per replicate)

    def validate(self) -> None:
        """UserError for an unknown task."""
        if self.task not in TASKS:
            raise UserError(f"{ref('pretrain_task')}: unknown value {self.task!r}; allowed: {', '.join(TASKS)}",
                            value=self.task, allowed=", ".join(TASKS))

    @property
    def rotation(self) -> bool:
        """Whether the task has its own (4-way) head, replaced by a fresh one afterwards."""
        return "rotation" in self.task

    def identity(self) -> dict[str, object]:
        """What the trunk's hash records of it."""
        return {"task": self.task, "sparse": self.sparse}


def task_data(data: DataHparams, task: str) -> DataHparams:
    """The data options of a pretraining task (the trunk's data otherwise unchanged): random labels redraw every
    training label once, fixed per example by ``data_seed`` (``random_labels_fraction=1``); blur is 4x average
    downsampling and upsampling back; rotation turns each image by n quarter turns, label n."""
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
    absolute steps, so the learning rate over the first k steps is the trunk's), the task's data, trained for
    ``steps`` (= k)."""
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
