"""The stability study: instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020) as a plain function.

Copies of a network or subnetwork at step k trained with different SGD noise, and the error along the straight
path between them. :func:`run_stability` takes typed options (:class:`StabilityOptions`: which copies;
:class:`PathOptions`: how each path is evaluated; :class:`~lth.studies.runtime.RuntimeOptions`: where it trains),
plans the copies and the IMP trunks they hang off (:class:`lth.stability.StabilityPlan`), trains what is missing,
evaluates every path and returns a :class:`StabilityResult` whose document is what ``lth stability --json`` prints.
``lth stability`` and ``lth.api.stability`` are its two faces; ``lth landscape`` (:mod:`lth.studies.landscape`) and
the ``mode-connectivity`` recipe share its planning and its evaluation.

A ticket held as tensors, ``ticket=(state, mask)`` (as :func:`lth.api.ticket` returns it), is the start of the
copies instead of a trunk's level: it is stored as a given node (:mod:`lth.graph.given`) under
``<root>/ticket_<hash>/`` and the copies reference its state and mask as they reference a trunk level's.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lth.analysis.stability import STABLE_THRESHOLD, default_alphas
from lth.errors import UserError, ref
from lth.graph import Node
from lth.lottery import parse_levels
from lth.options import Options, option
from lth.progress import Progress
from lth.spec import Step, TrainSpec
from lth.stability.analysis import DEFAULT_TRAIN_EXAMPLES
from lth.stability.plan import SUBNETWORKS, StabilityPlan
from lth.studies.base import StudyResult, Ticket, check_ticket, progress_of, ticket_node
from lth.studies.lottery import pruning_of
from lth.studies.runtime import RUNTIME_KEYWORDS, RuntimeOptions, check_fits, runtime_from_keywords


# ------------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class PathOptions(Options):
    """How the straight path between two trained copies is evaluated (``lth stability`` and ``lth landscape``)."""

    PREFIX: ClassVar[str] = ""
    alphas: int = option(30, "evenly spaced points on each path, ends included (paper: 30)", low=2)
    threshold: float = option(STABLE_THRESHOLD, "stable when test instability < this fraction (paper: 0.02)", low=0,
                              high=1, low_open=True, high_open=True,
                              allowed="a fraction between 0 and 1 (exclusive), e.g. 0.02")
    train_examples: int = option(DEFAULT_TRAIN_EXAMPLES, "size of the fixed training subset for train instability "
                                                         "and BatchNorm statistics", low=2)

    def points(self) -> list[float]:
        """The interpolation coefficients of each path: ``alphas`` evenly spaced points from 0 to 1."""
        return default_alphas(self.alphas)


@dataclass(frozen=True)
class StabilityOptions(Options):
    """Which copies: the steps k they are made at, the trunk levels and subnetworks copied, how many copies per
    replicate, and how they train."""

    PREFIX: ClassVar[str] = ""
    rewind: tuple[Step, ...] = option((Step(0, "it"),), "steps k at which the copies are made (a sweep)")
    levels: tuple[str, ...] = option(("0",), "trunk levels: 0 is the dense network, >= 1 the subnetworks of that IMP "
                                              "level (e.g. 0-3)")
    subnetwork: tuple[str, ...] = option(("dense",), f"what is copied at step k ({' | '.join(SUBNETWORKS)}); several "
                                                     "allowed", metavar="KIND")
    copies: int = option(2, "copies per replicate (every pair is a path)", low=2)
    schedule_from_zero: bool = option(False, "train copies for T steps with the schedule restarted at 0 (the paper's "
                                             "Fig. 4 control)", switch=True)
    align: bool = option(False, "permute the second copy's hidden units to match the first (weight matching) first",
                         switch=True)
    same_noise: bool = option(False, "every copy with copy 0's seeds (a check: identical copies, instability 0)",
                              hidden=True, switch=True)
    trajectory_points: int = option(4, "states each copy keeps for `lth landscape`", low=0)
    replicates: int = option(1, "number of replicates", low=1)

    def validate(self) -> None:
        """A subnetwork named as ever (``--subnetwork 'bogus': unknown value``), then the per-field checks and
        :meth:`check`."""
        for sub in self.subnetwork:
            if sub not in SUBNETWORKS:
                raise UserError(f"{ref('subnetwork')} {sub!r}: unknown value; allowed: {', '.join(SUBNETWORKS)}",
                                value=sub, allowed=", ".join(SUBNETWORKS))
        super().validate()

    def check(self) -> None:
        """At least one step and one subnetwork; levels that parse; levels >= 1 for every non-dense subnetwork."""
        if not self.rewind:
            raise UserError(f"{ref('rewind')}: no step given; allowed: one or more steps, e.g. 0it 500it",
                            allowed="one or more steps")
        if not self.subnetwork:
            raise UserError(f"{ref('subnetwork')}: none given; allowed: one or more of {', '.join(SUBNETWORKS)}",
                            allowed=", ".join(SUBNETWORKS))
        levels = self.level_list()
        sparse = [s for s in self.subnetwork if s != "dense"]
        if sparse and not any(lv > 0 for lv in levels):
            raise UserError(f"{ref('levels')} {','.join(map(str, levels))}: subnetworks {', '.join(sparse)} need trunk "
                            "levels >= 1", value=",".join(self.levels), allowed="levels >= 1")
        pruned = [lv for lv in levels if lv > 0]
        if pruned and not sparse:  # the dense network is level 0 only: a pruned level would be dropped unsaid
            others = ", ".join(s for s in SUBNETWORKS if s != "dense")
            allowed = f"{ref('levels')} 0, or a subnetwork for levels >= 1 ({others})"
            raise UserError(f"{ref('levels')} {','.join(map(str, levels))}: {ref('subnetwork')} dense copies level 0 "
                            f"only, nothing would be copied at level {','.join(map(str, pruned))}; allowed: {allowed}",
                            value=",".join(self.levels), allowed=allowed)

    def level_list(self) -> list[int]:
        """``levels`` as sorted level numbers (``0-3``, ``3,5,8`` or a mix, ``0-3,8``)."""
        return parse_levels(self.levels)


# ------------------------------------------------------------------------------------------------ results
@dataclass
class StabilityResult(StudyResult):
    """``document``: ``{"results": one record per pair of copies, "summary": first stable (and matching) k per
    subnetwork and level}``, steps beside their iterations. ``runs``: the copies' run records (the CLI reports the
    diverged and failed ones), ``threshold`` and ``basis`` (what matching compared to) for the printed lines."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    threshold: float = STABLE_THRESHOLD
    basis: str = ""


@dataclass
class PathTables:
    """What evaluating a plan's paths gives: one record per pair of copies, the summary per (subnetwork, level,
    schedule), and in words what matching compared to (``basis``)."""

    records: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    basis: str


# ------------------------------------------------------------------------------------------------ planning
def stability_trunks(spec: TrainSpec, pruning: Any, rewinds: tuple[Step, ...], root: Path | str,
                     preset: str = "custom") -> list[Any]:
    """One IMP trunk per rewind step k (the parents of the copies made at k; repeats are one trunk)."""
    from lth.lottery import Trunk

    trunks = [Trunk(spec, pruning, k, Path(root), preset, None) for k in rewinds]
    return list({t.digest: t for t in trunks}.values())


@dataclass
class StabilityPlanned:
    """What :func:`plan_stability` gives: the plan, the copies to train (keeping the asked states), and the ticket
    to write before they train (its given node, state and mask; None without a ticket)."""

    plan: StabilityPlan
    copies: list[Node]
    ticket: tuple[Node, dict[str, Any], dict[str, Any] | None] | None = None


def plan_stability(spec: TrainSpec, pruning: Any, opts: StabilityOptions, runtime: RuntimeOptions, *,
                   preset: str = "custom", given: Mapping[str, Any] | set[str] | frozenset[str] = frozenset(),
                   ticket: Ticket | None = None) -> StabilityPlanned:
    """Every check, then the plan: the trunks (one per k), the capacity of the device and the store for every copy
    (:func:`~lth.studies.runtime.check_fits`; ``given``: the spec fields the user set), each k inside training,
    the pruning's layers (:func:`~lth.lottery.trunk.check_trunks`), the ticket's tensors, and the kept states
    inside the copies' runs. Nothing is written."""
    from lth.data.describe import describe
    from lth.lottery.trunk import check_trunks
    from lth.models import shape_model
    from lth.prune import kinds_of
    from lth.spec import past_end

    if ticket is not None:
        check_ticket_options(opts)
    levels = opts.level_list()
    trunks = stability_trunks(spec, pruning, opts.rewind, runtime.store, preset)
    cells = 1 if ticket is not None else len(opts.subnetwork) * len(levels)
    check_fits(runtime, spec, opts.replicates * opts.copies * len(trunks) * cells, "replicates", opts.replicates,
               given)
    info = describe(spec.data, runtime.data_dir)
    spe = max(1, info.steps_per_epoch(spec.data.batch_size))
    m = spec.model
    net = shape_model(m.model, info.example_shape, info.num_classes, m.norm, m.width)
    end = spec.train.training_steps
    total = end.iterations(spe)
    for t in trunks:
        if t.rewind.iterations(spe) > total:
            raise past_end(ref("rewind"), t.rewind, end, total, end_field="training_steps",
                           end_named=f"{ref('training_steps')} {end}")
    check_trunks(trunks, total, spe, kinds_of(net))
    written = None
    if ticket is not None:
        state, mask = check_ticket(ticket, net, m.model)
        written = (ticket_node(spec, state, mask, runtime.store), state, mask)
    plan = StabilityPlan(trunks, list(opts.subnetwork), levels, opts.replicates, opts.copies, opts.schedule_from_zero,
                         opts.same_noise, opts.trajectory_points, spe, given=written[0] if written else None)
    return StabilityPlanned(plan, runtime.keep(plan.copy_nodes(), spec, spe), written)


def check_ticket_options(opts: StabilityOptions) -> None:
    """With a ticket the copies start from it: one step k (where its state is), no trunk levels or subnetworks."""
    if len(opts.rewind) != 1:
        raise UserError(f"{ref('rewind')} {' '.join(map(str, opts.rewind))}: a ticket is one state, at one step; "
                        f"allowed: one step (the step the ticket's state is at: 0it for m * theta_0)",
                        value=[str(k) for k in opts.rewind], allowed="one step")
    if opts.subnetwork != ("dense",) or opts.level_list() != [0]:
        raise UserError(f"{ref('ticket')}: the copies start from the ticket, so {ref('subnetwork')} and "
                        f"{ref('levels')} are not used; allowed: leave them out")


# ------------------------------------------------------------------------------------------------ evaluation
def dense_accuracy(plan: StabilityPlan) -> float | None:
    """Mean final test accuracy of the trunks' dense level 0 over replicates (what matching compares to when the
    command made no dense copies at k = 0)."""
    from lth.store import RunDir

    accs = [(RunDir(t.level_dir(r, 0)).done or {}).get("final_test_accuracy")
            for t in plan.trunks for r in range(plan.replicates)]
    accs = [a for a in accs if a is not None]
    return sum(accs) / len(accs) if accs else None


def evaluate_stability(plan: StabilityPlan, data: Any, path: PathOptions, *, align: bool = False,
                       device: str = "cpu", max_population: int = 64, log: Callable[[str], None] | None = None,
                       trunk_fallback: bool = True) -> PathTables:
    """Evaluate the path of every pair of trained copies of ``plan`` (stored ones with the same settings reused),
    one record per pair (stable: test instability < ``path.threshold``) and the summary: first stable k and first
    stable and matching k, matching comparing to the dense copies made at k = 0 (Table 2's "full"), or, when there
    are none and ``trunk_fallback``, the dense trunk's level 0."""
    from lth.stability.analysis import evaluate_pairs, full_accuracy, record, summary

    items = plan.pairs()
    entries = evaluate_pairs(items, data, alphas=path.points(), align=align, train_examples=path.train_examples,
                             device=device, max_population=max_population, log=log)
    records = [record(exp, lv, r, pair, e, path.threshold) for (exp, lv, r, pair), e in zip(items, entries,
                                                                                           strict=True)]
    full, copies = full_accuracy(records)
    dense = full if full is not None or not trunk_fallback else dense_accuracy(plan)
    basis = (f"the dense copies made at k = 0 ({copies} copies)" if full is not None
             else "the dense trunk's level 0 (no dense copies at k = 0 in this command)" if trunk_fallback
             else "none: no dense copies at k = 0 in this command")
    return PathTables(records, summary(records, dense, path.threshold), basis)


_STEP_KEYS = ("rewind", "first_stable", "first_stable_and_matching", "median_first_stable",
              "median_first_stable_and_matching")


def with_iterations(rows: list[dict[str, Any]], steps_per_epoch: int) -> None:
    """Beside every step (``"rewind": "2ep"``, ``"first_stable": "500it"``) its integer ``<key>_iteration``, as
    docs/CONTRACT.md asks of every step reported (None beside a step that is None)."""
    for row in rows:
        for key in [k for k in row if k in _STEP_KEYS]:
            v = row[key]
            row[f"{key}_iteration"] = None if v is None else Step.parse(str(v)).iterations(steps_per_epoch)


# ------------------------------------------------------------------------------------------------ the study
def train_copies(planned: StabilityPlanned, runtime: RuntimeOptions, progress: Progress,
                 command: str = "stability") -> tuple[Any, list[dict]]:
    """Write the ticket (if any) and train every copy not yet trained (and the trunk levels they need); the
    executor and the copies' run records (the graph recorded as planned by ``command``)."""
    from lth.graph import write_given

    ex = runtime.make_executor(progress, command)
    if planned.ticket is not None:
        write_given(*planned.ticket)
    return ex, ex.run(planned.copies)


def run_stability(spec: TrainSpec, pruning: Any, opts: StabilityOptions, path: PathOptions, runtime: RuntimeOptions,
                  progress: Progress | bool | None = None, *, preset: str = "custom",
                  given: Mapping[str, Any] | set[str] | frozenset[str] = frozenset(),
                  ticket: Ticket | None = None) -> StabilityResult:
    """Instability analysis: plan the copies (and the trunks they hang off, or the ``ticket`` they start from),
    train what is missing, evaluate every path. ``pruning``: the trunks' :class:`~lth.prune.PruneHparams`;
    ``given``: the spec fields the user set (capacity and schedule checks); ``progress``: where progress goes
    (:func:`~lth.studies.base.progress_of`). The document is ``lth stability --json``'s."""
    planned = plan_stability(spec, pruning, opts, runtime, preset=preset, given=given, ticket=ticket)
    plan = planned.plan
    with progress_of(progress) as p:
        ex, runs = train_copies(planned, runtime, p)
        tables = evaluate_stability(plan, ex.dataset(spec.data), path, align=opts.align,
                                    device=str(ex.options.torch_device()),
                                    max_population=runtime.max_population or 64, log=p.console.print,
                                    trunk_fallback=ticket is None)  # a ticket's copies hang off no trunk
    with_iterations(tables.records + tables.summary, plan.steps_per_epoch)
    return StabilityResult({"results": tables.records, "summary": tables.summary}, "results", runs=runs,
                           threshold=path.threshold, basis=tables.basis)


# ------------------------------------------------------------------------------------------------ from keywords
@dataclass
class StudyInputs:
    """A study's inputs from the Python face's keywords (:func:`inputs_from_keywords`)."""

    spec: TrainSpec
    preset: str
    pruning: Any
    runtime: RuntimeOptions
    parts: list[Options]
    overrides: dict[str, Any]



def inputs_from_keywords(command: str, preset: str | TrainSpec, keywords: Mapping[str, Any],
                         parts: tuple[type[Options], ...]) -> StudyInputs:
    """Split a study's keywords (``lth.api.stability("digits_mlp", rewind=["0it", "5it"], lr=0.01, device="cpu",
    pruning={"fraction": 0.3})``) into its options (one instance per class of ``parts``), the runtime (with
    ``executor="ray"``, ``retries``, ``ray={...}``, ``slurm={...}``, ``address``), the trunks' pruning (a dict
    over the preset's) and the spec's hyperparameters (the rest). A path (``root=Path(...)``) is taken as its
    string. An unknown keyword is a UserError naming ``command`` and suggesting the nearest name."""
    from lth.presets import PRESETS
    from lth.spec import GROUPS, hparam_fields
    from lth.studies.base import resolve_spec

    if isinstance(preset, str) and preset not in PRESETS:
        near = difflib.get_close_matches(preset, PRESETS, n=1)
        raise UserError(f"{ref('preset')} {preset!r}: unknown preset{f' (did you mean {near[0]}?)' if near else ''}; "
                        f"allowed: {', '.join(PRESETS)}", value=preset, allowed=", ".join(PRESETS))
    values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in keywords.items()}
    owned = [[f.name for f in cls.option_fields()] for cls in parts]
    runtime_names = list(RUNTIME_KEYWORDS)
    hparams = sorted({n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(TrainSpec(), g)))})
    known = [*dict.fromkeys([n for names in owned for n in names] + runtime_names
                            + ["pruning"])]
    for key in values:
        if key not in known and key not in hparams:
            near = difflib.get_close_matches(str(key), known + hparams, n=1, cutoff=0.6)
            raise UserError(f"{command}: unknown keyword argument {key!r}"
                            f"{f' (did you mean {near[0]!r}?)' if near else ''}; allowed: {', '.join(known)}, or a "
                            f"hyperparameter: {', '.join(hparams)}", value=key, allowed=", ".join(known + hparams))
    options = [cls.from_values({k: v for k, v in values.items() if k in names}) for cls, names in zip(parts, owned,
                                                                                                      strict=True)]
    runtime = runtime_from_keywords({k: v for k, v in values.items() if k in runtime_names})
    overrides = {k: v for k, v in values.items() if k not in known}
    spec, name = resolve_spec(preset, overrides, tuple(known))
    return StudyInputs(spec, name, pruning_of(preset, values.get("pruning")), runtime, options, overrides)


__all__ = ["PathOptions", "PathTables", "StabilityOptions", "StabilityPlanned", "StabilityResult", "StudyInputs",
           "check_ticket", "dense_accuracy", "evaluate_stability", "inputs_from_keywords", "plan_stability",
           "run_stability", "stability_trunks", "ticket_node", "Ticket",
           "train_copies", "with_iterations"]
