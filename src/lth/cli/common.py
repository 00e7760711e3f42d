"""Transitional: what the command modules not yet moved onto the studies import. Each name lives in its own
module now (:mod:`lth.cli.parser`, :mod:`lth.cli.flags`, :mod:`lth.cli.output`, :mod:`lth.progress`,
:mod:`lth.studies.runtime`); this file goes once every command is flags -> options -> study -> print."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lth.cli.flags import (  # noqa: F401
    _positive,
    add_dataclass_flags,
    add_preset_flag,
    add_pruning_flags,
    add_spec_flags,
    dataclass_from_args,
    pruning_from_args,
    runtime_from_args,
    spec_from_args,
    step_flag,
    whole_number,
)
from lth.cli.output import emit_json, print_table, report_divergence  # noqa: F401
from lth.cli.parser import Parser, near_flags  # noqa: F401
from lth.progress import Progress
from lth.spec import Step, TrainSpec
from lth.studies import runtime as _rt
from lth.studies.runtime import DEFAULT_ROOT, check_device, check_root, existing_store, keep_states  # noqa: F401


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


def save_steps(args: argparse.Namespace) -> tuple[tuple[str, Step], ...]:
    """``--save-states`` as (name, step) pairs."""
    steps = [step_flag(s, "--save-states") for s in args.save_states]
    return tuple((str(step), step) for step in steps)


def keep_saved_states(args: argparse.Namespace, nodes: list[Any], spec: TrainSpec, spe: int) -> list[Any]:
    """``--save-states`` honoured by a command that trains a graph (lottery, branch, stability, landscape)."""
    return keep_states(nodes, save_steps(args), spec, spe)


def executor_from_args(args: argparse.Namespace, progress: Progress) -> Any:
    """An executor configured by the runtime flags (:meth:`RuntimeOptions.make_executor`)."""
    save_steps(args)  # a bad step is an error, not silently ignored
    return runtime_from_args(args).make_executor(progress)


def check_fits(args: argparse.Namespace, spec: TrainSpec, runs: int, flag: str = "--replicates",
               value: object = None) -> None:
    """:func:`lth.studies.runtime.check_fits` of the flags given."""
    runtime = runtime_from_args(args)
    given = dict(vars(args))
    _rt.check_fits(runtime, spec, runs, flag[2:].replace("-", "_"), args.replicates if value is None else value,
                   given)
