"""The train study: replicates of one spec, trained together as one population (``lth train``, ``lth.api.train``),
and the check every study shares that a model given as a Python class or factory can reach the worker processes
of the Ray and Slurm executors (the spec itself comes from :func:`lth.studies.base.resolve_spec`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lth.errors import ref
from lth.graph import Node
from lth.options import Options, option
from lth.progress import Progress
from lth.spec import TrainSpec, past_end, spec_hash
from lth.studies.base import StudyResult, generated_name, model_name, progress_of, resolve_spec
from lth.studies.runtime import RuntimeOptions, check_fits, default_root


@dataclass(frozen=True)
class TrainOptions(Options):
    """What ``lth train`` trains beside the spec: how many replicates, and whether a diverged run fails it."""

    PREFIX: ClassVar[str] = ""
    replicates: int = option(1, "number of replicates", low=1)
    strict: bool = option(False, "exit 1 when any run diverged")


def check_workers(spec: TrainSpec, runtime: RuntimeOptions) -> None:
    """Before anything is planned: a model given as a Python class or factory can reach the worker processes of
    the executor (Ray, Slurm: pickled with cloudpickle); a one-line UserError naming ``model`` otherwise."""
    from lth.executor.work import shipped_models

    if runtime.executor.kind != "local":
        shipped_models([spec.model.model], runtime.executor.kind)


# ------------------------------------------------------------------------------------------------ the study
class TrainPlan(list[Node]):
    """The nodes of a train study (one per replicate, under ``<root>/train_<hash>/``): a list of
    :class:`~lth.graph.Node`, with the spec, preset, options and runtime they were planned under."""

    def __init__(self, nodes: list[Node], spec: TrainSpec, preset: str, options: TrainOptions,
                 runtime: RuntimeOptions) -> None:
        super().__init__(nodes)
        self.spec, self.preset, self.options, self.runtime = spec, preset, options, runtime


def plan_train(spec: TrainSpec, opts: TrainOptions, runtime: RuntimeOptions, *, preset: str = "custom",
               given: Mapping[str, Any] | None = None) -> TrainPlan:
    """The nodes of ``opts.replicates`` runs of ``spec`` keeping ``runtime.save_states``. Every check runs here,
    before anything is written: the network and the runs fit (:func:`~lth.studies.runtime.check_fits`; ``given``:
    the spec fields the user set, as given), each saved step lies inside training, the model reaches the workers."""
    from lth.data.describe import describe
    from lth.store import run_path

    check_workers(spec, runtime)
    check_fits(runtime, spec, opts.replicates, "replicates", opts.replicates, dict(given or {}))
    info = describe(spec.data, runtime.data_dir)
    spe = max(1, info.steps_per_epoch(spec.data.batch_size))
    total = spec.train.training_steps.iterations(spe)
    for step in runtime.save_states:
        if step.iterations(spe) > total:
            raise past_end(ref("save_states"), step, spec.train.training_steps, total)
    keep = tuple((str(s), s) for s in runtime.save_states)
    digest = spec_hash(spec)
    nodes = [Node(spec, r, run_path(runtime.store, "train", digest, r), keep=keep,
                  meta={"preset": preset, "kind": "train"}) for r in range(opts.replicates)]
    return TrainPlan(nodes, spec, preset, opts, runtime)


def run_train(plan: TrainPlan, progress: Progress | bool | None = None) -> StudyResult:
    """Train what is missing of ``plan`` (``progress``: the CLI's :class:`~lth.progress.Progress`, True for a new
    one, False for none); ``{"runs": [record, ...]}``, the document of ``lth train --json``."""
    from lth.executor.base import missing_states
    from lth.store import RunDir

    with progress_of(progress) as p:
        ex = plan.runtime.make_executor(p, "train")
        telemetry = ex.options.telemetry_every is not None  # a finished run without it is replayed to record it
        done = all(RunDir(n.path).done is not None and not missing_states(n)
                   and not (telemetry and not RunDir(n.path).has_telemetry()) for n in plan)
        records = ex.run(list(plan))  # checks first (the data a stored run read included), then trains what is missing
        if done:
            p.console.print(f"already trained: nothing to do; results in {plan[0].path.parent}")
        if p.populations:
            n, sizes = len(p.populations), ", ".join(map(str, p.populations))
            p.console.print(f"trained {n} population{'s' if n > 1 else ''} (sizes {sizes})")
    return StudyResult({"runs": records})


def train(preset: str | TrainSpec, opts: TrainOptions | None = None, runtime: RuntimeOptions | None = None, *,
          progress: Progress | bool | None = None, **overrides: Any) -> StudyResult:
    """Plan and run a train study in one call: ``train("digits_mlp", TrainOptions(replicates=2), lr=0.01)``."""
    spec, name = resolve_spec(preset, overrides, tuple(f.name for f in TrainOptions.option_fields()))
    runtime = runtime or RuntimeOptions(root=default_root())
    return run_train(plan_train(spec, opts or TrainOptions(), runtime, preset=name, given=overrides), progress)


__all__ = ["TrainOptions", "TrainPlan", "check_workers", "generated_name", "model_name", "plan_train", "run_train",
           "train"]
