"""The lottery study: iterative magnitude pruning with rewinding (the trunk: one per rewind step), branches off its
levels and optionally a pretrained rewinding point, planned and trained as one graph (``lth lottery``,
``lth.api.lottery``).

    spec, preset = resolve_spec("digits_mlp", {"training_steps": "2ep"})
    opts = LotteryOptions.from_values(levels=3, branches=["reinit", "random-mask"])
    plan = plan_lottery(spec, pruning_of(preset), opts, RuntimeOptions(root="runs"), preset=preset)
    result = run_lottery(plan)           # result.to_json() is what `lth lottery --json` prints
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lth.errors import UserError, ref, register_names
from lth.graph import Node
from lth.lottery import BRANCHES, Trunk, parse_levels
from lth.lottery.plan import LotteryPlan
from lth.lottery.pretrain import TASKS, Pretraining
from lth.options import Options, option, parse_value, unknown_name
from lth.progress import Progress
from lth.prune import PruneHparams
from lth.spec import Step, TrainSpec, hparam_fields
from lth.studies.base import StudyResult, progress_of, resolve_spec
from lth.studies.runtime import RuntimeOptions, check_fits, default_root
from lth.studies.train import check_workers

# A branch's option given per branch (``branches={"retrain": {"set": [...]}}``) is ``branches["retrain"]["set"]``
# in Python; on the command line the flag every branch that has the field shares (``--set``).
register_names("cli", {f"branches.{name}.{f}": "--" + f.replace("_", "-")
                       for name, b in BRANCHES.items() for f, _, _ in hparam_fields(b.options)})


# ------------------------------------------------------------------------------------------------ parts
def parse_level_set(raw: Any, path: str) -> tuple[int, ...]:
    """Levels as a sorted tuple (:func:`lth.lottery.branches.parse_levels`), errors naming the field ``path``."""
    return tuple(parse_levels(raw, path))


def unknown_branch(name: str, path: str) -> UserError:
    """The error for a branch name that is not one (``path``: where it was given)."""
    return UserError(f"{ref(path)}: unknown branch {name!r}; allowed: {', '.join(BRANCHES)}", value=name,
                     allowed=", ".join(BRANCHES))


def branch_names(raw: Any, path: str = "branches") -> list[str]:
    """Branch names from a list of names (each may hold several, comma-separated, as the CLI takes them); a
    UserError naming ``path`` for a name that is not a branch."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise UserError(f"{ref(path)}: bad value {raw!r}; allowed: a list of branch names or a dict {{name: "
                        f"options}}", value=raw, allowed="a list of branch names or a dict")
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    for n in names:
        if n not in BRANCHES:
            raise unknown_branch(n, path)
    return list(dict.fromkeys(names))


def make_branch_options(name: str, values: Any = None, prefix: str = "") -> Any:
    """Branch ``name``'s options from its options object or a dict of its fields (strings parsed as the CLI
    parses its flags), validated. A field the branch does not have is a UserError suggesting the nearest; errors
    name a field ``<prefix>.<field>`` (no prefix: the field alone, as ``lth branch`` flags and ``lth.api.branch``
    keywords name it)."""
    if name not in BRANCHES:
        raise unknown_branch(name, prefix.rpartition(".")[0] or "branches")
    cls = BRANCHES[name].options
    if isinstance(values, cls):
        opts = values
    elif values is None or isinstance(values, Mapping):
        types = {n: tp for n, _, tp in hparam_fields(cls)}
        for key in values or {}:
            if key not in types:
                raise unknown_name(key, list(types), prefix or None, what="option" if prefix else "keyword argument")
        paths = {k: f"{prefix}.{k}" if prefix else k for k in values or {}}
        parsed = {k: _set_items(v) if k == "set" else parse_value(types[k], v, paths[k])
                  for k, v in (values or {}).items()}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for k, v in parsed.items():  # the choices, with the field named per face (--dn-pool, dn_pool)
            choices = fields[k].metadata.get("choices")
            if choices and v not in choices:
                raise UserError(f"{ref(paths[k])} {v!r}: unknown value; allowed: {', '.join(choices)}", value=v,
                                allowed=", ".join(choices))
        opts = cls(**parsed)
    else:
        path = prefix or "options"
        raise UserError(f"{ref(path)}: bad value {values!r}; allowed: a dict of the options of {name} or a "
                        f"{cls.__name__}", value=values, allowed=f"a dict or a {cls.__name__}")
    opts.validate()
    return opts


def _set_items(raw: Any) -> tuple[str, ...]:
    """``set`` as KEY=VALUE items: a list of them, or one string of them split at the commas that start another
    KEY=VALUE (``"lr=0.1,milestones=2it,5it"``: a value may hold commas)."""
    if not isinstance(raw, str | list | tuple):
        raise UserError.bad("set", raw, "KEY=VALUE items, e.g. ['lr=0.01']")
    out: list[str] = []
    for item in [raw] if isinstance(raw, str) else list(raw):
        parts: list[str] = []
        for part in str(item).split(","):
            if parts and "=" not in part:
                parts[-1] += "," + part  # a comma inside a value (milestones=2it,5it)
            else:
                parts.append(part)
        out += [p.strip() for p in parts if p.strip()]
    return tuple(out)


def branch_choices(names: Any, shared: Mapping[str, Any] | None = None, path: str = "branches") -> dict[str, Any]:
    """``{name: options}`` of the named branches, each taking the ``shared`` options it has (the command line's
    ``--set``, ``--dn-pool``, ... are shared by every branch with that field). An option no named branch has is a
    UserError (it would be silently ignored); ``path``: where the names were given (``branches``)."""
    chosen = branch_names(names, path)
    takes = {n: {f for f, _, _ in hparam_fields(b.options)} for n, b in BRANCHES.items()}
    for key, value in (shared or {}).items():
        if not any(key in takes[n] for n in chosen):
            owners = [n for n in BRANCHES if key in takes[n]]
            if not owners:
                raise unknown_name(key, sorted({f for fs in takes.values() for f in fs}), what="branch option")
            shown = " ".join(map(str, value)) if isinstance(value, list | tuple) else value
            mine = ", ".join(chosen) or f"the trunk (no {ref(path)})"
            raise UserError(f"{ref(key)} {shown}: an option of the branch{'es' if len(owners) > 1 else ''} "
                            f"{', '.join(owners)}, not of {mine}; allowed: {ref(key)} with {ref(path)} naming one of "
                            f"those", value=value, allowed=", ".join(owners))
    return {n: make_branch_options(n, {k: v for k, v in (shared or {}).items() if k in takes[n]}) for n in chosen}


def branches_of(raw: Any) -> dict[str, Any]:
    """``{name: options}`` from branch names (a list, or one string of them) or a dict ``{name: options or a dict
    of them}``."""
    if isinstance(raw, Mapping):
        for name in raw:
            if name not in BRANCHES:
                raise unknown_branch(str(name), "branches")
        return {name: make_branch_options(name, v, f"branches.{name}") for name, v in raw.items()}
    return {name: make_branch_options(name) for name in branch_names(raw)}


def pruning_of(preset: str | TrainSpec, values: Mapping[str, Any] | PruneHparams | None = None) -> PruneHparams:
    """The pruning recipe: the preset's (defaults for a TrainSpec) with ``values`` (a dict of
    :class:`~lth.prune.PruneHparams` fields, strings parsed as the CLI parses its flags), validated; errors name
    ``pruning.<field>``."""
    from lth.presets import get_preset

    if isinstance(values, PruneHparams):
        hp = values
    else:
        if values is not None and not isinstance(values, Mapping):
            raise UserError(f"{ref('pruning')}: bad value {values!r}; allowed: a dict of pruning settings, e.g. "
                            f"{{'fraction': 0.2}}", value=values, allowed="a dict of pruning settings")
        types = {n: tp for n, _, tp in hparam_fields(PruneHparams)}
        for key in values or {}:
            if key not in types:
                raise unknown_name(key, list(types), "pruning", what="option")
        base = dict(get_preset(preset).pruning) if isinstance(preset, str) else {}
        given = {k: parse_value(types[k], v, f"pruning.{k}") for k, v in (values or {}).items()}
        hp = PruneHparams(**{**base, **given})
    hp.validate()
    return hp


# ------------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class LotteryOptions(Options):
    """What a lottery study plans beside the spec and the pruning recipe: levels, replicates, rewind steps (a
    sweep), branches with their options, the levels they hang off, and pretraining of the rewinding point
    (Frankle, Schwab & Morcos 2020, Section 5)."""

    PREFIX: ClassVar[str] = ""
    levels: int = option(help="pruning levels after the dense level 0", low=0)
    replicates: int = option(1, "number of replicates", low=1)
    rewind: tuple[Step, ...] | None = option(None, "rewind step k (default 0it: the original lottery ticket); several "
                                                   "make a sweep", metavar="STEP")
    branches: dict[str, Any] = option({}, f"branches trained beside the trunk at every level 1..LEVELS "
                                          f"({' | '.join(BRANCHES)}), with their options", metavar="NAME")
    branch_levels: tuple[int, ...] | None = option(None, "levels of the branches (default: 1..LEVELS)",
                                                   metavar="LEVELS", allowed="a range like 0-15 or a list like 3,5,8")
    pretrain_steps: Step | None = option(None, "rewind to a state pretrained for K steps on the pretraining task "
                                               "instead of level 0's state at K (K is the rewind step: the rewind "
                                               "may be left out, or must be K)", metavar="K")
    pretrain_task: str | None = option(None, f"the pretraining task ({' | '.join(TASKS)}; default standard)",
                                       choices=TASKS, metavar="TASK")
    pretrain_sparse: bool = option(False, "pretrain each level's ticket under its mask (else one dense pretraining "
                                          "per replicate)")
    pretrain_length: Step | None = option(None, "train the pretraining run for E steps (default K), then rewind "
                                                "to its state at K: the paper pretrains for E epochs, then IMP "
                                                "rewinds there", metavar="E")
    strict: bool = option(False, "exit 1 when any run diverged")

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None, *, base: Any = None,  # type: ignore[override]
                    **more: Any) -> LotteryOptions:
        """As :meth:`Options.from_values`, with ``branches`` as names or ``{name: options}`` and
        ``branch_levels`` as a range or list (``"1-3"``, ``[2]``)."""
        given = {**(values or {}), **more}
        if isinstance(given.get("levels"), str):  # the command line's: said as it always was
            text = given["levels"]
            if not text.strip().isdigit():
                raise UserError(f"{ref('levels')} {text!r}: expected a whole number >= 0", value=text,
                                allowed="a whole number >= 0")
        if "branches" in given:
            given["branches"] = branches_of(given["branches"])
        if given.get("branch_levels") is not None:
            given["branch_levels"] = parse_level_set(given["branch_levels"], "branch_levels")
        return super().from_values(given, base=base)

    def check(self) -> None:
        """The rewind steps, pretraining and branch levels, across fields."""
        if self.rewind is not None and not self.rewind:
            raise UserError(f"{ref('rewind')}: bad value []; allowed: at least one step, e.g. ['0it']", value=[],
                            allowed="at least one step")
        k = self.pretrain_steps
        if k is None:
            for name in ("pretrain_task", "pretrain_sparse", "pretrain_length"):
                if getattr(self, name) not in (None, False):
                    raise UserError(f"{ref(name)}: needs {ref('pretrain_steps')} K (the number of pretraining "
                                    f"steps)")
        else:
            if k.count < 1:
                raise UserError(f"{ref('pretrain_steps')} {k}: bad value; allowed: at least 1it", value=str(k),
                                allowed="at least 1it")
            e = self.pretrain_length
            if e is not None and e.count < 1:
                raise UserError(f"{ref('pretrain_length')} {e}: bad value; allowed: at least 1it", value=str(e),
                                allowed="at least 1it")
            if self.rewind and any(str(r) != str(k) for r in self.rewind):
                shown = " ".join(map(str, self.rewind))
                raise UserError(f"{ref('rewind')} {shown}: with {ref('pretrain_steps')} {k} the rewind step is {k} "
                                f"(the pretrained state takes the place of the state there); allowed: "
                                f"{ref('rewind')} {k} or none", value=shown, allowed=str(k))
        if self.branches and self.levels == 0 and not self.branch_levels:  # 1..0: no level to branch off
            names = ", ".join(self.branches)
            raise UserError(f"{ref('branches')} {names}: with {ref('levels')} 0 the trunk has no pruned level to "
                            f"branch off; allowed: {ref('levels')} 1 or more, or {ref('branch_levels')} 0 (a "
                            f"branch off the dense network)", value=names, allowed="levels >= 1")
        if self.branch_levels:
            hi = max(self.branch_levels)
            if hi > self.levels:
                shown = ",".join(map(str, self.branch_levels))
                raise UserError(f"{ref('branch_levels')} {shown}: level {hi} is beyond the trunk's {ref('levels')} "
                                f"{self.levels}; allowed: levels 0-{self.levels} (or raise {ref('levels')})",
                                value=shown, allowed=f"levels 0-{self.levels}")
        for opts in self.branches.values():
            opts.validate()

    def rewinds(self) -> list[Step]:
        """The rewind steps: those given, else the pretraining step K, else 0it."""
        if self.rewind:
            return list(self.rewind)
        return [self.pretrain_steps] if self.pretrain_steps is not None else [Step(0, "it")]

    def pretraining(self) -> Pretraining | None:
        """The trunk's pretraining (None without ``pretrain_steps``)."""
        if self.pretrain_steps is None:
            return None
        return Pretraining(self.pretrain_task or "standard", self.pretrain_sparse, self.pretrain_length)


def trunks_of(spec: TrainSpec, pruning: PruneHparams, opts: LotteryOptions, root: str | Path,
              preset: str = "custom") -> list[Trunk]:
    """One trunk per rewind step of ``opts`` (with its pretraining), stored under ``root``."""
    pre = opts.pretraining()
    return [Trunk(spec, pruning, k, Path(root).expanduser(), preset, pre) for k in opts.rewinds()]


# ------------------------------------------------------------------------------------------------ the study
@dataclass
class LotteryStudyPlan(LotteryPlan):
    """A :class:`~lth.lottery.plan.LotteryPlan` planned under ``runtime``: :meth:`nodes` has every trunk level and
    branch also keep the runtime's ``save_states`` steps that lie in its run, and :meth:`document` is the
    ``lth lottery --json`` document."""

    runtime: RuntimeOptions | None = None
    _kept: list[Node] | None = field(default=None, init=False, repr=False)

    @property
    def save_states(self) -> tuple[tuple[str, Step], ...]:
        """The steps every run also keeps, as (name, step)."""
        return tuple((str(s), s) for s in self.runtime.save_states) if self.runtime is not None else ()

    def nodes(self) -> list[Node]:
        """Trunk nodes, then branch nodes, each keeping the ``save_states`` steps that lie in its run (planned once;
        a branch's ``set`` schedule is checked against its own training here)."""
        from lth.lottery.branches.retrain import check_set_lengths

        if self._kept is None:
            nodes = super().nodes()
            check_set_lengths(self.branch_nodes(), self.data_dir)  # a branch's set milestones inside its training
            spec = self.trunks[0].spec
            self._kept = self.runtime.keep(nodes, spec, self.spe) if self.runtime is not None else nodes
        return list(self._kept)

    def document(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """``{"runs": [...], "branches": [...] (with branches), "pretrain": [...] (with pretraining)}`` from the
        executor's records of :meth:`nodes`."""
        return lottery_document(self, results)


def lottery_document(plan: LotteryPlan, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``lth lottery --json`` document of ``plan`` from the executor's records of its nodes: ``{"runs": [...],
    "branches": [...] (with branches), "pretrain": [...] (with pretraining)}``."""
    records = plan.records(results)
    return {"runs": records["runs"], **({"branches": records["branches"]} if plan.branches else {}),
            **({"pretrain": records["pretrain"]} if "pretrain" in records else {})}


def plan_lottery(spec: TrainSpec, pruning: PruneHparams, opts: LotteryOptions, runtime: RuntimeOptions, *,
                 preset: str = "custom", given: Mapping[str, Any] | None = None) -> LotteryStudyPlan:
    """The trunks (one per rewind step) and branches of ``opts`` as one plan. Every check runs here, before
    anything is written: the runs fit in memory and on disk and one network on the device
    (:func:`~lth.studies.runtime.check_fits`, first: a huge ``replicates`` or ``levels`` is refused before a node
    is made; ``given``: the spec fields the user set, as given), the rewind steps lie inside training, the pruning
    names real layers, the branches' options and ``set`` schedules, the saved steps, and the model reaches the
    executor's workers."""
    check_workers(spec, runtime)
    trunks = trunks_of(spec, pruning, opts, runtime.store, preset)
    n_branch_levels = len(opts.branch_levels) if opts.branch_levels else opts.levels
    per_replicate = len({t.digest for t in trunks}) * (opts.levels + 1 + len(opts.branches) * n_branch_levels)
    path, value = ("replicates", opts.replicates) if opts.replicates >= opts.levels else ("levels", opts.levels)
    check_fits(runtime, spec, opts.replicates * per_replicate, path, value, dict(given or {}))
    plan = LotteryStudyPlan(trunks, opts.levels, opts.replicates, dict(opts.branches),
                            list(opts.branch_levels) if opts.branch_levels else None, data_dir=runtime.data_dir,
                            runtime=runtime)
    plan.nodes()
    return plan


def run_lottery(plan: LotteryPlan, progress: Progress | bool | None = None,
                runtime: RuntimeOptions | None = None) -> StudyResult:
    """Train what is missing of ``plan`` (``progress``: the CLI's :class:`~lth.progress.Progress`, True for a new
    one, False for none; ``runtime``: how, by default the plan's); the ``lth lottery --json`` document."""
    runtime = runtime or getattr(plan, "runtime", None) or RuntimeOptions(
        root=default_root(), data_dir=None if plan.data_dir is None else str(plan.data_dir))
    with progress_of(progress) as p:
        results = runtime.make_executor(p, "lottery").run(plan.nodes())
    return StudyResult(lottery_document(plan, results))


def lottery(preset: str | TrainSpec, opts: LotteryOptions, runtime: RuntimeOptions | None = None, *,
            pruning: Mapping[str, Any] | PruneHparams | None = None, progress: Progress | bool | None = None,
            **overrides: Any) -> StudyResult:
    """Plan and run a lottery study in one call:
    ``lottery("digits_mlp", LotteryOptions.from_values(levels=2), training_steps="2ep")``."""
    spec, name = resolve_spec(preset, overrides, tuple(f.name for f in LotteryOptions.option_fields()))
    runtime = runtime or RuntimeOptions(root=default_root())
    plan = plan_lottery(spec, pruning_of(preset, pruning), opts, runtime, preset=name, given=overrides)
    return run_lottery(plan, progress)


__all__ = ["LotteryOptions", "LotteryStudyPlan", "branch_choices", "branch_names", "branches_of", "lottery",
           "lottery_document", "make_branch_options", "parse_level_set", "plan_lottery", "pruning_of", "run_lottery",
           "trunks_of", "unknown_branch"]
