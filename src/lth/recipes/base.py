"""What every recipe shares: the paper's numbers with their sources, the scale a recipe runs at, running its graph
pieces as one graph, the paper-vs-lth rows and a rough estimate of the cost.

A recipe (:class:`Recipe`) names its paper, the figures it makes and the data it needs, and implements two
methods: :meth:`Recipe.plan` returns its graph pieces (:class:`Piece`: a :class:`LotteryPlan` or a list of
nodes), :meth:`Recipe.measure` turns what trained into measured values keyed like its
:attr:`Recipe.paper_numbers`. :meth:`Recipe.run` does the rest: keeps the pieces on the datasets the user named
(:meth:`Recipe.select`, ``lth recipe NAME --datasets``), checks their data, trains every missing node of the kept
pieces as one graph, compares, and returns a :class:`RecipeResult` for the report.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from lth.errors import UserError, ref
from lth.graph import Node


@dataclass(frozen=True)
class PaperNumber:
    """One number a paper publishes: ``key`` (what it measures), ``value`` (a fraction for accuracies, else in
    ``unit``), ``source`` (paper, table or figure, and the seed file that holds it). ``setup``: how the setup
    behind the paper's number differs from the runs lth compares it with (a substitution of the paper's table for
    the recipe's own; empty: the same setup); such a row is never ``comparable``."""

    key: str
    value: float
    source: str
    unit: str = "fraction"
    setup: str = ""


@dataclass
class Measured:
    """lth's values of one quantity (one per replicate or sample) and how they were measured."""

    values: list[float]
    note: str = ""

    @property
    def mean(self) -> float | None:
        """Mean of the finite values (None when there are none)."""
        v = [x for x in self.values if x is not None and math.isfinite(x)]
        return sum(v) / len(v) if v else None


@dataclass
class Scale:
    """How big a run is: preset-level sizes a recipe picks for full or quick mode, and the overrides a user (or a
    test) gives. ``None`` in an override means the recipe's own value."""

    levels: int | None = None
    replicates: int | None = None
    steps: str | None = None

    def pick(self, name: str, default: Any) -> Any:
        """The override ``name`` if given, else ``default``."""
        v = getattr(self, name)
        return default if v is None else v


@dataclass
class Context:
    """Where and how a recipe runs. ``substitutions`` collects every way the run differs from the paper (quick
    mode's dataset, fewer levels, steps and replicates, pieces left out); the report lists them. ``datasets``:
    run only the pieces whose every node trains on one of these (``--datasets``; None = every piece)."""

    quick: bool
    root: Path
    data_dir: str | Path | None = None
    scale: Scale = field(default_factory=Scale)
    substitutions: list[str] = field(default_factory=list)
    datasets: Sequence[str] | None = None

    def sub(self, text: str) -> None:
        """Record a substitution (once)."""
        if text not in self.substitutions:
            self.substitutions.append(text)


@dataclass
class Piece:
    """A named part of a recipe's graph: a LotteryPlan, a StabilityPlan (its copy nodes), or plain nodes."""

    label: str
    plan: Any = None
    nodes: list[Node] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _planned: list[Node] | None = field(default=None, init=False, repr=False)

    def all_nodes(self) -> list[Node]:
        """The nodes the executor runs for this piece (listed once: selecting pieces, estimating and running all
        ask, and a large plan takes seconds to list)."""
        if self.nodes is not None:
            return list(self.nodes)
        if self._planned is None:
            self._planned = list(self.plan.copy_nodes() if hasattr(self.plan, "copy_nodes") else self.plan.nodes())
        return list(self._planned)


@dataclass
class RecipeResult:
    """What a recipe run produced: the comparison rows, verdicts, substitutions, extra figures (name -> (figure
    data frame, caption)), the wall time and the datasets the run trained on (those of the kept pieces)."""

    recipe: str
    rows: list[dict[str, Any]]
    verdicts: dict[str, Any]
    substitutions: list[str]
    records: dict[str, Any]
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0
    datasets: list[str] = field(default_factory=list)


# The estimate in `lth recipe list`: a network's training step costs 3 x its forward's floating point operations
# per example (torch.utils.flop_counter) x batch at RATE, but never less than OVERHEAD seconds per network-step.
# Calibrated on measured runs (bench/RESULTS.md): on this project's 2-core CPU LeNet-300-100 (1.2 ms a step)
# and ResNet-20 (344 ms) both train at about 8e10 operations a second, tiny networks at about 0.3 ms a step; on
# one H100 the F&C LeNet recipe (230 runs) took 308 s, i.e. about 0.025 ms per network-step in populations of 15,
# and ResNet-20 1.5-2.6 ms a step (1e13 gives 3.1 ms: pessimistic for convnets, within 2x).
# On the CPU a command also costs about 5 s to start and write its report and about 0.08 s a run (evaluations,
# files): fitted to the --quick recipes' measured times here (8.5-16 s for the MLP ones; the step model alone said
# 1.8-6.2 s). On the CPU the floor of a step grows with the network's layers: about 0.1 ms per fully connected
# layer and 0.4 ms per convolution (its BatchNorm or Fixup scalars included), measured here with one thread on
# ResNet-20 x0.25 on 8x8 digits (23 layers: 8.7-10 ms a network-step against 0.3 ms priced before, so
# normalization --quick was estimated at 9 s and took 61 s) and the 3-layer digits MLP (0.3 ms).
CPU_FLOPS, CPU_OVERHEAD = 8e10, 3e-4
CPU_LAYER_OVERHEAD = {"conv": 4e-4, "fc": 1e-4, "output": 1e-4}
CPU_START, CPU_PER_RUN = 5.0, 0.08
GPU_FLOPS, GPU_OVERHEAD = 1e13, 2.5e-5


class Recipe:
    """A study lth serves, reproduced from one command. Subclasses set the class attributes and implement
    :meth:`plan` and :meth:`measure` (and :meth:`verdicts` where the paper states a verdict)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    figures: ClassVar[tuple[str, ...]] = ()
    data: ClassVar[tuple[str, ...]] = ()  # datasets of the full recipe
    quick_data: ClassVar[tuple[str, ...]] = ("digits",)
    paper_numbers: ClassVar[tuple[PaperNumber, ...]] = ()
    telemetry: ClassVar[str | None] = None  # --telemetry-every the recipe asks for (quick mode)
    # What the verdicts compare, for the report: the data split, the runs (which levels / branches, how many) and
    # the rule (threshold or strict comparison) with the paper section it follows.
    verdict_basis: ClassVar[str] = ""

    # ------------------------------------------------------------------------------------------------ to implement
    def plan(self, ctx: Context) -> list[Piece]:
        """The graph pieces of the study at ``ctx``'s scale (records substitutions in ``ctx``)."""
        raise NotImplementedError

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Measured values keyed like :attr:`paper_numbers` (plus any the paper gives no number for)."""
        raise NotImplementedError

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """The study's verdicts from the measured values (default: none)."""
        return {}

    def extra_tables(self, ctx: Context, pieces: list[Piece], results: dict[str, Any]) -> dict[str, pd.DataFrame]:
        """Tables beside the paper-vs-lth table (name -> frame)."""
        return {}

    # ------------------------------------------------------------------------------------------------ shared
    def datasets(self, pieces: list[Piece]) -> list[str]:
        """Every dataset the pieces train on."""
        return sorted({n.spec.data.dataset for p in pieces for n in p.all_nodes()})

    def select(self, ctx: Context, pieces: list[Piece]) -> list[Piece]:
        """The pieces whose every node trains on one of ``ctx.datasets`` (all of them when that is None), in plan
        order; the left-out pieces are recorded as a substitution. A one-line UserError naming ``datasets`` when
        a name is not a dataset of the pieces (the recipe's datasets at ``ctx``'s scale) or when no piece is
        left."""
        if ctx.datasets is None:
            return self._present(ctx, list(pieces))
        wanted = list(dict.fromkeys(ctx.datasets))
        per = [self.datasets([p]) for p in pieces]  # each piece's datasets (listing nodes can take seconds)
        have = sorted({d for ds in per for d in ds})
        scale = f"with {ref('quick')}" if ctx.quick else "at full scale"
        bad = [d for d in wanted if d not in have]
        if bad:
            raise UserError(f"{ref('datasets')}: bad value {', '.join(bad)}; allowed: {', '.join(have)} (the "
                            f"datasets of recipe {self.name} {scale})", value=bad, allowed=", ".join(have))
        keep = [set(ds) <= set(wanted) for ds in per]
        if not any(keep):
            each = "; ".join(f"{p.label} ({' + '.join(ds)})" for p, ds in zip(pieces, per, strict=True))
            raise UserError(f"{ref('datasets')}: bad value {' '.join(wanted)} (leaves no piece of recipe "
                            f"{self.name} {scale}); allowed: names covering every dataset of some piece: {each}",
                            value=wanted)
        if not all(keep):
            left = [(p.label, ds) for p, ds, k in zip(pieces, per, keep, strict=True) if not k]
            gone = sorted({d for _, ds in left for d in ds})
            ctx.sub(f"pieces {', '.join(label for label, _ in left)} ({', '.join(gone)}) left out "
                    f"(--datasets {' '.join(wanted)})")
        return [p for p, k in zip(pieces, keep, strict=True) if k]

    def _present(self, ctx: Context, pieces: list[Piece]) -> list[Piece]:
        """Without ``--datasets``: the pieces on image datasets read from disk (ImageNet, Tiny-ImageNet) run where
        their data is present and are left out, said as a substitution, where it is not (the user names them with
        ``--datasets`` to require them)."""
        from lth.data.images import IMAGE_DATASETS

        absent: dict[str, str] = {}
        for name in sorted({d for p in pieces for d in self.datasets([p])} & set(IMAGE_DATASETS)):
            try:
                _image_layout(name, ctx.data_dir)
            except UserError as e:
                absent[name] = str(e)
        if not absent:
            return pieces
        keep = [p for p in pieces if not set(self.datasets([p])) & set(absent)]
        left = [p.label for p in pieces if p not in keep]
        for name, why in absent.items():
            ctx.sub(f"pieces {', '.join(left)} left out: no {name} data ({why}); docs/scale.md says how to lay it "
                    f"out, --datasets {name} requires it")
        if not keep:
            raise UserError(f"recipe {self.name}: every piece needs data that is not here: "
                            + "; ".join(absent.values()))
        return keep

    def check_data(self, pieces: list[Piece], data_dir: str | Path | None) -> None:
        """Before anything trains: a UserError naming the missing files and the folder they go in."""
        from lth.data.datasets import locate
        from lth.data.images import IMAGE_DATASETS

        for name in self.datasets(pieces):
            try:
                if name in IMAGE_DATASETS:
                    _image_layout(name, data_dir)
                else:
                    locate(name, data_dir, download=False)
            except UserError as e:
                raise UserError(f"recipe {self.name}: {e}") from None

    def nodes(self, pieces: list[Piece]) -> list[Node]:
        """All pieces' nodes, each path once."""
        out: dict[str, Node] = {}
        for p in pieces:
            for n in p.all_nodes():
                out.setdefault(str(n.path), n)
        return list(out.values())

    def estimate(self, quick: bool, device: str = "cpu", datasets: Sequence[str] | None = None) -> dict[str, Any]:
        """``{"runs", "seconds"}`` of the pieces :meth:`select` keeps for ``datasets`` (all pieces when None): every
        run of the graph, ancestors included (a stability copy's trunk), and a rough time: per run, its steps
        (from its start to its end) at ``max(OVERHEAD, 3 x forward operations x batch / FLOPS)`` seconds each
        (:data:`CPU_FLOPS` / :data:`GPU_FLOPS`), counting once the runs that share a digest (trained once); on the
        CPU plus :data:`CPU_START` and :data:`CPU_PER_RUN` a run."""
        import tempfile

        from lth.data.describe import describe
        from lth.graph import closure

        with tempfile.TemporaryDirectory() as tmp:
            ctx = Context(quick=quick, root=Path(tmp), datasets=datasets)
            nodes = closure(self.nodes(self.select(ctx, self.plan(ctx))))
        cpu = device == "cpu"
        rate = CPU_FLOPS if cpu else GPU_FLOPS
        seconds = 0.0
        cache: dict[tuple, tuple[float, int, float]] = {}
        for n in {n.digest: n for n in nodes}.values():
            s = n.spec
            key = (s.data.dataset, s.model.model, s.model.norm, s.model.width, s.data.batch_size)
            if key not in cache:
                info = describe(s.data, None)
                net = (s.model.model, s.model.norm, s.model.width, info.example_shape, info.num_classes)
                floor = max(CPU_OVERHEAD, step_overhead(*net)) if cpu else GPU_OVERHEAD
                cache[key] = (3.0 * forward_flops(*net) * s.data.batch_size,
                              max(1, info.steps_per_epoch(s.data.batch_size)), floor)
            step_ops, spe, floor = cache[key]
            steps = max(0, s.train.training_steps.iterations(spe) - n.start_step.iterations(spe))
            seconds += steps * max(floor, step_ops / rate)
        if cpu:
            seconds += CPU_START + CPU_PER_RUN * len({n.digest for n in nodes})
        return {"runs": len(nodes), "seconds": seconds}

    def run(self, ctx: Context, ex: Any) -> RecipeResult:
        """Plan, keep the pieces on ``ctx.datasets`` (:meth:`select`), check their data, train what is missing (one
        graph), measure, compare."""
        started = time.perf_counter()
        pieces = self.select(ctx, self.plan(ctx))
        self.check_data(pieces, ctx.data_dir)
        records = ex.run(self.nodes(pieces))
        failed = [r for r in records if r.get("status") in ("failed",)]
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0]['path']}: {failed[0].get('error')}")
        results: dict[str, Any] = {}
        for p in pieces:
            if p.plan is not None and hasattr(p.plan, "records"):
                results[p.label] = p.plan.records(records)
            else:
                paths = {str(n.path) for n in p.all_nodes()}
                results[p.label] = [r for r in records if r["path"] in paths]
        measured = self.measure(ctx, pieces, results, ex)
        rescaled = ctx.scale.levels is not None or ctx.scale.steps is not None  # --levels / --training-steps
        rows = compare(self.paper_numbers, measured, ctx.quick or rescaled)
        return RecipeResult(self.name, rows, self.verdicts(ctx, measured), list(ctx.substitutions), results,
                            self.extra_tables(ctx, pieces, results), time.perf_counter() - started,
                            self.datasets(pieces))


def _image_layout(name: str, data_dir: str | Path | None) -> Any:
    """The layout of image dataset ``name`` under the data root (a UserError naming what is missing)."""
    from lth.data.datasets import data_root
    from lth.data.images import read_layout

    return read_layout(name, data_root(data_dir))


def compare(paper: Sequence[PaperNumber], measured: dict[str, Measured], quick: bool) -> list[dict[str, Any]]:
    """The paper-vs-lth rows: one per paper number (lth's mean, min, max, n and the difference lth - paper), then
    one per measured quantity the paper gives no number for. In quick mode the setups differ (the report names how),
    so ``comparable`` is False there."""
    rows = []
    seen = set()
    for pn in paper:
        m = measured.get(pn.key)
        seen.add(pn.key)
        rows.append(_row(pn.key, pn.value, pn.source, pn.unit, m, quick, pn.setup))
    for key, m in measured.items():
        if key not in seen:
            rows.append(_row(key, None, "the paper gives no number", "", m, quick))
    return rows


def _row(key: str, paper: float | None, source: str, unit: str, m: Measured | None, quick: bool,
         setup: str = "") -> dict[str, Any]:
    vals = [] if m is None else [x for x in m.values if x is not None and math.isfinite(x)]
    mean = sum(vals) / len(vals) if vals else None
    return {"quantity": key, "paper": paper, "lth": mean, "lth_min": min(vals) if vals else None,
            "lth_max": max(vals) if vals else None, "n": len(vals),
            "difference": None if mean is None or paper is None else mean - paper, "unit": unit,
            "source": source, "how": "" if m is None else m.note,
            "comparable": bool(vals) and paper is not None and not quick and not setup, "paper_setup": setup}


# ------------------------------------------------------------------------------------------------ helpers
def accuracies(records: list[dict[str, Any]], *, level: int | None = None, branch: str | None = None,
               rewind: str | None = None) -> list[float]:
    """Final test accuracies (fractions) of the records at ``level`` (and ``branch``, ``rewind`` when given)."""
    out = []
    for r in records:
        if level is not None and r.get("level") != level:
            continue
        if branch is not None and r.get("branch") != branch:
            continue
        if rewind is not None and r.get("rewind") != rewind:
            continue
        if r.get("final_test_accuracy") is not None:
            out.append(float(r["final_test_accuracy"]))
    return out


def level_at_density(density: float, fraction: float) -> int:
    """The IMP level whose density (1 - fraction)^level is closest to ``density`` (at least 1)."""
    return max(1, round(math.log(density) / math.log(1.0 - fraction)))


def density_of(records: list[dict[str, Any]], level: int) -> float | None:
    """The (mean) density of the trunk records at ``level``."""
    d = [r["density"] for r in records if r.get("level") == level and r.get("density") is not None]
    return sum(d) / len(d) if d else None


def run_metrics(root: Path, paths: Sequence[str]) -> pd.DataFrame:
    """The store's metrics rows of the runs at ``paths``."""
    from lth.analysis import metrics_frame

    m = metrics_frame(Path(root))
    return m[m["path"].isin([str(p) for p in paths])] if not m.empty else m


def sizes(ctx: Context, full: dict[str, Any], quick: dict[str, Any]) -> tuple[int, int, str | None]:
    """``(levels, replicates, steps)`` at ``ctx``'s scale (``full``/``quick``: dicts with those keys, steps
    None for the preset's, levels None where the recipe picks each piece's level and names it itself); every
    difference from ``full`` is recorded as a substitution."""
    cfg = quick if ctx.quick else full
    levels = ctx.scale.pick("levels", cfg["levels"])
    reps = ctx.scale.pick("replicates", cfg["replicates"])
    steps = ctx.scale.pick("steps", cfg["steps"])
    if full["levels"] is not None and levels != full["levels"]:
        ctx.sub(f"{levels} pruning levels instead of {full['levels']}")
    if reps != full["replicates"]:
        ctx.sub(f"{reps} replicates instead of {full['replicates']}")
    if steps:
        ctx.sub(f"{steps} of training per run instead of the paper's")
    return levels, reps, steps


def check_rewinds(ctx: Context, preset: str, rewinds: Sequence[str], **overrides: Any) -> None:
    """Before planning: a user's ``training_steps`` (``ctx.scale.steps``) shorter than the recipe's latest
    rewinding step (for ``preset`` with ``overrides``, as the recipe trains it) is a UserError naming
    ``training_steps`` (``--training-steps`` on the command line), the rewinding step and what is allowed, not the
    ``rewind`` the user never gave."""
    from lth.data.describe import describe
    from lth.spec import Step

    if ctx.scale.steps is None or not rewinds:  # the recipe's own lengths hold its rewinding steps
        return
    from lth.studies.base import resolve_spec

    s, _ = resolve_spec(preset, overrides)
    spe = max(1, describe(s.data, ctx.data_dir).steps_per_epoch(s.data.batch_size))
    latest = max(rewinds, key=lambda k: Step.parse(k).iterations(spe))
    if Step.parse(latest).iterations(spe) > s.train.training_steps.iterations(spe):
        raise UserError(f"{ref('training_steps')} {ctx.scale.steps}: shorter than the recipe's rewinding step "
                        f"{latest}; allowed: at least {latest}" + ("" if ctx.quick else f" (or {ref('quick')})"),
                        value=ctx.scale.steps, allowed=f"at least {latest}")


def average_curve_extremes(metrics: pd.DataFrame, steps_per_epoch: int) -> dict[str, float]:
    """Seed 004's summary (its FC-1 and LeNet5 tables): over the runs in ``metrics`` (the replicates of one
    model), the test accuracy and the training loss averaged across runs at each evaluation; the maximum average
    accuracy and its epoch, the minimum average training loss and its epoch (epoch = iteration / steps per
    epoch)."""
    g = metrics.groupby("iteration")[["test_accuracy", "train_loss"]].mean(numeric_only=True)
    acc, loss = g["test_accuracy"].dropna(), g["train_loss"].dropna()
    out: dict[str, float] = {}
    if not acc.empty:
        out.update(max_accuracy=float(acc.max()), max_accuracy_epoch=float(acc.idxmax()) / steps_per_epoch)
    if not loss.empty:
        out.update(min_loss=float(loss.min()), min_loss_epoch=float(loss.idxmin()) / steps_per_epoch)
    return out


@functools.lru_cache(maxsize=64)
def step_overhead(model: str, norm: str, width: float, example_shape: tuple[int, ...], num_classes: int) -> float:
    """The CPU floor of one network's training step: :data:`CPU_LAYER_OVERHEAD` per prunable layer by its kind
    (:func:`lth.prune.kinds_of`, on :func:`lth.models.shape_model`)."""
    from lth.models import shape_model
    from lth.prune import kinds_of

    kinds = kinds_of(shape_model(model, example_shape, num_classes, norm, width))
    return sum(CPU_LAYER_OVERHEAD.get(k, CPU_LAYER_OVERHEAD["fc"]) for k in kinds.values())


@functools.lru_cache(maxsize=64)
def forward_flops(model: str, norm: str, width: float, example_shape: tuple[int, ...], num_classes: int) -> float:
    """Floating point operations of one network's forward pass on one example (``torch.utils.flop_counter``, on the
    meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lth.models import build_model, shape_model

    def count(net: torch.nn.Module) -> float:
        net.eval()
        device = next(net.parameters()).device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 1, *example_shape, device=device))
        return float(counter.get_total_flops())

    try:
        return count(shape_model(model, example_shape, num_classes, norm, width))  # meta: no arithmetic
    except Exception:  # noqa: BLE001 - a forward that reads a tensor's value: count on the CPU
        return count(build_model(model, 1, example_shape, num_classes, norm, width))


def plan_lottery(preset: str, levels: int, *, root: str | Path, replicates: int = 1,
                 rewind: Sequence[str] = ("0it",), branches: Sequence[str] | dict[str, dict[str, Any]] = (),
                 branch_levels: list[int] | None = None, data_dir: str | Path | None = None,
                 pruning: dict[str, Any] | None = None, pretrain_steps: str | None = None,
                 pretrain_task: str = "standard", pretrain_sparse: bool = False, pretrain_length: str | None = None,
                 **overrides: Any) -> Any:
    """A recipe's lottery piece: IMP trunks of ``preset`` (one per ``rewind`` step; with ``pretrain_steps`` K, one
    rewound to K whose state at K is pretrained on ``pretrain_task``) and ``branches`` (names, or ``{name:
    options}``) at ``branch_levels``, as a :class:`~lth.lottery.plan.LotteryPlan` under ``root``. ``pruning``:
    fields over the preset's pruning recipe; ``overrides``: spec fields (``training_steps="10it"``). The lottery
    study's planning (:func:`lth.studies.lottery.plan_lottery`, every check included), so it plans the same nodes
    (every hash and path) as ``lth lottery`` with the same settings."""
    from lth.studies.base import resolve_spec
    from lth.studies.lottery import LotteryOptions, pruning_of
    from lth.studies.lottery import plan_lottery as plan
    from lth.studies.runtime import RuntimeOptions

    spec, name = resolve_spec(preset, overrides)
    rewinds = [str(k) for k in rewind]
    if pretrain_steps is not None and tuple(rewinds) == ("0it",):
        rewinds = []  # the pretraining step K is the rewind step
    opts = LotteryOptions.from_values({
        "levels": levels, "replicates": replicates, "branches": branches, "branch_levels": branch_levels,
        "pretrain_steps": pretrain_steps, "pretrain_task": pretrain_task if pretrain_steps is not None else None,
        "pretrain_sparse": pretrain_sparse, "pretrain_length": pretrain_length,
        **({"rewind": rewinds} if rewinds else {})})
    runtime = RuntimeOptions(root=str(root), data_dir=None if data_dir is None else str(data_dir))
    return plan(spec, pruning_of(preset, pruning), opts, runtime, preset=name, given=overrides)
