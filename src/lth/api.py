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

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lth.engine.train import EngineOptions
from lth.errors import UserError
from lth.executor import EXECUTORS, Executor
from lth.graph import Node
from lth.lottery import Trunk, branch_options
from lth.lottery.plan import LotteryPlan
from lth.presets import get_preset
from lth.prune import PruneHparams
from lth.spec import Step, TrainSpec, hparam_fields, parse_value, replace_fields, spec_hash
from lth.store import run_path


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


def _whole(name: str, value: Any, minimum: int) -> int:
    """``value`` when it is a whole number >= ``minimum`` (not a bool, not a string), else the one-line UserError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name}: bad value {value!r}; allowed: a whole number >= {minimum}")
    return value


def _names(name: str, value: Any) -> list[str]:
    """A list of names or steps; one string is split at commas and spaces (``"reinit,random-mask"``, as the CLI
    takes it), where iterating it would give its characters."""
    if isinstance(value, str):
        return [x for x in value.replace(",", " ").split() if x]
    try:
        return list(value)
    except TypeError:
        raise UserError(f"{name}: bad value {value!r}; allowed: a list of strings") from None


def _steps(name: str, value: Any) -> tuple[tuple[str, Step], ...]:
    """``save_states`` (a list of steps, or one string of them) as (name, step) pairs, as ``--save-states`` gives
    them; a bad step is the one-line UserError naming ``name``."""
    out = []
    for x in _names(name, value):
        if not isinstance(x, str):
            raise UserError(f"{name}: bad value {x!r}; allowed: steps such as '500it' or '2ep'")
        try:
            step = Step.parse(x)
        except UserError as e:
            raise UserError(f"{name}: {e}") from None
        out.append((str(step), step))
    return tuple(out)


@dataclass
class Plan(LotteryPlan):
    """A :class:`~lth.lottery.plan.LotteryPlan` whose trunk levels and branches also keep ``save_states``
    (``--save-states`` of ``lth lottery``): :meth:`nodes` asks each run for the steps inside it."""

    save_states: tuple[tuple[str, Step], ...] = ()

    def nodes(self) -> list[Node]:
        """Trunk nodes, then branch nodes, each keeping the ``save_states`` steps that lie in its run."""
        from lth.studies.runtime import keep_states

        return keep_states(super().nodes(), self.save_states, self.trunks[0].spec, self.spe, "save_states")


def _keyword(call: Any, name: Any = None) -> Any:
    """``call()``, with a UserError that names a flag (``--batch-size: ...``) naming the keyword argument instead
    (``batch_size: ...``; ``name``: that name, or a function of the flag without dashes): the API's arguments are
    the flags without dashes."""
    try:
        return call()
    except UserError as e:
        text = str(e)
        m = re.match(r"--([a-z0-9-]+)", text)
        if not m:
            raise
        flag = m.group(1).replace("-", "_")
        raise UserError((name(flag) if callable(name) else name or flag) + text[m.end():]) from None


def _preset(name: Any) -> Any:
    """The preset called ``name``; the one-line UserError (``preset: ...``, the allowed names) otherwise."""
    if not isinstance(name, str):
        from lth.presets import PRESETS

        raise UserError(f"preset: bad value {name!r}; allowed: {', '.join(PRESETS)}")
    return _keyword(lambda: get_preset(name))


def spec(preset: str, _own: tuple[str, ...] = (), **overrides: Any) -> TrainSpec:
    """A preset's spec with field overrides (``lr=0.01``), validated. (``_own``: the caller's other keywords, named
    beside the hyperparameters when a keyword is neither.)"""
    base = _preset(preset).spec
    try:
        s = _keyword(lambda: replace_fields(base, overrides))
    except UserError as e:
        if not _own or not str(e).startswith("unknown hyperparameter"):
            raise
        raise UserError(str(e).replace("unknown hyperparameter", "unknown keyword argument", 1).replace(
            "; allowed: ", f"; allowed: {', '.join(_own)}, or a hyperparameter: ", 1)) from None
    _keyword(s.validate)
    return s


def train(preset: str, *, replicates: int = 1, root: str | Path = "runs",
          save_states: Iterable[str] = (), **overrides: Any) -> list[Node]:
    """The nodes of ``lth train``: one per replicate under ``<root>/train_<hash>/``."""
    s = spec(preset, ("replicates", "root", "save_states"), **overrides)
    _whole("replicates", replicates, 1)
    keep = _steps("save_states", save_states)
    return [Node(s, r, run_path(Path(root), "train", spec_hash(s), r), keep=keep,
                 meta={"preset": preset, "kind": "train"}) for r in range(replicates)]


def lottery(preset: str, levels: int, *, replicates: int = 1, rewind: Iterable[str] = ("0it",),
            branches: Iterable[str] | dict[str, dict[str, Any]] = (), branch_levels: list[int] | None = None,
            root: str | Path = "runs", data_dir: str | Path | None = None,
            pruning: dict[str, Any] | None = None, pretrain_steps: str | None = None,
            pretrain_task: str = "standard", pretrain_sparse: bool = False, save_states: Iterable[str] = (),
            **overrides: Any) -> Plan:
    """IMP trunks (one per rewind step) and branches off their levels, as one plan (``plan.nodes()``).

    ``save_states=["5it", "1ep"]``: every trunk level and branch run also keeps its weights at those steps that lie
    in its run (from its start step on, as ``lth lottery --save-states``); a finished run is replayed to keep them.

    ``pretrain_steps="K"``: the state at the rewind step K is pretrained on ``pretrain_task`` (standard,
    random-labels, rotation, blur, rotation+blur; ``pretrain_sparse``: each level's ticket under its mask);
    ``rewind`` is then K (left at its default, it is set to K)."""
    import dataclasses

    from lth.lottery.pretrain import Pretraining

    s = spec(preset, ("levels", "replicates", "rewind", "branches", "branch_levels", "root", "data_dir", "pruning",
                      "pretrain_steps", "pretrain_task", "pretrain_sparse", "save_states"), **overrides)
    _whole("levels", levels, 0)
    _whole("replicates", replicates, 1)
    rewind = _names("rewind", rewind)
    if not rewind:
        raise UserError(f"rewind: bad value {rewind!r}; allowed: at least one step, e.g. ['0it']")
    if pruning is not None and not isinstance(pruning, Mapping):  # a string would name its characters below
        raise UserError(f"pruning: bad value {pruning!r}; allowed: a dict of pruning settings, e.g. "
                        f"{{'fraction': 0.2}}")
    known = [f.name for f in dataclasses.fields(PruneHparams)]
    if unknown := sorted(set(pruning or {}) - set(known)):
        raise UserError(f"pruning: unknown key {unknown[0]!r}; allowed: {', '.join(known)}")
    types = {n: t for n, _, t in hparam_fields(PruneHparams)}
    given = {k: _keyword(lambda k=k, v=v: parse_value(types[k], v, k), f"pruning[{k!r}]")
             for k, v in (pruning or {}).items()}  # "0.3", ["fc"], True: parsed as the CLI parses its flags
    prune_hp = PruneHparams(**{**_preset(preset).pruning, **given})  # type: ignore[arg-type]
    _keyword(prune_hp.validate, lambda f: f"pruning[{f.removeprefix('pruning_')!r}]")
    pre = None
    if pretrain_steps is not None:
        pre = Pretraining(pretrain_task, pretrain_sparse)
        _keyword(pre.validate)
        k = Step.parse(pretrain_steps)
        rewind = [str(k)] if tuple(rewind) == ("0it",) else list(rewind)
        if any(str(Step.parse(x)) != str(k) for x in rewind):
            raise UserError(f"rewind {list(rewind)}: with pretrain_steps {k} the rewind step is {k}")
    trunks = [Trunk(s, prune_hp, Step.parse(k), Path(root), preset, pre) for k in rewind]
    named = branches if isinstance(branches, dict) else {b: {} for b in _names("branches", branches)}
    opts = {name: branch_options(name, values) for name, values in named.items()}
    plan = Plan(trunks, levels, replicates, opts, branch_levels, data_dir=data_dir,
                save_states=_steps("save_states", save_states))
    if plan.save_states:
        plan.nodes()  # a step after the end of every run: the UserError now, not when it runs
    if any(getattr(o, "set", ()) for o in opts.values()):  # a branch's set milestones inside its training
        from lth.lottery.branches.retrain import check_set_lengths

        check_set_lengths(plan.branch_nodes(), data_dir)
    return plan


def executor(kind: str = "local", *, data_dir: str | Path | None = None, device: str = "auto",
             max_population: int | None = None, **options: Any) -> Executor:
    """An executor (``local``, ``ray``, ``slurm``). Keywords that are :class:`EngineOptions` fields (``compile``,
    ``telemetry_every``, ...) configure the engine; the others go to the executor (``address``, ``retries``,
    ``partition``, ...)."""
    import dataclasses
    import inspect

    from lth.cli.common import check_device

    if kind not in EXECUTORS:
        raise UserError(f"executor: unknown kind {kind!r}; allowed: {', '.join(EXECUTORS)}")
    if isinstance(device, str):
        check_device(device)
    if max_population is not None:
        _whole("max_population", max_population, 1)
    engine_fields = {f.name for f in dataclasses.fields(EngineOptions)}
    engine = {k: v for k, v in options.items() if k in engine_fields}
    own = {k: v for k, v in options.items() if k not in engine_fields}
    params = inspect.signature(EXECUTORS[kind]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = sorted(k for k in (engine_fields | set(params)) - {"options", "data_dir", "max_population", "device"}
                         if not k.startswith("_"))
        if unknown := sorted(set(own) - set(params)):
            raise UserError(f"executor: unknown option {unknown[0]!r}; allowed: data_dir, device, max_population, "
                            f"{', '.join(allowed)}")
    return EXECUTORS[kind](data_dir=data_dir, options=EngineOptions(device=device, **engine),
                           max_population=max_population, **own)


def run(plan: LotteryPlan | Iterable[Node], *, ex: Executor | None = None, **executor_options: Any) -> Any:
    """Train every node of ``plan`` that is not finished. A LotteryPlan gives ``{"runs", "branches"}`` records,
    a list of nodes gives one record per node."""
    if isinstance(plan, LotteryPlan):
        ex = ex or executor(data_dir=plan.data_dir, **executor_options)
        return plan.records(ex.run(plan.nodes()))
    try:
        nodes = list(plan) if not isinstance(plan, str | bytes) else [plan]
    except TypeError:  # not iterable: named as the bad value below
        nodes = [plan]
    if bad := next((n for n in nodes if not isinstance(n, Node)), None):
        raise UserError(f"plan: bad value {bad!r}; allowed: a LotteryPlan (lth.api.lottery) or a list of nodes "
                        f"(lth.api.train)")
    ex = ex or executor(**executor_options)
    return ex.run(nodes)


def _argv(name: str, positional: Iterable[Any], flags: Mapping[str, Any]) -> list[str]:
    """The command line of ``lth <name>`` for :func:`command` (``--json`` added where it has one): each keyword is
    its flag (``save_states`` -> ``--save-states``); ``True`` gives a switch, ``False`` leaves it out (or passes
    ``false`` to a true/false option), ``None`` leaves the flag out, a list gives several values (a repeatable flag
    repeated; a one-value flag such as ``levels`` takes it joined by commas, as the CLI takes ``--levels 3,5,8``).
    One value is written ``--flag=value``, so a value starting with a dash (``-3it``) reaches the command's check."""
    import argparse

    from lth.cli import COMMANDS, build_parser

    if not isinstance(name, str) or name not in COMMANDS:
        raise UserError(f"command: unknown command {name!r}; allowed: {', '.join(COMMANDS)}")
    parser = build_parser(None)
    sub = next(a for a in parser._actions if a.dest == "command").choices[name]  # type: ignore[attr-defined]
    argv = [name, *map(str, positional)]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        action = sub._option_string_actions.get(flag)
        if action is None or flag in ("--help", "--json"):
            allowed = sorted({o[2:].replace("-", "_") for o in sub._option_string_actions if o.startswith("--")}
                             - {"help", "json"})
            import difflib

            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UserError(f"{name}: unknown keyword argument {key!r}{hint}; allowed: {', '.join(allowed)}")
        if value is None:
            continue
        if any(action in g._group_actions and any("--json" in a.option_strings for a in g._group_actions)
               for g in sub._mutually_exclusive_groups):
            raise UserError(f"{key}: bad value {value!r}; allowed: None (lth.api.command returns the --json document, "
                            f"which {flag} replaces)")
        many = action.nargs in ("*", "+")
        if isinstance(value, bool) and action.nargs == 0:
            argv += [flag] if value else []
        elif action.nargs == 0:
            raise UserError(f"{key}: bad value {value!r}; allowed: True or False (a switch)")
        elif isinstance(value, str | int | float | Path):
            argv.append(f"{flag}={str(value).lower() if isinstance(value, bool) else value}")
        elif isinstance(value, Iterable) and not isinstance(value, Mapping) and \
                all(isinstance(v, str | int | float | Path) and not isinstance(v, bool) for v in list(value)):
            value = list(value)
            if isinstance(action, argparse._AppendAction):
                argv += [f"{flag}={v}" for v in value]
            elif many:
                argv += [flag, *map(str, value)]
            else:
                argv.append(f"{flag}={','.join(map(str, value))}")
        else:
            raise UserError(f"{key}: bad value {value!r}; allowed: a string, number, bool or a list of them")
    if "--json" in sub._option_string_actions:
        argv.append("--json")
    return argv


class _Stream(io.TextIOBase):
    """stderr of a command run by :func:`command`: each line goes on to the notebook's stderr as it is written
    (a long call shows its progress), except the ``lth: error:`` line, which becomes the UserError; every line is
    also kept."""

    def __init__(self, target: Any) -> None:
        self.target, self.lines, self._part = target, [], ""

    def write(self, text: str) -> int:
        """Pass on each complete line; keep a partial one until its end."""
        *done, self._part = (self._part + text).split("\n")
        for line in done:
            self.lines.append(line)
            if not line.startswith("lth: error: "):
                self.target.write(line + "\n")
        if done:
            self.target.flush()
        return len(text)

    def close_line(self) -> None:
        """The last line when it has no newline."""
        if self._part:
            self.write("\n")


def command(name: str, *positional: Any, **flags: Any) -> dict[str, Any]:
    """Run ``lth <name>`` in this process and return its JSON document (``--json`` is added): every command is
    reachable with its flags as keyword arguments, named without dashes (``copies=2``, ``save_states=["5it"]``).
    ``True`` gives a switch (``align=True``; ``False`` leaves it out, or passes ``false`` to a true/false option),
    a list gives several values (or repeats a repeatable flag, ``plugin=[...]``; a one-value flag takes it joined
    by commas, ``levels=[1, 2]`` as ``--levels 1,2``). Progress goes to stderr line by line as on the command line;
    a bad value is the command's one-line :class:`UserError`, an unknown keyword a UserError naming the command's
    keywords; a failure is a RuntimeError with the command's line. The command may set torch's thread count
    (``threads=``, ``lth demo``); it is put back afterwards, so a notebook's later cells are not affected."""
    import contextlib
    import json
    import sys

    from lth.cli import main

    argv = _argv(name, positional, flags)
    out, err = io.StringIO(), _Stream(sys.stderr)
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
            code = main(argv)
    finally:
        err.close_line()
        torch.set_num_threads(threads)
    lines = err.lines
    if code == 2:
        line = next((x.removeprefix("lth: error: ") for x in lines if x.startswith("lth: error: ")),
                    lines[-1] if lines else f"lth {name}: bad input")
        parts = line.split("`")  # flags become keywords, but not inside a quoted command line (`lth lottery --x`)
        line = "`".join(p if i % 2 else re.sub(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)",
                                               lambda m: m.group(1).replace("-", "_"), p) for i, p in enumerate(parts))
        if "`lth lottery " in line:  # the trunk a branch or copy needs: say how from Python too
            line += " (from Python: lth.api.run(lth.api.lottery(preset, levels, ...)) with the same keywords)"
        raise UserError(line)
    if code == 1 and not out.getvalue().strip():
        raise RuntimeError(next((x for x in lines if x.startswith("lth: failed")), f"lth {name} failed (exit 1)"))
    return json.loads(out.getvalue()) if out.getvalue().strip() else {}


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
    from lth.studies.stability import PathOptions, StabilityOptions, inputs_from_keywords, run_stability

    got = inputs_from_keywords("stability", preset, keywords, (StabilityOptions, PathOptions))
    opts, path = got.parts
    threads = torch.get_num_threads()  # ``threads=`` is for this study: a notebook's later cells keep theirs
    try:
        result = run_stability(got.spec, got.pruning, opts, path, got.runtime, progress, preset=got.preset,
                               given=got.overrides, ticket=ticket)
    finally:
        torch.set_num_threads(threads)
    return {k: result.frame(k) for k in ("results", "summary")}


def landscape(preset: str | TrainSpec, *, ticket: tuple[Mapping[str, torch.Tensor], Any] | None = None,
              progress: Any = None, **keywords: Any) -> pd.DataFrame:
    """Test error and loss over a plane through stability copies (:func:`lth.studies.landscape.run_landscape`):
    :func:`stability`'s keywords plus ``plane``, ``grid`` and ``margin``; one row per cell and replicate (its
    grid file, figures, minimum test error), the rows of ``lth landscape --json``."""
    from lth.studies.landscape import LandscapeOptions, run_landscape
    from lth.studies.stability import PathOptions, StabilityOptions, inputs_from_keywords

    got = inputs_from_keywords("landscape", preset, keywords, (StabilityOptions, PathOptions, LandscapeOptions))
    opts, path, land = got.parts
    threads = torch.get_num_threads()
    try:
        return run_landscape(got.spec, got.pruning, opts, path, land, got.runtime, progress, preset=got.preset,
                             given=got.overrides, ticket=ticket).frame()
    finally:
        torch.set_num_threads(threads)


def branch(name: str, preset: str, levels: Any, **flags: Any) -> pd.DataFrame:
    """``lth branch NAME``: a branch (``reinit``, ``random-mask``, ...) off a trunk's levels; one row per run."""
    doc = command("branch", name, preset=preset, levels=levels, **flags)
    return pd.DataFrame(doc["runs"])


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
              "results", "run", "runs", "spec", "stability", "state", "ticket", "train"):
    globals()[_name] = _api_face(globals()[_name])
Plan.nodes = _api_face(Plan.nodes)  # type: ignore[method-assign]

__all__ = ["Plan", "branch", "command", "executor", "hessian", "landscape", "lottery", "presets", "recipe", "report",
           "results", "run", "runs", "spec", "stability", "state", "ticket", "train"]
