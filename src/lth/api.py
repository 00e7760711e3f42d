"""The Python API: plan experiments as graphs of nodes, run them, read the results as DataFrames.

    import lth.api as lth
    plan = lth.lottery("digits_mlp", levels=3, replicates=2, branches=["reinit", "random-mask"],
                       root="runs", training_steps="2ep")
    records = lth.run(plan)            # trains what is missing, as populations
    df = lth.results("runs")          # one row per run per evaluation
    weights, mask = lth.ticket(next(r["path"] for r in records["runs"] if r["level"] == 3))   # m * theta_0, m

Keyword overrides are spec fields by name (``lr=3e-4``, ``training_steps="2ep"``), parsed as the CLI parses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lth.errors import UserError, ref
from lth.executor import Executor
from lth.graph import Node
from lth.lottery import BRANCHES, branch_options  # noqa: F401  (branch_options: a branch's options by name)
from lth.lottery.plan import LotteryPlan
from lth.options import Options
from lth.progress import Progress
from lth.spec import TrainSpec, hparam_fields
from lth.studies.base import StudyResult, progress_of, resolve_spec
from lth.studies.branch import BranchStudyOptions, plan_branch, run_branch
from lth.studies.lottery import LotteryOptions, LotteryStudyPlan, plan_lottery, pruning_of, unknown_branch
from lth.studies.runtime import RUNTIME_KEYWORDS, RuntimeOptions, default_root, runtime_from_keywords
from lth.studies.train import TrainOptions, TrainPlan, plan_train


def _api_face(fn: Any) -> Any:
    """``fn`` raising its UserErrors rendered for Python: fields named as keywords (``pruning["fraction"]``)."""
    import functools

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise e.for_face("api") from None

    return call


def _names(name: str, value: Any) -> list[str]:
    """A list of names or steps; one string is split at commas and spaces (``"reinit,random-mask"``, as the CLI
    takes it), where iterating it would give its characters."""
    if isinstance(value, str):
        return [x for x in value.replace(",", " ").split() if x]
    try:
        return list(value)
    except TypeError:
        raise UserError(f"{name}: bad value {value!r}; allowed: a list of strings") from None


# ------------------------------------------------------------------------------------------------ train, lottery
Plan = LotteryStudyPlan  # what lottery() returns: trunks and branches as one plan (plan.nodes()), run by run()

def _split_runtime(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(runtime keywords, the others: hyperparameters) of a study's keywords."""
    runtime = {k: v for k, v in values.items() if k in RUNTIME_KEYWORDS}
    return runtime, {k: v for k, v in values.items() if k not in runtime}


def _python_values(cls: type[Options], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` for ``cls``'s fields, with a string refused where a whole number is expected (the command line's
    strings are parsed; in Python, ``levels="3"`` is a mistake worth saying)."""
    fields = {f.name: f for f in cls.option_fields()}
    for key, v in values.items():
        f = fields.get(key)
        if f is not None and f.type in (int, int | None) and isinstance(v, str):
            raise UserError.bad(f.path, v, f.allowed_text())
    return dict(values)


def spec(preset: str | TrainSpec, _own: tuple[str, ...] = (), **overrides: Any) -> TrainSpec:
    """A preset's spec (or a :class:`~lth.spec.TrainSpec` given as is) with field overrides (``lr=0.01``;
    ``model=MyNet``: a model class or factory), validated. (``_own``: the caller's other keywords, named beside the
    hyperparameters when a keyword is neither.)"""
    return resolve_spec(preset, overrides, _own)[0]


def train(preset: str | TrainSpec, *, replicates: int = 1, root: str | Path = "runs",
          save_states: Iterable[str] = (), **overrides: Any) -> TrainPlan:
    """The nodes of ``lth train``: one per replicate under ``<root>/train_<hash>/`` (a list, with the spec and
    runtime it was planned under, for :func:`run`). ``preset``: a preset name or a TrainSpec; keywords are spec
    fields (``lr=0.01``; ``model=MyNet``: a model class or factory, registered under a stable name) or runtime
    options (``device``, ``executor``, ``slurm={...}``, ...). Checked here, before anything is written: the
    capacity, the saved steps, a model that must reach a cluster's workers."""
    runtime_kw, hparams = _split_runtime(overrides)
    s, name = resolve_spec(preset, hparams, ("replicates", "root", "save_states", *RUNTIME_KEYWORDS))
    opts = TrainOptions.from_values(_python_values(TrainOptions, {"replicates": replicates}))
    runtime = runtime_from_keywords({"root": root, "save_states": save_states, **runtime_kw})
    return plan_train(s, opts, runtime, preset=name, given=hparams)


def lottery(preset: str | TrainSpec, levels: int, *, replicates: int = 1, rewind: Iterable[str] | None = None,
            branches: Iterable[str] | Mapping[str, Mapping[str, Any]] = (), branch_levels: Any = None,
            root: str | Path = "runs", data_dir: str | Path | None = None,
            pruning: Mapping[str, Any] | None = None, pretrain_steps: str | None = None,
            pretrain_task: str | None = None, pretrain_sparse: bool = False, pretrain_length: str | None = None,
            save_states: Iterable[str] = (), **overrides: Any) -> Plan:
    """IMP trunks (one per rewind step; default 0it) and branches off their levels (``branches``: names, or
    ``{name: {option: value}}``), as one plan (``plan.nodes()``). ``preset``: a preset name or a TrainSpec;
    keywords are spec fields (``model=MyNet``: a model class or factory) or runtime options (``device``,
    ``executor``, ...). Every check of ``lth lottery`` runs here, before anything is written (capacity first).

    ``save_states=["5it", "1ep"]``: every trunk level and branch run also keeps its weights at those steps that lie
    in its run (from its start step on, as ``lth lottery --save-states``); a finished run is replayed to keep them.

    ``pretrain_steps="K"``: the state at the rewind step K is pretrained on ``pretrain_task`` (standard,
    random-labels, rotation, blur, rotation+blur; ``pretrain_sparse``: each level's ticket under its mask);
    ``rewind`` is then K (left out, it is set to K). ``pretrain_length="E"``: the pretraining run trains for E
    steps (default K) and the levels train on from its state at step K of the schedule."""
    runtime_kw, hparams = _split_runtime(overrides)
    own = ("levels", "replicates", "rewind", "branches", "branch_levels", "root", "data_dir", "pruning",
           "pretrain_steps", "pretrain_task", "pretrain_sparse", "pretrain_length", "save_states", *RUNTIME_KEYWORDS)
    s, name = resolve_spec(preset, hparams, own)
    values: dict[str, Any] = {"levels": levels, "replicates": replicates, "branch_levels": branch_levels,
                              "pretrain_sparse": pretrain_sparse,
                              "branches": branches if isinstance(branches, Mapping) else _names("branches", branches)}
    values.update({k: v for k, v in (("rewind", None if rewind is None else _names("rewind", rewind)),
                                     ("pretrain_steps", pretrain_steps), ("pretrain_task", pretrain_task),
                                     ("pretrain_length", pretrain_length))
                   if v is not None})
    opts = LotteryOptions.from_values(_python_values(LotteryOptions, values))
    runtime = runtime_from_keywords({"root": root, "data_dir": data_dir, "save_states": save_states, **runtime_kw})
    return plan_lottery(s, pruning_of(preset, pruning), opts, runtime, preset=name, given=hparams)


def branch(name: str, preset: str | TrainSpec, levels: Any = None, *,
           ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None, **keywords: Any) -> pd.DataFrame:
    """``lth branch NAME``: a branch (``reinit``, ``random-mask``, ...) off a trained trunk's levels (``levels``: 2,
    ``[1, 2]`` or ``"1-3"``); one row per run. Keywords are ``replicates``, ``rewind``, ``pruning``,
    ``progress``, the branch's options (``set=["lr=0.01"]``, ``dn_pool="layer"``), spec fields selecting the trunk,
    or runtime options (``root``, ``device``, ...). A trunk that is not trained is a UserError that says how to
    train it. ``ticket=(state, mask)`` (as :func:`ticket` returns it; then no ``levels``): the branch runs on
    exactly those tensors instead of a trunk's level (stored once under ``<root>/ticket_<hash>/``, the run beside
    it); the branches that need the trunk's dense network (``finetune``, ``oneshot``, ``signs``) are refused."""
    return _branch_result(name, preset, levels, ticket=ticket, **keywords).frame()


def _branch_result(name: str, preset: str | TrainSpec, levels: Any = None, *, replicates: int = 1,
                   rewind: Any = "0it", pruning: Mapping[str, Any] | None = None, progress: bool | Progress = True,
                   ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None, **keywords: Any) -> StudyResult:
    """The branch study's result (``lth branch NAME --json``'s document); on ``ticket`` instead of trunk levels."""
    if name not in BRANCHES:
        raise unknown_branch(str(name), "branch_name")
    if ticket is not None:
        if levels is not None:
            raise UserError(f"{ref('levels')} {levels!r}: a branch on a ticket runs on that ticket, not on trunk "
                            "levels; allowed: leave levels out (or leave ticket out)", value=levels,
                            allowed="leave levels out")
        levels = 0
    own_fields = [f for f, _, _ in hparam_fields(BRANCHES[name].options)]
    runtime_kw, rest = _split_runtime(keywords)
    options = {k: rest.pop(k) for k in list(rest) if k in own_fields}
    own = ("replicates", "rewind", "pruning", "progress", *own_fields, *RUNTIME_KEYWORDS)
    s, pname = resolve_spec(preset, rest, own)
    opts = BranchStudyOptions.from_values(_python_values(BranchStudyOptions, {
        "name": name, "levels": levels, "replicates": replicates, "rewind": _names("rewind", rewind),
        "options": options}))
    runtime = runtime_from_keywords(runtime_kw)
    plan = plan_branch(s, pruning_of(preset, pruning), opts, runtime, preset=pname, given=rest,
                       hint="from Python: lth.api.run(lth.api.lottery(preset, levels, ...)) with the same keywords",
                       ticket=ticket)
    return run_branch(plan, progress)


# Keywords of executor() besides the runtime's: the executor classes' own fields (set after it is made), and the
# engine's options the runtime does not have.
_ENGINE_ONLY = ("channels_last", "checkpoint_seconds")


def executor(kind: str = "local", *, data_dir: str | Path | None = None, device: str = "auto",
             max_population: int | None = None, **options: Any) -> Executor:
    """An executor (``local``, ``ray``, ``slurm``), made from :class:`~lth.studies.runtime.RuntimeOptions` as the
    CLI makes it: its keywords are the runtime's (``telemetry_every="10it"``, ``compile=True``, ``threads=1``,
    ``root``), the executor's (``retries``, and the fields of the Ray or Slurm part flat: ``address``,
    ``cpus_per_task``, ``partition``, ``time``, ``cluster``, ...; or as ``ray={...}`` / ``slurm={...}``), the
    engine's (``channels_last``) and the executor class's own (``poll_s``, ``max_in_flight``, ...)."""
    import dataclasses

    from lth.executor import EXECUTORS
    from lth.options import unknown_name
    from lth.studies.runtime import RayOptions, SlurmOptions

    runtime_kw: dict[str, Any] = {"executor": kind, "data_dir": data_dir, "device": device,
                                  "max_population": max_population}
    parts: dict[str, dict[str, Any]] = {"ray": {}, "slurm": {}}
    part_fields = {"ray": {f.name for f in RayOptions.option_fields()},
                   "slurm": {f.name for f in SlurmOptions.option_fields()}}
    engine: dict[str, Any] = {}
    own: dict[str, Any] = {}
    cls = EXECUTORS[kind] if isinstance(kind, str) and kind in EXECUTORS else None
    handled = {"data_dir", "options", "max_population", "on_population", "on_event", "plugins", "retries", "folder",
               "cluster", "partition", "time_min", "gpus_per_task", "cpus_per_task", "array_parallelism",
               "slurm_extra", "address"}
    own_fields = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_") and f.name not in handled
                  ] if cls is not None else []
    for key, v in options.items():
        if key == "time_min":
            parts["slurm"]["time"] = str(v)
        elif key == "slurm_extra" and isinstance(v, Mapping):
            parts["slurm"]["option"] = [f"{a}={b}" for a, b in v.items()]
        elif kind in parts and key in part_fields[kind] and key != "address":
            parts[kind][key] = v
        elif key in RUNTIME_KEYWORDS:
            runtime_kw[key] = v
        elif key in _ENGINE_ONLY:
            engine[key] = v
        elif key in own_fields:
            own[key] = v
        else:
            allowed = sorted({"data_dir", "device", "max_population", *RUNTIME_KEYWORDS, *_ENGINE_ONLY, *own_fields,
                              *(part_fields[kind] if kind in parts else ())} - {"executor", "kind"})
            raise unknown_name(key, allowed)
    for part, given in parts.items():
        if given:
            runtime_kw[part] = {**runtime_kw.get(part, {}), **given}
    ex = runtime_from_keywords(runtime_kw).make_executor(None)
    if engine:
        ex.options = dataclasses.replace(ex.options, **engine)
    for key, v in own.items():
        setattr(ex, key, v)
    return ex


def run(plan: LotteryPlan | Iterable[Node], *, ex: Executor | None = None, progress: bool | Progress = True,
        **executor_options: Any) -> Any:
    """Train every node of ``plan`` that is not finished, printing progress as the command line does (plain lines
    in a notebook; ``progress=False``: none). A lottery plan gives ``{"runs", "branches"}`` records (and
    ``"pretrain"`` with pretraining), a list of nodes (:func:`train`) one record per node. ``ex``: an executor
    (:func:`executor`); else one of the plan's runtime with ``executor_options`` (``device="cpu"``, ...) applied."""
    from lth.options import unknown_name

    for key in executor_options:
        if key not in RUNTIME_KEYWORDS:
            raise unknown_name(key, ["ex", "progress", *RUNTIME_KEYWORDS])
    if isinstance(plan, LotteryPlan):
        base = getattr(plan, "runtime", None) or RuntimeOptions(
            root=default_root(), data_dir=None if plan.data_dir is None else str(plan.data_dir))
        return plan.records(_execute(plan.nodes(), runtime_from_keywords(executor_options, base), ex, progress))
    try:
        nodes = list(plan) if not isinstance(plan, str | bytes) else [plan]
    except TypeError:  # not iterable: named as the bad value below
        nodes = [plan]
    if not nodes or not all(isinstance(n, Node) for n in nodes):
        bad = next((n for n in nodes if not isinstance(n, Node)), plan)
        raise UserError(f"plan: bad value {bad!r}; allowed: a LotteryPlan (lth.api.lottery) or a list of nodes "
                        f"(lth.api.train)")
    runtime = runtime_from_keywords(executor_options, getattr(plan, "runtime", None))
    return _execute(nodes, runtime, ex, progress)


def _execute(nodes: list[Node], runtime: RuntimeOptions, ex: Executor | None, progress: bool | Progress) -> Any:
    """``nodes`` trained by ``ex`` (else the runtime's executor), reporting to a progress unless ``progress`` is
    False or ``ex`` reports to its own (an executor made without one reports to this one for this call). torch's
    thread count (a runtime's ``threads=``) is put back afterwards, so a notebook's later cells keep theirs."""
    threads = torch.get_num_threads()
    try:
        return _train_nodes(nodes, runtime, ex, progress)
    finally:
        torch.set_num_threads(threads)


def _train_nodes(nodes: list[Node], runtime: RuntimeOptions, ex: Executor | None, progress: bool | Progress) -> Any:
    import dataclasses

    reports = ex is not None and ex.options.callback and ex.on_population and ex.on_event
    if progress is False or reports:  # an executor made with its own progress (lth demo's) reports to that one
        return (ex or runtime.make_executor(None)).run(nodes)
    with progress_of(progress) as p:
        if ex is None:
            return runtime.make_executor(p).run(nodes)
        saved = (ex.options, ex.on_population, ex.on_event)
        if ex.options.callback is None:
            ex.options = dataclasses.replace(ex.options, callback=p.callback)
        ex.on_population = ex.on_population or p.population
        ex.on_event = ex.on_event or p.graph_event
        try:
            return ex.run(nodes)
        finally:
            ex.options, ex.on_population, ex.on_event = saved


def _train_document(preset: str | TrainSpec, *, progress: bool | Progress = True, **keywords: Any) -> dict[str, Any]:
    return {"runs": run(train(preset, **keywords), progress=progress)}


def _lottery_document(preset: str | TrainSpec, levels: int, *, progress: bool | Progress = True,
                      **keywords: Any) -> dict[str, Any]:
    from lth.studies.lottery import lottery_document

    plan = lottery(preset, levels, **keywords)
    return lottery_document(plan, _execute(plan.nodes(), plan.runtime, None, progress))


def _demo_document(*, levels: int | None = None, replicates: int | None = None, training_steps: str | None = None,
                   progress: bool | Progress = True, **keywords: Any) -> dict[str, Any]:
    from lth.options import unknown_name
    from lth.studies.recipe import run_demo

    for key in keywords:
        if key not in RUNTIME_KEYWORDS:
            raise unknown_name(key, ["levels", "replicates", "training_steps", "progress", *RUNTIME_KEYWORDS])
    return run_demo(levels, replicates, training_steps, runtime=runtime_from_keywords(keywords),
                    progress=progress).to_json()


def _results_document(root: str | Path = "runs") -> dict[str, Any]:
    from lth.studies.report import results_document

    return results_document(results(root))


def _hessian_document(root: str | Path = "runs", steps: Any = ("final",), **keywords: Any) -> dict[str, Any]:
    from lth.studies.hessian import hessian as study

    return study(root, _names("steps", steps), **keywords).to_json()


def _presets_document() -> dict[str, Any]:
    from lth.studies.report import presets as study

    return study().to_json()


# ``lth <name>``'s --json document from the study of that command, its flags as keywords (``command``).
COMMANDS: dict[str, Any] = {
    "train": _train_document,
    "lottery": _lottery_document,
    "branch": lambda name, preset, levels, **k: _branch_result(name, preset, levels, **k).to_json(),
    "presets": _presets_document,
    "results": _results_document,
    "report": lambda root="runs", out=None, **k: report(root, out, **k),
    "status": lambda root="runs": status(root),
    "stability": lambda preset, **k: _stability_result(preset, **k).to_json(),
    "landscape": lambda preset, **k: _landscape_result(preset, **k).to_json(),
    "hessian": _hessian_document,
    "demo": _demo_document,
    "recipe": lambda name, **k: recipe(name, **k),
}


def command(name: str, *positional: Any, **flags: Any) -> dict[str, Any]:
    """The JSON document of ``lth <name>`` (what ``--json`` prints), from the study behind that command: every
    command is reachable with its flags as keyword arguments named without dashes (``copies=2``,
    ``save_states=["5it"]``, ``preset="digits_mlp"``; positional arguments as on the command line:
    ``command("branch", "reinit", preset=..., levels=...)``). Progress goes to stderr as plain lines; a bad value
    or an unknown keyword is a one-line :class:`UserError` naming the keyword. Nothing is parsed from a command
    line: this is the same call as the keyword functions (:func:`lottery`, :func:`stability`, ...), returning the
    document instead of DataFrames."""
    import difflib
    import inspect

    from lth.options import unknown_name

    if not isinstance(name, str) or name not in COMMANDS:
        raise unknown_name(str(name), list(COMMANDS), "command", what="command")
    fn = COMMANDS[name]
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
    given = [p.name for p in params[:len(positional)]] + [k for k in flags if k in {p.name for p in params}]
    missing = [p.name for p in params if p.name not in given]
    if missing or len(positional) > len(params) and not any(p.kind is p.VAR_POSITIONAL for p in
                                                             inspect.signature(fn).parameters.values()):
        near = {m: difflib.get_close_matches(m, [str(k) for k in flags], n=1) for m in missing}
        hint = "".join(f" ({near[m][0]!r}: did you mean {m!r}?)" for m in missing if near[m])
        what = (f"missing {', '.join(map(repr, missing))}" if missing
                else f"too many positional arguments {positional!r}")
        raise UserError(f"command {name!r}: {what}{hint}; allowed: {', '.join(p.name for p in params)} (positional "
                        f"or as keywords), then the command's keywords", value=positional)
    threads = torch.get_num_threads()  # threads= (or lth demo's one thread) is for this call only
    try:
        return fn(*positional, **flags)
    finally:
        torch.set_num_threads(threads)


def stability(preset: str | TrainSpec, *, ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None,
              progress: Any = None, **keywords: Any) -> dict[str, pd.DataFrame]:
    """Instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020, Sec. 2-3;
    :func:`lth.studies.stability.run_stability`): copies at step ``rewind`` trained with different SGD noise and
    the error along the straight path between them. ``{"results": one row per pair of copies, "summary": first
    stable k per subnetwork and level}``, the rows of ``lth stability --json``.

    Keywords: the study's (``rewind``, ``levels``, ``subnetwork``, ``copies``, ``replicates``, ``alphas``,
    ``threshold``, ``train_examples``, ``align``, ...), the runtime's (``root``, ``device``, ``executor``, ...),
    ``pruning`` (a dict over the preset's) and hyperparameters (``lr=0.01``). ``ticket=(state, mask)`` (as
    :func:`ticket` returns it): the copies start from exactly those tensors, under that mask, at the one step
    ``rewind`` (stored once under ``<root>/ticket_<hash>/``). ``progress``: a :class:`lth.progress.Progress`, or
    False for only the populations (default: plain lines in a notebook)."""
    result = _stability_result(preset, ticket=ticket, progress=progress, **keywords)
    return {k: result.frame(k) for k in ("results", "summary")}


def _stability_result(preset: str | TrainSpec, *, ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None,
                      progress: Any = None, **keywords: Any) -> StudyResult:
    """The stability study's result (``lth stability --json``'s document)."""
    from lth.studies.stability import PathOptions, StabilityOptions, inputs_from_keywords, run_stability

    got = inputs_from_keywords("stability", preset, keywords, (StabilityOptions, PathOptions))
    opts, path = got.parts
    threads = torch.get_num_threads()  # ``threads=`` is for this study: a notebook's later cells keep theirs
    try:
        return run_stability(got.spec, got.pruning, opts, path, got.runtime, progress, preset=got.preset,
                             given=got.overrides, ticket=ticket)
    finally:
        torch.set_num_threads(threads)


def landscape(preset: str | TrainSpec, *, ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None,
              progress: Any = None, **keywords: Any) -> pd.DataFrame:
    """Test error and loss over a plane through stability copies (:func:`lth.studies.landscape.run_landscape`):
    :func:`stability`'s keywords plus ``plane``, ``grid`` and ``margin``; one row per cell and replicate (its
    grid file, figures, minimum test error), the rows of ``lth landscape --json``."""
    return _landscape_result(preset, ticket=ticket, progress=progress, **keywords).frame()


def _landscape_result(preset: str | TrainSpec, *, ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None,
                      progress: Any = None, **keywords: Any) -> StudyResult:
    """The landscape study's result (``lth landscape --json``'s document)."""
    from lth.studies.landscape import LandscapeOptions, run_landscape
    from lth.studies.stability import PathOptions, StabilityOptions, inputs_from_keywords

    got = inputs_from_keywords("landscape", preset, keywords, (StabilityOptions, PathOptions, LandscapeOptions))
    opts, path, land = got.parts
    threads = torch.get_num_threads()
    try:
        return run_landscape(got.spec, got.pruning, opts, path, land, got.runtime, progress, preset=got.preset,
                             given=got.overrides, ticket=ticket)
    finally:
        torch.set_num_threads(threads)


def hessian(root: str | Path = "runs", steps: Any = ("final",), **keywords: Any) -> pd.DataFrame:
    """The top-``k`` eigenvalues of the training-loss Hessian of every finished run under ``root`` at the given
    stored states (Lanczos; ``lth hessian``); one row per run, state and rank (also written to each run's
    ``hessian.csv``). Keywords: :class:`lth.studies.hessian.HessianOptions`' fields (``k``, ``which``, ``iters``,
    ``bn_mode``, ``examples``, ``preset``) and ``data_dir``, ``device``, ``threads``."""
    from lth.studies.hessian import hessian as study

    return study(root, _names("steps", steps), **keywords).frame()


def report(root: str | Path = "runs", out: str | Path | None = None, **keywords: Any) -> dict[str, Any]:
    """Figures, tables and an index.html of the store at ``root`` (``lth report``) in ``out`` (default
    ``root/report``); ``{"report", "figures", "tables"}`` (paths). (``keywords``: none; a misspelt one is named
    with the nearest.)"""
    from lth.studies.report import ReportOptions
    from lth.studies.report import report as study

    options = ReportOptions.from_values({"root": str(root), "out": None if out is None else str(out), **keywords})
    return study(options).to_json()


def recipe(name: str, **keywords: Any) -> dict[str, Any]:
    """A paper's study reproduced beside its numbers (``lth recipe NAME``; ``list`` lists them), its JSON document
    (``{"recipe", "report", "verdicts", "verdict_basis", "rows", ...}``). Keywords:
    :class:`lth.studies.recipe.RecipeOptions`' fields (``quick``, ``levels``, ``replicates``, ``training_steps``,
    ``datasets``) and the runtime's (``root``, ``data_dir``, ``device``, ``threads``, ``executor``, ...);
    progress goes to stderr as plain lines."""
    from lth.studies.recipe import recipe as study

    return study(name, **keywords).to_json()


def presets() -> pd.DataFrame:
    """One row per preset (``name``, ``note``, ``spec`` as a dict; ``lth presets``)."""
    from lth.studies.report import presets_frame

    return presets_frame()


def results(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run per evaluation (what ``lth results`` prints)."""
    from lth.studies.report import results as study

    return study(root)


def status(root: str | Path = "runs") -> dict[str, Any]:
    """The planned runs of the store at ``root`` that are not in it (``lth status``): ``{"root", "planned",
    "present", "complete", "missing": [{"path", "what", "status", "replicate", "level", "branch", ...}],
    "shortfalls": [{"experiment", "kind", "branch", "level", "planned", "present", "replicates_missing"}],
    "plans"}``; ``complete`` is True when every planned run is present. ``status`` of a missing run: missing,
    unfinished, running, failed, blocked or damaged."""
    from lth.studies.status import StatusOptions
    from lth.studies.status import status as study

    return study(StatusOptions.from_values({"root": str(root)})).to_json()


def runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run."""
    from lth.studies.report import runs as study

    return study(root)


def state(run: str | Path, name: str = "final") -> dict[str, torch.Tensor]:
    """A stored state of one run (its directory, e.g. a ``path`` of :func:`runs`): ``init`` (its initialisation),
    ``rewind`` (for a run that starts at step k > 0, its start), ``final``, or a step it kept (``500it``), as
    ``{parameter name: tensor}`` (the names of its model; for your own ``nn.Module``, yours), loadable with
    ``load_state_dict``."""
    from lth.studies.report import state as read

    return read(run, name)


def ticket(run: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The subnetwork a run trained: ``(weights, mask)``, where ``mask`` maps each pruned parameter's name to a
    bool tensor (True: kept) and ``weights`` is the run's start state (``init``: its initialisation, or its rewind
    point) with pruned weights zeroed: ``m * theta_0`` (Frankle & Carbin 2019), or ``m * theta_k`` with rewinding
    to step k (Frankle et al. 2020). A run without a mask is refused."""
    from lth.studies.report import ticket as read

    return read(run)


def _run(run: str | Path) -> Any:
    """The run directory at ``run`` (:func:`lth.studies.report.run_dir`)."""
    from lth.studies.report import run_dir

    return run_dir(run)


def _store(root: str | Path) -> Path:
    """``root`` as a Path; UserError where no such directory exists (a typo would read as an empty store)."""
    from lth.studies.runtime import existing_store

    return existing_store(str(root), "root")


for _name in ("branch", "command", "executor", "hessian", "landscape", "lottery", "presets", "recipe", "report",
              "results", "run", "runs", "spec", "stability", "state", "status", "ticket", "train"):
    globals()[_name] = _api_face(globals()[_name])

__all__ = ["Plan", "branch", "command", "executor", "hessian", "landscape", "lottery", "presets", "recipe", "report",
           "results", "run", "runs", "spec", "stability", "state", "status", "ticket", "train"]
