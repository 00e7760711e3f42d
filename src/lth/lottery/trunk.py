"""Iterative magnitude pruning with rewinding: the trunk, as a chain of nodes per replicate and rewind step.

Level 0 trains the dense network and keeps its state at the rewind step k. Level l's recipe is the ``imp`` op:
prune level l-1's final weights inside level l-1's mask (a pruning strategy), start from level 0's state at
step k and train on from k with the schedule and data order of step k (k = 0it: the original lottery ticket;
k > 0: rewinding). With ``pretrain`` (:mod:`lth.lottery.pretrain`) the state at step k is a pretrained one: a
pretraining node per replicate (or per replicate and level, sparse) trained for E steps (default k) on another task from
level 0's initialisation, under ``replicate_<r>/pretrain/`` (and ``pretrain_head/`` where the rotation task's head
is replaced). Level 0 trains normally (it finds the masks). Every level is a node; the executor trains the levels of
all replicates and rewind steps (and any branch whose parents are trained) together as populations, level after level.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lth.engine.batches import mix_seed
from lth.errors import UserError, ref
from lth.graph import Node, OpContext, Recipe, Ref, Setup, op
from lth.lottery.pretrain import Pretraining, fit_heads, pretrain_spec
from lth.prune import PruneHparams, density, effective_density, layer_densities, prune
from lth.spec import Step, TrainSpec, from_dict, past_end, spec_hash, to_dict
from lth.store import RunDir, run_path


@dataclass(frozen=True)
class Trunk:
    """One IMP trunk: a training spec, a pruning recipe and a rewind step (its hash names its directory)."""

    spec: TrainSpec
    pruning: PruneHparams
    rewind: Step
    root: Path
    preset: str = ""  # recorded in spec.json for the analysis; not part of the hash
    pretrain: Pretraining | None = None  # the state at step k is pretrained (None: level 0's, as ever)

    @functools.cached_property
    def digest(self) -> str:
        """The trunk's hash: spec, pruning and rewind step (the number of levels does not count), and the
        pretraining only when there is one (so every trunk without pretraining keeps its hash)."""
        extra: dict[str, Any] = {"rewind": str(self.rewind)}
        if self.pretrain is not None:
            extra["pretrain"] = self.pretrain.identity()
        return spec_hash(self.spec, self.pruning, extra)

    def level_dir(self, replicate: int, level: int) -> Path:
        """``<root>/lottery_<hash>/replicate_<r>/level_<l>``."""
        return run_path(self.root, "lottery", self.digest, replicate, level)

    @property
    def rewind_name(self) -> str:
        """Name of level 0's state a level starts from: ``init`` at k = 0, else ``rewind``."""
        return "init" if self.rewind.count == 0 else "rewind"

    @property
    def keep(self) -> tuple[tuple[str, Step], ...]:
        """The states every level keeps besides init and final: the rewind point (k > 0)."""
        return (("rewind", self.rewind),) if self.rewind.count else ()

    def meta(self, replicate: int, level: int) -> dict[str, Any]:
        """What spec.json records beside the hyperparameters."""
        out = {"kind": "lottery", "preset": self.preset, "level": level, "rewind": str(self.rewind),
               "pruning": self.pruning.record(), "trunk": str(self.level_dir(replicate, 0).parent.parent)}
        if self.pretrain is not None:
            out["pretrain"] = self.pretrain.identity()
        return out

    def node(self, replicate: int, level: int) -> Node:
        """The node of one level of one replicate (level l references level l-1 and level 0). Made once per trunk
        object: a plan asks for the same levels many times (branches, stability copies, records)."""
        cache = self.__dict__.setdefault("_nodes", {})  # not a field: the fields alone are the identity
        if (replicate, level) not in cache:
            cache[(replicate, level)] = self._node(replicate, level)
        return cache[(replicate, level)]

    def _node(self, replicate: int, level: int) -> Node:
        meta = self.meta(replicate, level)
        if level == 0:
            return Node(self.spec, replicate, self.level_dir(replicate, 0), keep=self.keep, meta=meta)
        prev = self.node(replicate, level - 1)
        dense = prev if level == 1 else self.node(replicate, 0)
        start = Ref(dense, f"state:{self.rewind_name}") if self.pretrain is None else self.start_ref(replicate, level)
        recipe = Recipe.make("imp", start, Ref(prev, "state:final"),
                             Ref(prev, "mask"), pruning=self.pruning.record(), replicate=replicate, level=level)
        return Node(self.spec, replicate, self.level_dir(replicate, level), start_step=self.rewind, setup=recipe,
                    keep=self.keep, meta=meta)

    def start_ref(self, replicate: int, level: int | None = None) -> Ref:
        """The state at the rewind step, where every level and every rewound branch starts: level 0's state at
        k, or with pretraining the pretrained state (its head replaced after a rotation task). Sparse
        pretraining has one per level: ``level`` is then required (ValueError without it)."""
        if self.pretrain is None:
            return Ref(self.node(replicate, 0), f"state:{self.rewind_name}")
        if self.pretrain.sparse and level is None:
            raise ValueError("sparse pretraining has one pretrained start per level: give the level")
        lv = level if self.pretrain.sparse else None
        start = self.pretrain_head_node(replicate, lv) if self.pretrain.rotation else self.pretrain_node(replicate, lv)
        return Ref(start, "state:final")

    def pretrain_dir(self, replicate: int, level: int | None = None, head: bool = False) -> Path:
        """``replicate_<r>/pretrain`` (dense) or ``replicate_<r>/pretrain/level_<l>`` (sparse); ``pretrain_head``
        for the node that replaces the rotation task's head."""
        d = self.level_dir(replicate, 0).parent / ("pretrain_head" if head else "pretrain")
        return d if level is None else d / f"level_{level}"

    def _pretrain_meta(self, replicate: int, level: int | None, role: str) -> dict[str, Any]:
        assert self.pretrain is not None
        meta = {**self.meta(replicate, 0), "kind": "pretrain", "role": role, "task": self.pretrain.task,
                "sparse": self.pretrain.sparse}
        meta["level"] = level  # None: the dense pretraining (no level's mask)
        return meta

    def pretrain_node(self, replicate: int, level: int | None = None) -> Node:
        """The pretraining run: the task's data, E steps (default k), from level 0's initialisation
        (``pretrain_init``); with
        sparse pretraining (``level`` given), under that level's IMP mask."""
        if self.pretrain is None:
            raise ValueError("this trunk has no pretraining")
        level0 = self.node(replicate, 0)
        refs = [Ref(level0, "state:init")]
        options: dict[str, Any] = {}
        if level is not None:
            if level < 1:
                raise ValueError("sparse pretraining is per pruned level (1, 2, ...)")
            prev = self.node(replicate, level - 1)
            refs += [Ref(prev, "state:final"), Ref(prev, "mask")]
            options = {"pruning": self.pruning.record(), "replicate": replicate, "level": level}
        if self.pretrain.rotation:  # a run stored before rotations were drawn per presentation is another run
            options["rotations"] = "per-presentation"
        spec = pretrain_spec(self.spec, self.pretrain.task, self.pretrain.length(self.rewind))
        return Node(spec, replicate, self.pretrain_dir(replicate, level), setup=Recipe.make("pretrain_init", *refs,
                    **options), meta=self._pretrain_meta(replicate, level, "pretrain"))

    def pretrain_head_node(self, replicate: int, level: int | None = None) -> Node:
        """After a rotation task: a run of the trunk's own network that starts at step k from the pretrained state
        with a fresh head (``pretrain_head``) and trains for no steps; its final state is the rewinding point."""
        spec = dataclasses.replace(self.spec, train=dataclasses.replace(self.spec.train, training_steps=self.rewind))
        recipe = Recipe.make("pretrain_head", Ref(self.pretrain_node(replicate, level), "state:final"))
        return Node(spec, replicate, self.pretrain_dir(replicate, level, head=True), start_step=self.rewind,
                    setup=recipe, meta=self._pretrain_meta(replicate, level, "head"))

    def pretrain_nodes(self, replicate: int, levels: int) -> list[Node]:
        """Every pretraining node of a replicate (empty without pretraining)."""
        if self.pretrain is None:
            return []
        lvs: list[int | None] = list(range(1, levels + 1)) if self.pretrain.sparse else [None]
        out = [self.pretrain_node(replicate, lv) for lv in lvs]
        if self.pretrain.rotation:
            out += [self.pretrain_head_node(replicate, lv) for lv in lvs]
        return out


def level_hparams(pruning: PruneHparams | dict, replicate: int, level: int) -> PruneHparams:
    """The pruning hyperparameters of one level: the random strategy draws afresh per replicate and level."""
    hp = pruning if isinstance(pruning, PruneHparams) else from_dict(PruneHparams, pruning)
    if hp.strategy == "random":  # a fresh random draw for every replicate and level, all fixed by the seed
        hp = dataclasses.replace(hp, seed=mix_seed(hp.seed, replicate, level) % (2**31))
    return hp


@op("imp")
def imp(ctx: OpContext, start: dict, weights: dict, mask: dict, *, pruning: dict, replicate: int,
        level: int) -> Setup:
    """One IMP level: ``weights`` (level l-1's final) pruned inside ``mask`` (level l-1's); start at ``start``."""
    hp = level_hparams(pruning, replicate, level)
    return Setup(start, prune({k: weights[k] for k in ctx.prunable}, mask, hp, ctx.kinds))


def plan_trunks(trunks: list[Trunk], levels: int, replicates: int) -> list[Node]:
    """The nodes of levels 0..levels of every trunk and replicate (rewind steps given twice: one trunk)."""
    trunks = list({t.digest: t for t in trunks}.values())
    return [t.node(r, level) for t in trunks for r in range(replicates) for level in range(levels + 1)]


def check_trunks(trunks: list[Trunk], total: int, steps_per_epoch: int, kinds: dict[str, str]) -> None:
    """UserError for a rewind step past the end of training or an unknown layer in the pruning flags."""
    from lth.prune import layer_fraction_map

    for t in trunks:
        if t.pretrain is not None:
            t.pretrain.validate()
            if t.rewind.count == 0:
                raise UserError(f"{ref('pretrain_steps')} 0it: pretraining needs at least 1it (the pretrained state "
                                "takes the place of the state at that step)", value="0it", allowed="at least 1it")
        if t.rewind.iterations(steps_per_epoch) > total:
            field = "pretrain_steps" if t.pretrain is not None else "rewind"  # with pretraining, K is the rewind
            raise past_end(field, t.rewind, t.spec.train.training_steps, total, "1it" if t.pretrain else "0it")
        layer_fraction_map(t.pruning, kinds)


def level_record(trunk: Trunk, replicate: int, level: int, rewind_iteration: int,
                 base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CONTRACT's run record of one level, with its level, density and rewind step (beside its iteration)."""
    run = RunDir(trunk.level_dir(replicate, level))
    done = run.done or {}
    rec: dict[str, Any] = {"path": str(run.path), "replicate": replicate, "level": level,
                           "rewind": str(trunk.rewind), "rewind_iteration": rewind_iteration,
                           "status": done.get("status", (base or {}).get("status", "missing")),  # failed, blocked
                           "final_test_accuracy": done.get("final_test_accuracy"), "states": run.states()}
    if base and "error" in base:
        rec["error"] = base["error"]
    if run.has_mask():
        mask = run.load_mask()
        rec["mask"] = str(run.mask_file)
        rec.update(mask_densities(mask, trunk.spec))
    else:
        rec["density"] = 1.0 if level == 0 else None  # None: never trained (the level before diverged)
    return rec


SEQUENTIAL_FAMILIES = ("fc", "conv2", "conv4", "conv6", "lenet5", "vgg")


def mask_densities(mask: dict, spec: TrainSpec) -> dict[str, Any]:
    """``density`` (kept fraction of the prunable weights: what a level's density means throughout lth),
    ``layer_densities``, and for sequential networks ``effective_density``: what remains once weights that can
    no longer carry signal (the outgoing weights of a removed neuron or filter) are discounted
    (:func:`lth.prune.effective_density`; it differs from ``density`` under structured pruning)."""
    from lth.models import resolve

    out: dict[str, Any] = {"density": density(mask), "layer_densities": layer_densities(mask)}
    if resolve(spec.model.model)[0] in SEQUENTIAL_FAMILIES:
        out["effective_density"] = effective_density(mask)
    return out


def existing_levels(trunk: Trunk, replicate: int) -> list[int]:
    """The finished levels of a trunk's replicate."""
    base = trunk.level_dir(replicate, 0).parent
    out = []
    for d in sorted(base.glob("level_*")):
        if RunDir(d).done is not None:
            out.append(int(d.name.split("_")[1]))
    return sorted(out)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _trunk_fields(spec: TrainSpec, pruning: PruneHparams, rewind: Step) -> dict[str, Any]:
    """Every hyperparameter of a trunk that its hash covers, flat: ``{"train.lr": 0.003, "pruning.seed": 0,
    "rewind": "0it"}``."""
    return {**_flat(to_dict(spec)), **_flat(to_dict(pruning), "pruning."), "rewind": str(rewind)}


def _ref(key: str) -> str:
    """A reference (:func:`lth.errors.ref`) to a flat trunk field in an error's template (``train.training_steps``
    -> ``training_steps``: ``--training-steps`` on the command line; ``pruning.fraction``: ``--pruning-fraction``)."""
    group, _, name = key.rpartition(".")
    return ref(f"pruning.{name}" if group == "pruning" else name)


def _show(v: Any) -> str:
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def other_trunks(trunk: Trunk) -> list[tuple[Path, dict[str, tuple[Any, Any]]]]:
    """The trunks stored beside ``trunk`` (same root) of the same preset (or, without one, the same model and
    dataset), nearest first, each with ``{field: (theirs, yours)}`` for the fields that differ."""
    mine = _trunk_fields(trunk.spec, trunk.pruning, trunk.rewind)
    out = []
    for d in sorted(trunk.root.glob("lottery_*")):
        if d == trunk.level_dir(0, 0).parent.parent:
            continue
        spec_file = next(iter(sorted(d.glob("replicate_*/level_0/spec.json"))), None)
        if spec_file is None:
            continue
        try:
            stored = json.loads(spec_file.read_text())
            theirs = _trunk_fields(from_dict(TrainSpec, stored), from_dict(PruneHparams, stored.get("pruning", {})),
                                   Step.parse(stored.get("rewind", "0it")))
        except (ValueError, TypeError, UserError, OSError):
            continue  # a damaged or foreign spec.json: not a trunk one could mean
        if trunk.preset and stored.get("preset") not in (trunk.preset, "", None):
            continue
        if not trunk.preset and (theirs["model.model"], theirs["data.dataset"]) != (mine["model.model"],
                                                                                   mine["data.dataset"]):
            continue
        diff = {k: (theirs[k], mine.get(k)) for k in theirs if theirs[k] != mine.get(k)}
        out.append((d, diff))
    return sorted(out, key=lambda t: len(t[1]))


def describe_other_trunks(trunk: Trunk) -> str:
    """What to say when ``trunk`` does not exist but others of its preset do (empty when there are none): the
    nearest one, what differs, and the flags that select it (an error's template: :func:`lth.errors.ref`)."""
    others = other_trunks(trunk)
    if not others:
        return ""
    path, diff = others[0]
    what = f"preset {trunk.preset}" if trunk.preset else f"model {trunk.spec.model.model}"
    shown = ", ".join(f"{k.rpartition('.')[2]}={_show(a)} (yours: {_show(b)})" for k, (a, b) in diff.items())
    add = " ".join(f"{_ref(k)} {_show(a)}" for k, (a, _) in diff.items())
    more = f"; {len(others) - 1} other trunk(s) of {what} differ more" if len(others) > 1 else ""
    return f"a trunk of {what} exists with {shown} ({path.name}): add {add} to use it{more}"


def require_level(trunk: Trunk, replicate: int, level: int, command: str, hint: str | None = None) -> None:
    """UserError naming what to do about a missing trunk level: when the trunk does not exist but trunks of its
    preset with other hyperparameters do, what differs and the fields that select the nearest one (never a
    command that would start a different experiment); otherwise the `lth lottery` command that makes it
    (``command``), followed by ``hint`` in parentheses where given (how to do the same from Python)."""
    more = f" ({hint})" if hint else ""
    status = (RunDir(trunk.level_dir(replicate, level)).done or {}).get("status")
    if status == "diverged":
        raise UserError(f"level {level} of the trunk (replicate {replicate}) diverged: it has no ticket to branch from")
    if status != "complete":
        have = existing_levels(trunk, replicate)
        if not have and not trunk.level_dir(0, 0).parent.parent.exists():
            near = describe_other_trunks(trunk)
            if near:
                raise UserError(f"no trunk with these hyperparameters under {trunk.root}: {near}; or train a new "
                                f"trunk with your values: `{command}`{more}")
        where = f"it has levels {have[0]}-{have[-1]}" if have else "it does not exist yet"
        raise UserError(f"level {level} of the trunk (replicate {replicate}) is not trained: {where}; "
                        f"run `{command}` first{more}")


@op("pretrain_init")
def pretrain_init(ctx: OpContext, init: dict, weights: dict | None = None, prev_mask: dict | None = None, *,
                  pruning: dict | None = None, replicate: int = 0, level: int = 0,
                  rotations: str | None = None) -> Setup:
    """The pretraining run's start: level 0's initialisation W_0 (the network pretraining starts where training
    starts), its head fitted to the task's class count. ``rotations`` only marks the node's identity (the rotation
    tasks' training rotations are drawn per presentation, so no run stored with fixed ones shares its digest).
    With ``weights``/``prev_mask`` (level l-1's final state
    and mask: sparse pretraining of level l) its mask is level l's IMP mask, computed as the trunk's ``imp`` op
    computes it (the head's mask all ones where the task's head has another shape)."""
    mask = None
    if weights is not None and prev_mask is not None:
        # a dense level 0 gives an all-ones mask shaped like *this* node's network: reshape it like the weights
        prev = {k: m if m.shape == weights[k].shape else torch.ones_like(weights[k], dtype=torch.bool)
                for k, m in prev_mask.items()}
        mask = imp(ctx, init, weights, prev, pruning=pruning or {}, replicate=replicate, level=level).mask
    state, mask, replaced = fit_heads(ctx, init, mask)
    return Setup(state, mask, {"head_replaced": replaced})
