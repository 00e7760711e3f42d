"""Iterative magnitude pruning with rewinding: the trunk.

Level 0 trains the dense network and keeps its state at the rewind step k. Level l takes its mask from level
l-1's final weights (a pruning strategy) and starts from level 0's state at step k, masked, training on from k
with the schedule and data order of step k (k = 0it: the original lottery ticket; k > 0: rewinding). Every level
is a run in the store; the levels of all replicates (and of every rewind point asked for) train together as one
population, level after level, and an interrupted trunk resumes at its level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.engine.batches import mix_seed
from lth.engine.train import Job
from lth.errors import UserError
from lth.executor import Executor
from lth.models import build_model
from lth.prune import PruneHparams, density, kinds_of, layer_densities, layer_fraction_map, prune
from lth.spec import Step, TrainSpec, spec_hash, to_dict
from lth.store import RunDir, run_path


@dataclass(frozen=True)
class Trunk:
    """One IMP trunk: a training spec, a pruning recipe and a rewind step (its hash names its directory)."""

    spec: TrainSpec
    pruning: PruneHparams
    rewind: Step
    root: Path
    preset: str = ""  # recorded in spec.json for the analysis; not part of the hash

    @property
    def digest(self) -> str:
        """The trunk's hash: spec, pruning and rewind step (the number of levels does not count)."""
        return spec_hash(self.spec, self.pruning, {"rewind": str(self.rewind)})

    def level_dir(self, replicate: int, level: int) -> Path:
        """``<root>/lottery_<hash>/replicate_<r>/level_<l>``."""
        return run_path(self.root, "lottery", self.digest, replicate, level)

    def steps_per_epoch(self, n_train: int) -> int:
        """Iterations per epoch for this spec's batch size."""
        return n_train // self.spec.data.batch_size

    def rewind_iteration(self, n_train: int) -> int:
        """The rewind step k as an iteration."""
        return self.rewind.iterations(self.steps_per_epoch(n_train))

    def rewind_name(self, k: int) -> str:
        """Name of the state a level starts from: ``init`` at k = 0, else ``rewind``."""
        return "init" if k == 0 else "rewind"

    def meta(self, replicate: int, level: int) -> dict[str, Any]:
        """What spec.json records beside the hyperparameters."""
        return {"kind": "lottery", "preset": self.preset, "level": level, "rewind": str(self.rewind),
                "pruning": to_dict(self.pruning), "trunk": str(self.level_dir(replicate, 0).parent.parent)}


def probe_model(spec: TrainSpec, example_shape: tuple[int, ...], num_classes: int):
    """A single network of the spec's architecture (for names, kinds and counts)."""
    return build_model(spec.model.model, 1, example_shape, num_classes, spec.model.norm, spec.model.width)


def trained_weights(run: Path, prunable: list[str], name: str = "final") -> dict[str, Tensor]:
    """The prunable tensors of a stored state."""
    state = RunDir(run).load_tensors(f"states/{name}.pt")
    return {k: state[k] for k in prunable}


def level_mask(trunk: Trunk, replicate: int, level: int, prunable: list[str], kinds: dict[str, str]) -> dict:
    """Level l's mask: read from the store, or pruned from level l-1's final weights (deterministic)."""
    d = trunk.level_dir(replicate, level)
    if level == 0:  # the dense network: everything kept
        return {k: torch.ones_like(v, dtype=torch.bool) for k, v in trained_weights(d, prunable).items()}
    if (d / "mask.pt").exists():
        return RunDir(d).load_tensors("mask.pt")
    prev = trunk.level_dir(replicate, level - 1)
    if RunDir(prev).done is None:
        raise RuntimeError(f"level {level - 1} of {prev} is not finished")
    weights = trained_weights(prev, prunable)
    old = RunDir(prev).load_tensors("mask.pt") if level > 1 else {k: torch.ones_like(v, dtype=torch.bool)
                                                                  for k, v in weights.items()}
    hp = trunk.pruning
    if hp.strategy == "random":  # a fresh random draw for every replicate and level, all fixed by the seed
        hp = dataclasses.replace(hp, seed=mix_seed(hp.seed, replicate, level) % (2**31))
    return prune(weights, old, hp, kinds)


def start_state(trunk: Trunk, replicate: int, k: int) -> dict[str, Tensor]:
    """Level 0's state at the rewind step."""
    return RunDir(trunk.level_dir(replicate, 0)).load_tensors(f"states/{trunk.rewind_name(k)}.pt")


def level_job(trunk: Trunk, replicate: int, level: int, k: int, prunable: list[str], kinds: dict[str, str]) -> Job:
    """The job that trains one level of one replicate."""
    d = trunk.level_dir(replicate, level)
    if level == 0:
        return Job(trunk.spec, replicate, d, state_names={k: "rewind"} if k else {},
                   meta=trunk.meta(replicate, level))
    mask = level_mask(trunk, replicate, level, prunable, kinds)
    return Job(trunk.spec, replicate, d, start_step=k, start_state=start_state(trunk, replicate, k), mask=mask,
               state_names={k: "rewind"} if k else {}, meta=trunk.meta(replicate, level))


def run_trunks(trunks: list[Trunk], levels: int, replicates: int, executor: Executor) -> list[dict[str, Any]]:
    """Train levels 0..levels of every trunk and replicate; one population per level. Returns JSON records."""
    trunks = list({t.digest: t for t in trunks}.values())  # a rewind step given twice is one trunk
    spec = trunks[0].spec
    data = executor.dataset(spec.data)
    n_train = data.train_x.shape[0]
    total = spec.train.training_steps.iterations(trunks[0].steps_per_epoch(n_train))
    for t in trunks:
        if t.rewind_iteration(n_train) > total:
            raise UserError(f"--rewind {t.rewind}: after the end of training ({spec.train.training_steps} = {total}it)")
    model = probe_model(spec, data.example_shape, data.num_classes)
    prunable, kinds = model.prunable(), kinds_of(model)
    for t in trunks:  # an unknown layer in --pruning-ignore / --pruning-layer-fractions: UserError before training
        layer_fraction_map(t.pruning, kinds)
    for level in range(levels + 1):
        jobs = []
        for t in trunks:
            for r in range(replicates):
                if level > 0 and (RunDir(t.level_dir(r, level - 1)).done or {}).get("status") != "complete":
                    continue  # the level before diverged (or is missing): nothing to prune from
                jobs.append(level_job(t, r, level, t.rewind_iteration(n_train), prunable, kinds))
        executor.run(jobs)
    return [level_record(t, r, level, t.rewind_iteration(n_train)) for t in trunks for r in range(replicates)
            for level in range(levels + 1)]


def level_record(trunk: Trunk, replicate: int, level: int, rewind_iteration: int) -> dict[str, Any]:
    """The CONTRACT's run record of one level, with its level, density and rewind step (beside its iteration)."""
    run = RunDir(trunk.level_dir(replicate, level))
    done = run.done or {}
    rec: dict[str, Any] = {"path": str(run.path), "replicate": replicate, "level": level,
                           "rewind": str(trunk.rewind), "rewind_iteration": rewind_iteration,
                           "status": done.get("status", "missing"),
                           "final_test_accuracy": done.get("final_test_accuracy"), "states": run.states()}
    if (run.path / "mask.pt").exists():
        mask = run.load_tensors("mask.pt")
        rec["mask"] = str(run.path / "mask.pt")
        rec["density"] = density(mask)
        rec["layer_densities"] = layer_densities(mask)
    else:
        rec["density"] = 1.0 if level == 0 else None  # None: never trained (the level before diverged)
    return rec


def existing_levels(trunk: Trunk, replicate: int) -> list[int]:
    """The finished levels of a trunk's replicate."""
    base = trunk.level_dir(replicate, 0).parent
    out = []
    for d in sorted(base.glob("level_*")):
        if RunDir(d).done is not None:
            out.append(int(d.name.split("_")[1]))
    return sorted(out)


def require_level(trunk: Trunk, replicate: int, level: int, command: str) -> None:
    """UserError naming the `lth lottery` command that would make a missing trunk level."""
    status = (RunDir(trunk.level_dir(replicate, level)).done or {}).get("status")
    if status == "diverged":
        raise UserError(f"level {level} of the trunk (replicate {replicate}) diverged: it has no ticket to branch from")
    if status != "complete":
        have = existing_levels(trunk, replicate)
        where = f"it has levels {have[0]}-{have[-1]}" if have else "it does not exist yet"
        raise UserError(f"level {level} of the trunk (replicate {replicate}) is not trained: {where}; "
                        f"run `{command}` first")
