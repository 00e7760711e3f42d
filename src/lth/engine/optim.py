"""Optimisers over stacked population tensors, and learning-rate schedules.

Members are partitioned into *clock groups*: members whose learning rate and step count agree at every step
(the same schedule and the same start step). Each group's update is one call of PyTorch's fused SGD or Adam
kernel over views of the stacked tensors, with its learning rate as a device tensor written by the schedule,
so the whole update stays capturable in a CUDA graph, and a population of replicates is a single kernel call.
Each member's update depends only on its own gradient, state, learning rate and step count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lth.spec import TrainHparams


def lr_schedule(hp: TrainHparams, total: int, steps_per_epoch: int) -> Tensor:
    """The learning rate at every iteration ``0..total`` (float64): linear warmup from 0, then drops by ``gamma``
    at each milestone; with ``final_lr``, the base rate falls linearly from ``lr`` at the end of the warmup to
    ``final_lr`` at the end of training (``training_steps``; TensorFlow's polynomial decay of power 1, as Inception-v3
    in Frankle et al. 2020), the milestones' drops on top. One vectorised pass, so long recipes with many clock
    groups build their tables fast."""
    it = torch.arange(total + 1, dtype=torch.float64)
    drops = torch.zeros_like(it)
    for m in hp.milestones:
        drops += (it >= m.iterations(steps_per_epoch)).double()
    warm = hp.warmup_steps.iterations(steps_per_epoch)
    base = torch.full_like(it, hp.lr)
    if hp.final_lr is not None:
        end = hp.training_steps.iterations(steps_per_epoch)
        frac = torch.clamp((it - warm) / max(1, end - warm), 0.0, 1.0)
        base = hp.lr + (hp.final_lr - hp.lr) * frac
    lr = base * torch.pow(torch.tensor(hp.gamma, dtype=torch.float64), drops)
    if warm > 0:
        lr = lr * torch.clamp((it + 1) / warm, max=1.0)
    return lr


@dataclass(frozen=True)
class ClockKey:
    """What members of one clock group share."""

    start: int
    lr: float
    milestones: tuple[int, ...]
    gamma: float
    warmup: int
    momentum: float
    nesterov: bool
    weight_decay: float
    final_lr: float | None = None
    end: int = 0  # where a linear decay ends (0 without one)


def clock_key(hp: TrainHparams, start: int, steps_per_epoch: int) -> ClockKey:
    """The clock of a member that starts at iteration ``start``."""
    return ClockKey(start, hp.lr, tuple(m.iterations(steps_per_epoch) for m in hp.milestones), hp.gamma,
                    hp.warmup_steps.iterations(steps_per_epoch), hp.momentum, hp.nesterov, hp.weight_decay,
                    hp.final_lr, hp.training_steps.iterations(steps_per_epoch) if hp.final_lr is not None else 0)


class PopOptimizer:
    """SGD (momentum, Nesterov) or Adam over stacked tensors ``[N, ...]``, one fused call per clock group."""

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, kind: str, params: list[Tensor], groups: list[list[int]], hps: list[TrainHparams],
                 total: int, steps_per_epoch: int, starts: list[int]) -> None:
        self.kind = kind
        self.params = params
        self.groups = groups
        self.device = params[0].device
        self.n = params[0].shape[0]
        self.hp = [hps[g[0]] for g in groups]
        if kind == "adam":
            self.exp_avg = [torch.zeros_like(p) for p in params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        else:
            self.momentum_buf = [torch.zeros_like(p) for p in params]
        # One step counter per clock group (float tensors, as the fused kernels expect).
        self.steps = [torch.zeros((), device=self.device) for _ in groups]
        # lr_table[it, g] for every iteration of training (schedules written once, read inside the step).
        columns = []
        for gi, g in enumerate(groups):
            lr = lr_schedule(self.hp[gi], total, steps_per_epoch)
            lr[: starts[g[0]]] = 0.0  # before a member joins, its slot does not learn
            columns.append(lr)
        table = torch.stack(columns, dim=1).float()
        self.lr_table = table.to(self.device)
        self.lr_rows = table.tolist()  # the same, as Python floats, for eager steps
        self.lr_now = torch.zeros(len(groups), device=self.device)  # written inside a captured step
        self.lr_host: list[float] | None = None
        # Whole tensors in one fused call, except for CPU populations: there each member is its own tensor, as when
        # it trains alone (the vectorised kernels round an element by its position within the tensor).
        self.whole = len(groups) == 1 and len(groups[0]) == self.n and (self.n == 1 or self.device.type != "cpu")

    def _views(self, tensors: list[Tensor], members: list[int]) -> list[Tensor]:
        if self.whole:
            return tensors
        return [t[i] for t in tensors for i in members]

    def set_lr(self, it: Tensor | int) -> None:
        """Set the learning rates of iteration ``it``: an int (eager: Python floats, no device work) or a
        1-element device tensor (inside a CUDA graph: read from the device table)."""
        if isinstance(it, int):
            self.lr_host = self.lr_rows[it]
        else:
            self.lr_host = None
            self.lr_now.copy_(self.lr_table.index_select(0, it).view(-1))

    @torch.no_grad()
    def step(self, grads: list[Tensor]) -> None:
        """Apply one update with the current learning rates (call :meth:`set_lr` first)."""
        for gi, members in enumerate(self.groups):
            hp = self.hp[gi]
            self.steps[gi].add_(1)
            ps, gs = self._views(self.params, members), self._views(grads, members)
            lr = self.lr_now[gi] if self.lr_host is None else self.lr_host[gi]
            if self.kind == "adam":
                steps = [self.steps[gi]] * len(ps)
                torch._fused_adam_(ps, gs, self._views(self.exp_avg, members), self._views(self.exp_avg_sq, members),
                                   [], steps, lr=lr, beta1=self.BETAS[0], beta2=self.BETAS[1],
                                   weight_decay=hp.weight_decay, eps=self.EPS, amsgrad=False, maximize=False)
            else:
                torch._fused_sgd_(ps, gs, self._views(self.momentum_buf, members) if hp.momentum else [],
                                  weight_decay=hp.weight_decay, momentum=hp.momentum, lr=lr, dampening=0.0,
                                  nesterov=hp.nesterov, maximize=False, is_first_step=False)

    # -- per-member state (checkpoints)
    def state_names(self) -> list[str]:
        """Names of the per-parameter state tensors."""
        return ["exp_avg", "exp_avg_sq"] if self.kind == "adam" else ["momentum_buf"]

    def member_state(self, i: int) -> dict[str, list[Tensor] | float]:
        """Member ``i``'s optimiser state (copies) and its step count."""
        out: dict[str, list[Tensor] | float] = {k: [t[i].clone() for t in getattr(self, k)] for k in self.state_names()}
        out["step"] = float(self.steps[self._group_of(i)].item())
        return out

    @torch.no_grad()
    def load_member(self, i: int, state: dict | None) -> None:
        """Reset member ``i``'s state to zero (``None``) or to a saved :meth:`member_state`.

        The step count is shared by the member's clock group; members of a group start together."""
        for k in self.state_names():
            for j, t in enumerate(getattr(self, k)):
                if state is None:
                    t[i].zero_()
                else:
                    t[i].copy_(state[k][j])
        self.steps[self._group_of(i)].fill_(0.0 if state is None else float(state["step"]))

    def _group_of(self, i: int) -> int:
        return next(gi for gi, g in enumerate(self.groups) if i in g)
