"""Branches: the ablations the lottery-ticket papers run on a trunk's ticket to show what makes it win.

Each branch is a plain function ``(ctx, replicate, level) -> Job`` in the one registry :data:`BRANCHES`; its
runs live beside the trunk at ``lottery_<hash>/replicate_<r>/branch_<name>_<hash>/level_<l>``. All levels and
replicates of a branch go to the executor at once, so they train as populations without being asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.engine.batches import generator, mix_seed
from lth.engine.train import Job
from lth.errors import UserError
from lth.executor import Executor
from lth.lottery.trunk import Trunk, level_mask, probe_model, require_level, start_state, trained_weights
from lth.models import build_model
from lth.prune import density, kinds_of, layer_densities, prune_to_density
from lth.prune.ablations import permute_mask, random_mask_like, sample_dn, scaled_width_for_params
from lth.spec import TrainSpec, help_field, replace_fields, spec_hash, to_dict
from lth.store import run_path

# Distinct seed ranges, so a branch's fresh draws never coincide with a trunk's replicate seeds.
REINIT_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class BranchOptions:
    """Options of a branch (only those its function reads matter; all count in its directory's hash)."""

    branch_seed: int = help_field(0, "seed of the branch's random draws (new initialisation, mask, D_n samples)")
    mask_mode: str = help_field("layerwise", "random-mask: same per-layer counts, or the same global count",
                                choices=("layerwise", "global"))
    set: tuple[str, ...] = help_field((), "retrain: training hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")

    def validate(self) -> None:
        """UserError (one line naming the flag) for a value outside a field's choices."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise UserError(f"--{f.name.replace('_', '-')} {getattr(self, f.name)!r}: unknown value; "
                                f"allowed: {', '.join(choices)}")


@dataclass
class BranchContext:
    """What a branch function needs to know about the trunk."""

    trunk: Trunk
    name: str
    options: BranchOptions
    prunable: list[str]
    kinds: dict[str, str]
    rewind_it: int
    example_shape: tuple[int, ...]
    num_classes: int

    def run_dir(self, replicate: int, level: int) -> Path:
        """``.../replicate_<r>/branch_<name>_<hash>/level_<l>``."""
        return run_path(self.trunk.root, "lottery", self.trunk.digest, replicate, level,
                        branch=f"{self.name}_{spec_hash(self.options)}")

    def gen(self, replicate: int, level: int) -> torch.Generator:
        """The branch's own generator for one replicate and level."""
        return generator(torch.device("cpu"), 3, self.options.branch_seed, replicate, level)

    def ticket(self, replicate: int, level: int) -> dict[str, Tensor]:
        """The trunk's mask at this level."""
        return level_mask(self.trunk, replicate, level, self.prunable, self.kinds)

    def job(self, replicate: int, level: int, spec: TrainSpec | None = None, **kw: Any) -> Job:
        """A Job in this branch's directory, recording the branch in spec.json."""
        meta = {**self.trunk.meta(replicate, level), "kind": "branch", "branch": self.name,
                "branch_options": to_dict(self.options)}
        return Job(spec or self.trunk.spec, replicate, self.run_dir(replicate, level), meta=meta, **kw)

    def rewound(self, replicate: int, level: int, mask: dict[str, Tensor], state: dict | None = None) -> Job:
        """The trunk's start (level 0 at step k) with another mask or weights, trained on from k."""
        state = state if state is not None else start_state(self.trunk, replicate, self.rewind_it)
        return self.job(replicate, level, start_step=self.rewind_it, start_state=state, mask=mask,
                        state_names={self.rewind_it: "rewind"} if self.rewind_it else {})


def reinit(ctx: BranchContext, r: int, level: int) -> Job:
    """The ticket's mask with a fresh random initialisation (a new seed), trained from step 0."""
    t = ctx.trunk.spec.train
    spec = dataclasses.replace(ctx.trunk.spec, train=dataclasses.replace(
        t, init_seed=REINIT_SEED_BASE + 1000 * ctx.options.branch_seed + r))
    return ctx.job(r, level, spec=spec, mask=ctx.ticket(r, level))


def random_mask(ctx: BranchContext, r: int, level: int) -> Job:
    """A random mask of the ticket's per-layer (or global) density, with the trunk's rewound weights."""
    return ctx.rewound(r, level, random_mask_like(ctx.ticket(r, level), ctx.gen(r, level), ctx.options.mask_mode))


def _with_weights(state: dict[str, Tensor], weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {**state, **{k: v.to(state[k].dtype) for k, v in weights.items()}}


def dn_reinit(ctx: BranchContext, r: int, level: int) -> Job:
    """The ticket's mask; each kept weight drawn uniformly from the ticket's own nonzero starting weights (D_n)."""
    mask = ctx.ticket(r, level)
    state = start_state(ctx.trunk, r, ctx.rewind_it)
    drawn = sample_dn({k: state[k] for k in ctx.prunable}, mask, ctx.gen(r, level))
    return ctx.rewound(r, level, mask, _with_weights(state, drawn))


def remask(ctx: BranchContext, r: int, level: int) -> Job:
    """Each layer's mask permuted (same count per layer), its weights drawn from the ticket's D_n."""
    mask = ctx.ticket(r, level)
    g = ctx.gen(r, level)
    state = start_state(ctx.trunk, r, ctx.rewind_it)
    drawn = sample_dn({k: state[k] for k in ctx.prunable}, mask, g)
    moved = permute_mask(mask, g)
    weights = {}
    for k in ctx.prunable:
        w = torch.zeros_like(drawn[k])
        w[moved[k]] = drawn[k][mask[k]]
        weights[k] = w
    return ctx.rewound(r, level, moved, _with_weights(state, weights))


def small_dense(ctx: BranchContext, r: int, level: int) -> Job:
    """A dense network of the same family, widths scaled so its parameter count matches the ticket's."""
    spec = ctx.trunk.spec
    mask = ctx.ticket(r, level)
    dense = probe_model(spec, ctx.example_shape, ctx.num_classes)
    pruned_away = sum(int((~m).sum()) for m in mask.values())
    target = dense.num_params() - pruned_away

    def count(width: float) -> int:
        return build_model(spec.model.model, 1, ctx.example_shape, ctx.num_classes, spec.model.norm,
                           width).num_params()
    width = scaled_width_for_params(target, count)
    small = dataclasses.replace(spec, model=dataclasses.replace(spec.model, width=width))
    return ctx.job(r, level, spec=small)


def retrain(ctx: BranchContext, r: int, level: int) -> Job:
    """The ticket (mask and rewound weights) trained with other hyperparameters (``--set lr=0.01``)."""
    if not ctx.options.set:
        raise UserError("retrain needs --set KEY=VALUE (e.g. --set lr=0.01)")
    overrides = {}
    for item in ctx.options.set:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. lr=0.01")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = value.strip()
    spec = replace_fields(ctx.trunk.spec, overrides)
    spec.validate()
    state = start_state(ctx.trunk, r, ctx.rewind_it)
    return ctx.job(r, level, spec=spec, start_step=ctx.rewind_it, start_state=state, mask=ctx.ticket(r, level),
                   state_names={ctx.rewind_it: "rewind"} if ctx.rewind_it else {})


def oneshot(ctx: BranchContext, r: int, level: int) -> Job:
    """One-shot magnitude pruning of the dense network (level 0's final weights) straight to the ticket's
    density, rewound the same way (IMP against one-shot)."""
    ticket = ctx.ticket(r, level)
    target = density(ticket)
    if target >= 1.0:  # level 0: nothing to prune
        return ctx.rewound(r, level, ticket)
    weights = trained_weights(ctx.trunk.level_dir(r, 0), ctx.prunable)
    hp = ctx.trunk.pruning
    if hp.strategy == "random":  # as in the trunk: a fresh draw per replicate and level
        hp = dataclasses.replace(hp, seed=mix_seed(hp.seed, r, level) % (2**31))
    mask = prune_to_density(weights, hp, ctx.kinds, target)
    return ctx.rewound(r, level, mask)


BRANCHES: dict[str, Callable[[BranchContext, int, int], Job]] = {
    "reinit": reinit,
    "random-mask": random_mask,
    "dn-reinit": dn_reinit,
    "remask": remask,
    "small-dense": small_dense,
    "retrain": retrain,
    "oneshot": oneshot,
}


def parse_levels(text: str) -> list[int]:
    """``0-15`` or ``3,5,8`` (or a mix: ``0-3,8``) -> sorted level numbers."""
    out: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ValueError
                out.update(range(lo, hi + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise UserError(f"--levels {text!r}: expected a range like 0-15 or a list like 3,5,8") from None
    if not out or min(out) < 0:
        raise UserError(f"--levels {text!r}: expected levels >= 0, e.g. 0-15 or 3,5,8")
    return sorted(out)


def run_branch(name: str, trunk: Trunk, levels: list[int], replicates: int, options: BranchOptions,
               executor: Executor, trunk_command: str) -> list[dict[str, Any]]:
    """Train branch ``name`` at ``levels`` of every replicate of ``trunk``; returns the JSON records."""
    if name not in BRANCHES:
        raise UserError(f"unknown branch {name!r}; allowed: {', '.join(BRANCHES)}")
    options.validate()
    for r in range(replicates):
        for level in levels:
            require_level(trunk, r, level, trunk_command)
    data = executor.dataset(trunk.spec.data)
    model = probe_model(trunk.spec, data.example_shape, data.num_classes)
    ctx = BranchContext(trunk, name, options, model.prunable(), kinds_of(model),
                        trunk.rewind_iteration(data.train_x.shape[0]), data.example_shape, data.num_classes)
    jobs = [BRANCHES[name](ctx, r, level) for r in range(replicates) for level in levels]
    records = executor.run(jobs)
    out = []
    for job, rec in zip(jobs, records, strict=True):
        level = job.meta["level"]
        ticket = ctx.ticket(job.replicate, level) if level > 0 else None
        rec = {**rec, "branch": name, "level": level, "rewind": str(trunk.rewind), "rewind_iteration": ctx.rewind_it}
        if job.mask is not None:
            rec["density"] = density(job.mask)
            rec["layer_densities"] = layer_densities(job.mask)
        elif ticket is not None:  # small-dense: dense, at the ticket's parameter count
            rec["density"] = 1.0
            rec["ticket_density"] = density(ticket)
            rec["width"] = job.spec.model.width
        else:
            rec["density"] = 1.0
        out.append(rec)
    return out

