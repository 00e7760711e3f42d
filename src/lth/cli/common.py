"""What every command shares: the argparse subclass, one flag walk over any options dataclass, runtime and
executor flags, progress on stderr, and the JSON document on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from lth.errors import UserError
from lth.spec import (
    GROUPS,
    Step,
    TrainSpec,
    hparam_fields,
    parse_value,
    past_end,
    replace_fields,
    to_json_value,
    validate_lengths,
)

DEFAULT_ROOT = "runs"
AUTO_CHECKPOINT_SECONDS = 60.0  # --checkpoint-every auto: lose at most about a minute of a run


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (the CONTRACT's bad-input promise): an unknown flag, command
    or choice is named with the near ones (``did you mean --lr?``) and where the allowed ones are listed."""

    def error(self, message: str) -> NoReturn:
        m = re.fullmatch(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)", message, re.S)
        if m:
            what, value = m.group(1), m.group(2)
            allowed = [c.strip().strip("'") for c in m.group(3).split(",")]
            near = difflib.get_close_matches(value, allowed, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            if what == "command":
                raise UserError(f"unknown command {value!r}{hint}; allowed: {', '.join(allowed)}")
            raise UserError(f"{what}: bad value {value!r}{hint}; allowed: {', '.join(allowed)}")
        raise UserError(message)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, with unknown flags named beside the nearest known ones of the command they were
        given to."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unknown(extras, ns))
        return ns

    def _unknown(self, extras: list[str], ns: argparse.Namespace) -> str:
        """The message for arguments no flag took: the first unknown flag, the nearest known flags of the
        command, and the ``--help`` that lists them."""
        parser: argparse.ArgumentParser = self
        commands: dict[str, argparse.ArgumentParser] = {}
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands = dict(action.choices)
                if getattr(ns, action.dest, None) in action.choices:
                    parser = action.choices[getattr(ns, action.dest)]
        flags = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
        if not flags:
            return f"unrecognized arguments: {' '.join(extras)}; allowed: see `{parser.prog} --help`"
        elsewhere = [name for name, c in commands.items() if c is not parser and flags[0] in c._option_string_actions]
        near = near_flags(flags[0], [o for o in parser._option_string_actions if o.startswith("--")])
        if elsewhere:  # a flag of another command: saying so beats a near spelling of an unrelated flag
            names = ", ".join(f"`lth {n}`" for n in elsewhere[:3]) + (
                f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else "")
            hint = f" ({flags[0]} is a flag of {names}, not of `{parser.prog}`)"
            i = next(i for i, a in enumerate(extras) if a.split("=", 1)[0] == flags[0])
            pair = extras[i].partition("=")[2] or (extras[i + 1] if i + 1 < len(extras) else "")  # --set[=]K=V
            if flags[0] == "--set" and "=" in pair:  # --set KEY=VALUE where each hyperparameter is its own flag
                key, value = pair.split("=", 1)
                same = near_flags("--" + key, [o for o in parser._option_string_actions if o.startswith("--")])
                hint = hint[:-1] + (f"; here each hyperparameter is its own flag: {same[0]} {value})" if same else ")")
        else:
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        return f"unrecognized arguments: {' '.join(extras)}{hint}; allowed: the flags `{parser.prog} --help` lists"


# Names other tools give lth's flags: what a newcomer types first.
_SYNONYMS = {"--learning-rate": "--lr", "--epochs": "--training-steps", "--iterations": "--training-steps",
             "--steps": "--training-steps", "--seed": "--init-seed", "--seeds": "--replicates",
             "--gpu": "--device", "--cuda": "--device", "--output": "--root", "--output-dir": "--root",
             "--out": "--root", "--prune-fraction": "--pruning-fraction", "--pruning-rate": "--pruning-fraction",
             "--prune-rate": "--pruning-fraction", "--rounds": "--levels", "--data": "--data-dir"}


def near_flags(flag: str, known: list[str]) -> list[str]:
    """The known flags a mistyped ``flag`` most likely meant (at most two): a synonym lth names otherwise
    (``--epochs`` -> ``--training-steps``), the same flag with dashes (``--data_dir``), a known flag the typed one
    extends (``--lr-rate`` -> ``--lr``), else the close spellings."""
    if flag in _SYNONYMS and _SYNONYMS[flag] in known:
        return [_SYNONYMS[flag]]
    dashed = "--" + flag.lstrip("-").replace("_", "-")
    if dashed in known:
        return [dashed]
    extended = [k for k in known if dashed.startswith(k + "-")]
    if extended:
        return [max(extended, key=len)]
    return difflib.get_close_matches(dashed, known, n=2, cutoff=0.75)


# ------------------------------------------------------------------------------------------------ flags
def _show(v: Any) -> str:
    v = to_json_value(v)
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def add_dataclass_flags(p: argparse.ArgumentParser, cls: type, title: str, flag_of: Any, dest_prefix: str,
                        base: Any = None, aliases: dict[str, str] | None = None, metavar: bool = True) -> None:
    """One flag per field of a flat hyperparameter dataclass (spec groups, pruning, branch options): help text and
    choices from the field's metadata, the preset's value beside it."""
    group = p.add_argument_group(title)
    for name, f, tp in hparam_fields(cls):
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_text += f" ({' | '.join(f.metadata['choices'])})"
        if base is not None:
            help_text += f" [preset: {_show(getattr(base, name))}]"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f"{dest_prefix}{name}"}
        if metavar:
            kwargs["metavar"] = name.upper()
        if str(tp).startswith("tuple"):
            kwargs["nargs"] = "*"
        elif tp is bool:
            kwargs.update(nargs="?", const="true")
        flags = [flag_of(name)] + ([aliases[name]] if aliases and name in aliases else [])
        group.add_argument(*flags, **kwargs)


def add_spec_flags(p: argparse.ArgumentParser, base: TrainSpec | None) -> None:
    """One flag per spec field; help shows the preset's value when a preset is given."""
    for g in GROUPS:
        add_dataclass_flags(p, type(getattr(TrainSpec(), g)), f"{g} hyperparameters",
                            lambda n: f"--{n.replace('_', '-')}", "", getattr(base, g) if base else None,
                            metavar=False)


def dataclass_from_args(args: argparse.Namespace, cls: type, dest_prefix: str, base: Any,
                        flag_of: Any = None) -> Any:
    """``base`` with the flags the user gave (``dest_prefix<field>``) applied and parsed to their types; a bad
    value is a UserError naming the flag as ``flag_of(field)`` spells it (default ``--field-name``)."""
    types = {n: t for n, _, t in hparam_fields(cls)}
    changes = {}
    for k, v in vars(args).items():
        n = k[len(dest_prefix):]
        if not k.startswith(dest_prefix) or n not in types:
            continue
        try:
            changes[n] = parse_value(types[n], v, n)
        except UserError as e:
            default = f"--{n.replace('_', '-')}"
            if flag_of is None or not str(e).startswith(default):
                raise
            raise UserError(flag_of(n) + str(e)[len(default):]) from None
    return dataclasses.replace(base, **changes)


def spec_from_args(args: argparse.Namespace, base: TrainSpec) -> TrainSpec:
    """The preset's spec with every flag the user gave applied, validated."""
    names = {n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(base, g)))}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    spec = replace_fields(base, overrides)
    spec.validate()
    return spec


def pruning_from_args(args: argparse.Namespace) -> Any:
    """The preset's pruning recipe with the pruning flags applied, validated."""
    from lth.presets import get_preset
    from lth.prune import PruneHparams, flag

    base = PruneHparams(**get_preset(args.preset).pruning)  # type: ignore[arg-type]
    hp = dataclass_from_args(args, PruneHparams, "prune__", base, flag)
    try:
        hp.validate()
    except UserError as e:  # name the flag as the user typed it
        typed = [a.split("=", 1)[0] for a in sys.argv + getattr(args, "_argv", [])]
        if "--pruning-strategy" in str(e) and "--strategy" in typed:
            raise UserError(str(e).replace("--pruning-strategy", "--strategy")) from None
        raise
    return hp


def add_pruning_flags(p: argparse.ArgumentParser, base_name: str | None) -> None:
    """``--pruning-*`` flags (and ``--strategy``), with the preset's values in their help."""
    from lth.presets import PRESETS
    from lth.prune import PruneHparams, flag

    base = PruneHparams(**PRESETS[base_name].pruning) if base_name in PRESETS else None  # type: ignore[arg-type]
    add_dataclass_flags(p, PruneHparams, "pruning", flag, "prune__", base, aliases={"strategy": "--strategy"})


def whole_number(text: str, minimum: int, flag: str = "") -> int:
    """``text`` as an int >= ``minimum``; UserError naming the flag and the value otherwise."""
    try:
        v = int(text)
    except ValueError:
        v = minimum - 1
    if v < minimum:
        raise UserError(f"{flag + ' ' if flag else ''}{text!r}: expected a whole number >= {minimum}")
    return v


def _positive(flag: str) -> Any:
    def parse(text: str) -> int:
        return whole_number(text, 1, flag)
    return parse


def add_preset_flag(p: argparse.ArgumentParser) -> None:
    """``--preset`` (required)."""
    p.add_argument("--preset", required=True, help="a preset name (see `lth presets`)")


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Flags that say how and where to train, never what."""
    r = p.add_argument_group("runtime")
    r.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT),
                   help="store directory (default: $LTH_ROOT or ./runs)")
    r.add_argument("--data-dir", default=None, help="data root (default: $LTH_DATA or ~/.cache/lth)")
    r.add_argument("--replicates", type=_positive("--replicates"), default=1, help="number of replicates")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--cuda-graph", default="auto", choices=("auto", "off"),
                   help="capture the training step as a CUDA graph (auto: on for CUDA)")
    r.add_argument("--max-population", type=_positive("--max-population"), default=None,
                   help="most runs trained together as one population (default: from the device)")
    r.add_argument("--checkpoint-every", default="auto",
                   help="checkpoint interval: a step, 'never', or 'auto' (at an epoch's end once 60 s have passed "
                        "since the last checkpoint; the default)")
    r.add_argument("--threads", default=None, metavar="N",
                   help="CPU threads for torch (default: torch's, one per core; on a machine busy with other work "
                        "1 is often much faster)")
    r.add_argument("--telemetry-every", default=None, metavar="STEP",
                   help="record weight telemetry (mean |w|, sign flips, distances to init and final, sampled weights, "
                        "gradient norm) every STEP into telemetry.csv")
    r.add_argument("--telemetry-dense-until", default=None, metavar="STEP",
                   help="record telemetry more often before this step (with --telemetry-dense-every)")
    r.add_argument("--telemetry-dense-every", default=None, metavar="STEP",
                   help="the telemetry interval before --telemetry-dense-until")
    r.add_argument("--mlp-backward", default="auto", choices=("auto", "manual", "autograd"),
                   help="MLPs: the hand-written backward (manual) or autograd's (auto: hand-written on a CPU, and on a "
                        "GPU with --compile)")
    r.add_argument("--tf32", action="store_true",
                   help="CUDA: TF32 for float32 matrix products (faster, rounds differently; cuDNN's convolutions use "
                        "TF32 already); recorded in each run's spec.json")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (MLPs on a GPU: forward and hand-written backward as one "
                        "function, compiled once per process and shape; inside the CUDA graph; adds compile time)")
    r.add_argument("--save-states", nargs="*", default=[], metavar="STEP",
                   help="also keep the weights at these steps (e.g. 500it 2ep), besides init and final: each run "
                        "the command asks for (lottery: trunk levels and branches; branch: its runs; stability, "
                        "landscape: the copies) keeps those inside it, from its start step on; a finished run is "
                        "replayed")
    r.add_argument("--executor", default="local",
                   help="where populations train: local (this process, default) | ray | slurm (docs/cluster.md)")
    r.add_argument("--retries", default=None, metavar="N",
                   help="ray/slurm: how many more times a failed population's runs are tried, each alone (default 1)")
    r.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="ray: the cluster to join (default: a local Ray instance for this command)")
    r.add_argument("--ray-cpus-per-task", default=None, metavar="N", help="ray: CPUs per population (default 1)")
    r.add_argument("--ray-gpus-per-task", default=None, metavar="N",
                   help="ray: GPUs per population (default: 1 where the cluster has GPUs, else 0)")
    r.add_argument("--slurm-partition", default=None, help="slurm: partition (default: the cluster's)")
    r.add_argument("--slurm-time", default=None, metavar="TIME",
                   help="slurm: time limit of each population: minutes, h:mm or d-h:mm (default 4:00)")
    r.add_argument("--slurm-gpus-per-task", default=None, metavar="N", help="slurm: GPUs per population (default 1)")
    r.add_argument("--slurm-cpus-per-task", default=None, metavar="N", help="slurm: CPUs per population (default 4)")
    r.add_argument("--slurm-array-parallelism", default=None, metavar="N",
                   help="slurm: most array elements running at once (default 64)")
    r.add_argument("--slurm-folder", default=None, metavar="DIR",
                   help="slurm: submitit's job files and logs, on a shared file system (default: ROOT/.submitit)")
    r.add_argument("--slurm-cluster", default=None, choices=("slurm", "local", "debug"),
                   help="slurm: submit to Slurm (default), or run the same jobs as local processes / in this process")
    r.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm: another sbatch option (account=proj, qos=high, constraint=a100); repeatable")
    r.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import a module (dotted name or .py file) that registers models or datasets; repeatable")
    r.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def step_flag(text: str, flag: str, suffix: str = "") -> Step:
    """``text`` as a Step (``500it``, ``2ep``); UserError naming the flag (and ``suffix``, e.g. other allowed
    words) otherwise."""
    try:
        return Step.parse(text)
    except UserError as e:
        raise UserError(f"{flag}: {e}{suffix}") from None


def save_steps(args: argparse.Namespace) -> tuple[tuple[str, Step], ...]:
    """``--save-states`` as (name, step) pairs."""
    steps = [step_flag(s, "--save-states") for s in args.save_states]
    return tuple((str(step), step) for step in steps)


def keep_saved_states(args: argparse.Namespace, nodes: list[Any], spec: TrainSpec, spe: int) -> list[Any]:
    """``--save-states`` honoured by a command that trains a graph (lottery, branch, stability, landscape): see
    :func:`keep_states` (the Python API calls it too)."""
    return keep_states(nodes, save_steps(args), spec, spe)


def keep_states(nodes: list[Any], save: tuple[tuple[str, Step], ...], spec: TrainSpec, spe: int,
                flag: str = "--save-states") -> list[Any]:
    """The runs of ``nodes`` (not their ancestors trained before, e.g. a branch's trunk) also keeping each step of
    ``save`` (name, step) that lies in their run (from their start step to their end: a level rewound to k keeps
    the steps from k on; the steps before k are its trunk's level 0's), named by the step (``5it``) unless the run
    keeps that iteration already under another name (``rewind``). Returned parents first, so the executor's graph
    holds these copies (a finished run missing a state is replayed). UserError naming ``flag`` for a step after the
    end of the longest run of ``nodes``, before anything is written."""
    from lth.executor.base import extra_keeps
    from lth.graph import closure

    if not save:
        return nodes
    # a step past the end of every run asked for is an error (a branch's runs may be longer than the trunk's:
    # --finetune-steps); one inside some runs is kept by those
    longest = max(nodes, key=lambda n: n.spec.train.training_steps.iterations(spe), default=None)
    end = longest.spec.train.training_steps if longest is not None else spec.train.training_steps
    for _, step in save:
        if step.iterations(spe) > end.iterations(spe):
            raise past_end(flag, step, end, end.iterations(spe))
    wanted = {n.path for n in nodes}
    out = []
    for n in closure(nodes):  # parents before children: a node's copy is in the graph before its children
        if n.path not in wanted:
            continue
        start, end = n.start_step.iterations(spe), n.spec.train.training_steps.iterations(spe)
        extra = extra_keeps(n, [(name, step) for name, step in save if start <= step.iterations(spe) <= end], spe)
        out.append(n.with_keep(extra.values()) if extra else n)
    return out


def executor_from_args(args: argparse.Namespace, progress: Progress) -> Any:
    """An executor configured by the runtime flags."""
    from lth.engine.train import EngineOptions
    from lth.executor import EXECUTORS

    seconds = None
    if args.checkpoint_every == "never":
        ckpt = None
    elif args.checkpoint_every == "auto":
        ckpt, seconds = Step(1, "ep"), AUTO_CHECKPOINT_SECONDS
    else:
        ckpt = step_flag(args.checkpoint_every, "--checkpoint-every", " (or 'never')")
        if ckpt.count == 0:
            raise UserError(f"--checkpoint-every {args.checkpoint_every}: expected at least 1it, or 'never'")
    device = check_device(args.device)
    check_root(args.root)
    save_steps(args)  # every command that has --save-states: a bad step is an error, not silently ignored
    if getattr(args, "tf32", False) and args.executor == "local":
        import torch

        if (device or torch.device("cuda" if torch.cuda.is_available() else "cpu")).type != "cuda":
            print("lth: --tf32 has no effect on the cpu (TF32 is a CUDA matrix-product mode); training in float32",
                  file=sys.stderr)
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(whole_number(args.threads, 1, "--threads"))
    if args.executor not in EXECUTORS:
        raise UserError(f"--executor: unknown value {args.executor!r}; allowed: {', '.join(EXECUTORS)}")
    telemetry = {}
    for name in ("telemetry_every", "telemetry_dense_until", "telemetry_dense_every"):
        raw = getattr(args, name, None)
        if raw is not None:
            telemetry[name] = step_flag(raw, f"--{name.replace('_', '-')}")
            if name != "telemetry_dense_until" and telemetry[name].count < 1:  # 0 silently meant every iteration
                raise UserError(f"--{name.replace('_', '-')}: bad value {raw!r}; allowed: at least 1it")
    if "telemetry_every" not in telemetry and telemetry:
        raise UserError("--telemetry-dense-until/--telemetry-dense-every need --telemetry-every")
    if ("telemetry_dense_until" in telemetry) != ("telemetry_dense_every" in telemetry):
        raise UserError("--telemetry-dense-until and --telemetry-dense-every go together")
    opts = EngineOptions(device=args.device, cuda_graph=args.cuda_graph, checkpoint_every=ckpt,
                         checkpoint_seconds=seconds, callback=progress.callback, compile=args.compile,
                         tf32=getattr(args, "tf32", False), mlp_backward=getattr(args, "mlp_backward", "auto"),
                         **telemetry)
    return EXECUTORS[args.executor](data_dir=args.data_dir, options=opts, max_population=args.max_population,
                                    on_population=progress.population, on_event=progress.graph_event,
                                    **cluster_options(args))


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The executor's own options from ``--retries``, ``--address``, ``--ray-*`` and ``--slurm-*``; a flag for
    another executor than ``--executor`` names is an error (it would be silently ignored)."""
    from pathlib import Path

    kind = args.executor
    given = {k: v for k, v in vars(args).items() if k in _CLUSTER_FLAGS and v not in (None, [])}
    for dest in given:
        owner = _CLUSTER_FLAGS[dest]
        if kind not in owner:
            raise UserError(f"--{dest.replace('_', '-')} is for --executor {' or '.join(owner)}; "
                            f"this command runs with --executor {kind}")
    out: dict[str, Any] = {}
    if "retries" in given:
        out["retries"] = whole_number(given["retries"], 0, "--retries")
    if "address" in given:
        out["address"] = given["address"]
    for dest, key in (("ray_cpus_per_task", "cpus_per_task"), ("ray_gpus_per_task", "gpus_per_task")):
        if dest in given:
            try:
                out[key] = float(given[dest])
            except ValueError:
                out[key] = -1.0
            if not math.isfinite(out[key]) or out[key] < 0:
                raise UserError(f"--{dest.replace('_', '-')} {given[dest]!r}: expected a number >= 0")
    if kind == "slurm":
        from lth.executor.slurm import parse_minutes

        out["folder"] = Path(given.get("slurm_folder") or Path(args.root) / ".submitit").expanduser()
        if "slurm_time" in given:
            out["time_min"] = parse_minutes(given["slurm_time"])
        for dest, key, low in (("slurm_gpus_per_task", "gpus_per_task", 0),
                               ("slurm_cpus_per_task", "cpus_per_task", 1),
                               ("slurm_array_parallelism", "array_parallelism", 1)):
            if dest in given:
                out[key] = whole_number(given[dest], low, f"--{dest.replace('_', '-')}")
        for dest, key in (("slurm_partition", "partition"), ("slurm_cluster", "cluster")):
            if dest in given:
                out[key] = given[dest]
        extra = {}
        for item in given.get("slurm_option", []):
            k, eq, v = item.partition("=")
            if not eq or not k.strip():
                raise UserError(f"--slurm-option: bad value {item!r}; expected KEY=VALUE (account=proj)")
            extra[k.strip()] = v.strip()
        if extra:
            out["slurm_extra"] = extra
    if kind != "local":
        out["plugins"] = tuple(getattr(args, "plugin", []) or ())
    return out


_RAY_SLURM = ("ray", "slurm")
_CLUSTER_FLAGS = {"retries": _RAY_SLURM, "address": ("ray",), "ray_cpus_per_task": ("ray",),
                  "ray_gpus_per_task": ("ray",), "slurm_partition": ("slurm",), "slurm_time": ("slurm",),
                  "slurm_gpus_per_task": ("slurm",), "slurm_cpus_per_task": ("slurm",),
                  "slurm_array_parallelism": ("slurm",), "slurm_folder": ("slurm",), "slurm_cluster": ("slurm",),
                  "slurm_option": ("slurm",)}


def check_device(text: str) -> Any:
    """``--device``: auto | cpu | cuda | cuda:N, and CUDA only where a GPU is visible."""
    import re

    import torch

    if text in ("auto", "cpu"):
        return torch.device("cpu") if text == "cpu" else None
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not m:
        raise UserError(f"--device: unknown value {text!r}; allowed: auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {text}: no CUDA GPU is visible on this machine; allowed here: auto, cpu")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise UserError(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s): "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device(text)


def check_root(text: str) -> None:
    """``--root``: a directory (or a path one can be made at) that is writable. Probed by making and removing a
    temporary directory in the nearest existing folder, so nothing is left behind."""
    import tempfile
    from pathlib import Path

    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"--root {text!r}: is a file, expected a directory for the store")
    q = p.resolve()
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():  # a path under a file: saying "not writable" sends one looking at permissions
        raise UserError(f"--root {text!r}: {q} is a file, so no store can be made under it; "
                        f"choose a directory you can write to")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lth-probe-", dir=q))
    except OSError:
        raise UserError(f"--root {text!r}: cannot create a store there ({q} is not writable); "
                        f"choose a directory you can write to") from None


def existing_store(text: str, flag: str = "--root") -> Path:
    """A store to read: ``text`` as a Path; UserError naming ``flag`` when it is missing or is a file (a typo
    would otherwise read as an empty store)."""
    p = Path(text).expanduser()
    if p.is_file():
        raise UserError(f"{flag} {text!r}: is a file, expected a store directory")
    if not p.is_dir():
        raise UserError(f"{flag} {text!r}: no such store directory")
    return p


def check_fits(args: argparse.Namespace, spec: TrainSpec, runs: int, flag: str = "--replicates",
               value: object = None) -> None:
    """Before anything is planned: UserError when one network of ``spec`` cannot train on the device (naming
    ``--width``, or ``--model`` when the width is the preset's), or ``runs`` runs cannot be planned in memory or
    stored under ``--root`` (naming ``flag`` and ``value``, by default ``--replicates``). The parameter count is
    extrapolated, so a huge ``--width`` is refused without building the network."""
    import torch

    from lth.data.describe import describe
    from lth.executor.capacity import check_capacity, check_member, count_params

    check_root(args.root)
    m = spec.model
    width_given = "width" in vars(args)
    if width_given and not (m.width > 0 and m.width < float("inf")):
        raise UserError(f"--width {m.width}: expected a positive finite number")
    info = describe(spec.data, args.data_dir)
    validate_lengths(spec, info.n_train, set(vars(args)))  # a batch that fits; a given warmup/milestone in training
    params = count_params(m.model, m.norm, m.width, info.example_shape, info.num_classes)
    device = check_device(args.device) or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if width_given:
        check_member("--width", vars(args)["width"], params, device)
    else:
        check_member("--model", m.model, params, device)
    check_capacity(flag, args.replicates if value is None else value, runs, params, Path(args.root), device)


# ------------------------------------------------------------------------------------------------ output
def _names(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Progress on stderr. On a terminal: one rich view of the command (runs done of total, elapsed, ETA) and the
    current population's iterations with its mean test accuracy. Otherwise plain lines: what the graph holds,
    each population (size and run names, e.g. ``lottery_x/replicate_0/level_3``), each evaluation (iteration
    of total, test accuracy mean/min/max) and runs done of total with elapsed time and ETA after each wave."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self.tty = self.console.is_terminal and not quiet
        self.quiet = quiet
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                                disable=not self.tty)
        self.task: Any = None
        self.runs_task: Any = None
        self.populations: list[int] = []
        self.started = time.perf_counter()
        self._first_done: int | None = None
        self._queued: list[list[str]] = []  # run names of the populations of the current wave, in order

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def _line(self, text: str) -> None:
        if not self.tty and not self.quiet:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def population(self, size: int) -> None:
        """A population starts training."""
        self.populations.append(size)
        names = self._queued.pop(0) if self._queued else []
        if len(names) != size:  # another process trained some members meanwhile: the names no longer match
            names = []
        self.console.print(f"training a population of {size} run{'s' if size > 1 else ''}"
                           + (f": {_names(names)}" if names else ""), highlight=False, soft_wrap=True)
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = None

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left at the pace of the runs this command trained so far (None before the first)."""
        if self._first_done is None or done <= self._first_done:
            return None
        return (time.perf_counter() - self.started) / (done - self._first_done) * (total - done)

    def graph_event(self, event: str, info: dict[str, Any]) -> None:
        """Progress over the whole graph (the executor's ``on_event``)."""
        if event == "graph":
            done, total = info["done"], info["total"]
            if self._first_done is None:
                self._first_done = done
                if done < total:
                    self._line(f"{total} run{'s' if total > 1 else ''} in this command: {done} already trained, "
                               f"{total - done} to train")
            elif done < total:
                eta = self.eta(done, total)
                self._line(f"runs done: {done} of {total}; elapsed {_duration(time.perf_counter() - self.started)}"
                           + (f", about {_duration(eta)} left" if eta is not None else ""))
            if self.runs_task is None:
                self.runs_task = self.bar.add_task("runs", total=total)
            self.bar.update(self.runs_task, completed=done, total=total)
        elif event == "wave":
            names = info.get("names") or []
            self._queued = [list(g) for g in names]
        elif event == "skipped" and self._queued and self._queued[0] == list(info.get("names") or []):
            self._queued.pop(0)  # a population of the wave that another process trains

    def callback(self, event: str, info: dict[str, Any]) -> None:
        """Engine events: evaluations and divergence."""
        if event == "eval":
            accs = [r["test_accuracy"] for r in info["rows"].values() if r.get("test_accuracy") is not None]
            mean = f"{sum(accs) / len(accs):.4f}" if accs else "n/a"
            if self.task is None:
                self.task = self.bar.add_task("iterations", total=info["total"])
            self.bar.update(self.task, completed=info["iteration"], description=f"iterations (test acc {mean})")
            spread = f" (min {min(accs):.4f}, max {max(accs):.4f})" if len(accs) > 1 else ""
            self._line(f"  iteration {info['iteration']} of {info['total']}: test accuracy {mean}{spread}"
                       + (f" [{len(accs)} runs]" if len(accs) > 1 else ""))
        elif event == "diverged":
            self.console.print(f"[red]diverged[/red] at iteration {info['iteration']}: {info['job'].run_dir}")


def print_table(header: list[str], rows: list[list[str]], stderr: bool = True) -> None:
    """A table for people: boxed and folded to the width of a terminal; in a pipe or a log (a Slurm output file,
    ``2> log``) plain columns padded with spaces, one line per row and nothing cut, so that it stays readable and
    greppable. The first column is never folded."""
    from rich.console import Console
    from rich.table import Column, Table

    console = Console(stderr=stderr)
    if console.is_terminal:
        table = Table(Column(header[0], no_wrap=True), *header[1:])
        for r in rows:
            table.add_row(*r)
        console.print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(),
              file=sys.stderr if stderr else sys.stdout)


def emit_json(obj: Any) -> None:
    """The one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def report_divergence(records: list[dict[str, Any]], strict: bool = False) -> int:
    """Say on stderr how many runs diverged; the exit code the CONTRACT asks for (1 when all diverged or
    ``strict`` and any did)."""
    bad = [r for r in records if r.get("status") == "diverged"]
    if bad:
        print(f"lth: {len(bad)} of {len(records)} runs diverged: " + ", ".join(r["path"] for r in bad[:5])
              + (" ..." if len(bad) > 5 else ""), file=sys.stderr)
    failed = [r for r in records if r.get("status") == "failed"
              or (r.get("status") == "blocked" and r.get("error"))]  # blocked by a failed run (cluster executors)
    for r in failed:
        print(f"lth: failed: {r['path']}: {r.get('error', '')}", file=sys.stderr)
    if failed or (bad and (strict or len(bad) == len(records))):
        return 1
    return 0
