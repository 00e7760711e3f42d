"""How and where a study trains, never what: the store, the device, checkpoints, telemetry, the states kept, and
the executor with its Ray and Slurm parts. Typed options shared by the command line (``--device``,
``--slurm-partition``) and the Python API (``device=``, ``slurm={"partition": ...}``); a runtime field never
changes a run's identity."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lth.data.images import DECODERS
from lth.errors import UserError, cli_name, ref, register_names
from lth.options import Options, option
from lth.spec import Step

DEFAULT_ROOT = "runs"
AUTO_CHECKPOINT_SECONDS = 60.0  # checkpoint_every "auto": lose at most about a minute of a run
EXECUTOR_KINDS = ("local", "ray", "slurm")

register_names("cli", {"executor.kind": "--executor", "executor.retries": "--retries", "ray.address": "--address",
                       "executor.nodes": "--nodes"})
register_names("api", {"executor.kind": "executor", "executor.retries": "retries", "ray.address": "address",
                       "executor.nodes": "nodes"})


def default_root() -> str:
    """The store when none is named: ``$LTH_ROOT``, else ``./runs``."""
    return os.environ.get("LTH_ROOT", DEFAULT_ROOT)


@dataclass(frozen=True)
class RayOptions(Options):
    """The Ray executor's part (docs/cluster.md)."""

    PREFIX: ClassVar[str] = "ray"
    address: str | None = option(None, "ray: the cluster to join (default: a local Ray instance for this command)",
                                 metavar="auto|HOST:PORT")
    cpus_per_task: float | None = option(None, "ray: CPUs per population (default 1)", low=0, metavar="N")
    gpus_per_task: float | None = option(None, "ray: GPUs per population (default: 1 where the cluster has GPUs, "
                                               "else 0)", low=0, metavar="N")

    def executor_kwargs(self) -> dict[str, Any]:
        """The given fields as :class:`~lth.executor.ray.RayExecutor` arguments."""
        return {k: v for k, v in (("address", self.address), ("cpus_per_task", self.cpus_per_task),
                                  ("gpus_per_task", self.gpus_per_task)) if v is not None}


@dataclass(frozen=True)
class SlurmOptions(Options):
    """The Slurm executor's part (submitit; docs/cluster.md)."""

    PREFIX: ClassVar[str] = "slurm"
    partition: str | None = option(None, "slurm: partition (default: the cluster's)")
    time: str | None = option(None, "slurm: time limit of each population: minutes, h:mm or d-h:mm (default 4:00)",
                              metavar="TIME")
    gpus_per_task: int | None = option(None, "slurm: GPUs per population (default: 1 where the partition "
                                                       "has GPUs, else 0)", low=0, metavar="N")
    cpus_per_task: int | None = option(None, "slurm: CPUs per population (default 4)", low=1, metavar="N")
    array_parallelism: int | None = option(None, "slurm: most array elements running at once (default 64)", low=1,
                                           metavar="N")
    folder: str | None = option(None, "slurm: submitit's job files and logs, on a shared file system (default: "
                                      "ROOT/.submitit)", metavar="DIR")
    cluster: str | None = option(None, "slurm: submit to Slurm (default), or run the same jobs as local processes / "
                                       "in this process", choices=("slurm", "local", "debug"))
    unreachable: str | None = option(None, "slurm: how long to go on waiting while Slurm's controller does not "
                                           "answer before stopping (the jobs go on; run again to resume): minutes, "
                                           "h:mm or d-h:mm (default 30)", metavar="TIME")
    option: tuple[str, ...] = option((), "slurm: another sbatch option (account=proj, qos=high, constraint=a100); "
                                         "repeatable", metavar="KEY=VALUE")

    def check(self) -> None:
        """The time limit parses; each extra option is KEY=VALUE."""
        if self.time is not None:
            self.minutes()
        if self.unreachable is not None:
            self.unreachable_s()
        self.extra()

    def minutes(self) -> int | None:
        """The time limit in minutes (None: the executor's default)."""
        from lth.executor.slurm import parse_minutes

        return None if self.time is None else parse_minutes(self.time)

    def unreachable_s(self) -> float | None:
        """How long to wait for an unreachable controller, in seconds (None: the executor's default, 30 min)."""
        from lth.executor.slurm import parse_minutes

        return None if self.unreachable is None else 60.0 * parse_minutes(self.unreachable, ref("slurm.unreachable"))

    def extra(self) -> dict[str, str]:
        """``option`` as ``{key: value}``."""
        out = {}
        for item in self.option:
            k, eq, v = item.partition("=")
            if not eq or not k.strip():
                raise UserError(f"{ref('slurm.option')}: bad value {item!r}; expected KEY=VALUE (account=proj)",
                                value=item, allowed="KEY=VALUE")
            out[k.strip()] = v.strip()
        return out

    def executor_kwargs(self, root: Path) -> dict[str, Any]:
        """The given fields as :class:`~lth.executor.slurm.SlurmExecutor` arguments (``folder`` under ``root``
        by default)."""
        out: dict[str, Any] = {"folder": Path(self.folder or Path(root) / ".submitit").expanduser()}
        if self.time is not None:
            out["time_min"] = self.minutes()
        if self.unreachable is not None:
            out["outage_s"] = self.unreachable_s()
        for key in ("gpus_per_task", "cpus_per_task", "array_parallelism", "partition", "cluster"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.option:
            out["slurm_extra"] = self.extra()
        return out


@dataclass(frozen=True)
class ExecutorOptions(Options):
    """Where populations train: ``local`` (this process), ``ray`` or ``slurm``, with each cluster's own part. A
    field of another executor than ``kind`` is an error (it would be silently ignored)."""

    PREFIX: ClassVar[str] = "executor"
    kind: str = option("local", "where populations train: local (this process, default) | ray | slurm "
                                "(docs/cluster.md)", choices=EXECUTOR_KINDS)
    retries: int | None = option(None, "ray/slurm: how many more times a failed population's runs are tried, each "
                                       "alone (default 1)", low=0, metavar="N")
    nodes: int | None = option(None, "ray/slurm: machines one distributed run spans, its --world-size processes "
                                     "split evenly over them (default 1; docs/scale.md)", low=1, metavar="M")
    ray: RayOptions = field(default_factory=RayOptions)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    def check(self) -> None:
        """Each part validated; no field given for another executor than ``kind``."""
        self.ray.validate()
        self.slurm.validate()
        given = [("executor.retries", ("ray", "slurm"))] if self.retries is not None else []
        given += [("executor.nodes", ("ray", "slurm"))] if self.nodes is not None else []
        for part, kind in ((self.ray, "ray"), (self.slurm, "slurm")):
            given += [(f.path, (kind,)) for f in part.option_fields() if getattr(part, f.name) not in (None, ())]
        for path, owners in given:
            if self.kind not in owners:
                raise UserError(f"{ref(path)} is for {ref('executor.kind')} {' or '.join(owners)}; this command "
                                f"runs with {ref('executor.kind')} {self.kind}", allowed=" or ".join(owners))

    def cluster_kwargs(self, root: Path, plugins: tuple[str, ...] = ()) -> dict[str, Any]:
        """The executor class's own arguments."""
        out: dict[str, Any] = {}
        if self.retries is not None:
            out["retries"] = self.retries
        if self.nodes is not None:
            out["nodes"] = self.nodes
        if self.kind == "ray":
            out.update(self.ray.executor_kwargs())
        if self.kind == "slurm":
            out.update(self.slurm.executor_kwargs(root))
        if self.kind != "local":
            out["plugins"] = tuple(plugins)
        return out


@dataclass(frozen=True)
class RuntimeOptions(Options):
    """How and where a study trains (never what: no field changes a run's identity)."""

    PREFIX: ClassVar[str] = ""
    root: str = option(DEFAULT_ROOT, "store directory (default: $LTH_ROOT or ./runs)")
    data_dir: str | None = option(None, "data root (default: $LTH_DATA or ~/.cache/lth)")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    cuda_graph: str = option("auto", "capture the training step as a CUDA graph (auto: on for CUDA)",
                             choices=("auto", "off"))
    max_population: int | None = option(None, "most runs trained together as one population (default: from the "
                                              "device)", low=1)
    checkpoint_every: str = option("auto", "checkpoint interval: a step, 'never', or 'auto' (at an epoch's end once "
                                           "60 s have passed since the last checkpoint; the default)")
    threads: int | None = option(None, "CPU threads for torch (default: torch's, one per core; on a machine busy "
                                       "with other work 1 is often much faster)", low=1, metavar="N")
    loader_workers: int | None = option(None, "image datasets read from disk: DataLoader worker processes that decode "
                                              "and augment (default: the CPUs this process may use, at most 16; 0: "
                                              "decode in the training process)", low=0, metavar="N")
    decoder: str = option("auto", "image datasets read from disk: who decodes: pillow (DataLoader worker processes), "
                                  "dali (NVIDIA DALI: nvJPEG on a GPU, its CPU threads otherwise; pip install "
                                  "'lth[dali]'), auto (dali where installed and training on a GPU, else pillow); "
                                  "recorded in each run's spec.json", choices=DECODERS)
    telemetry_every: Step | None = option(None, "record weight telemetry (mean |w|, sign flips, distances to init "
                                                "and final, sampled weights, gradient norm) every STEP into "
                                                "telemetry.csv", metavar="STEP")
    telemetry_dense_until: Step | None = option(None, "record telemetry more often before this step (with "
                                                      "--telemetry-dense-every)", metavar="STEP")
    telemetry_dense_every: Step | None = option(None, "the telemetry interval before --telemetry-dense-until",
                                                metavar="STEP")
    mlp_backward: str = option("auto", "MLPs: the hand-written backward (manual) or autograd's (auto: hand-written "
                                       "on a CPU, and on a GPU with --compile)", choices=("auto", "manual", "autograd"))
    tf32: bool = option(False, "CUDA: TF32 for float32 matrix products (faster, rounds differently; cuDNN's "
                               "convolutions use TF32 already); recorded in each run's spec.json")
    compile: bool = option(False, "torch.compile the training forward (MLPs on a GPU: forward and hand-written "
                                  "backward as one function, compiled once per process and shape; inside the CUDA "
                                  "graph; adds compile time)")
    save_states: tuple[Step, ...] = option((), "also keep the weights at these steps (e.g. 500it 2ep), besides init "
                                               "and final: each run the command asks for (lottery: trunk levels and "
                                               "branches; branch: its runs; stability, landscape: the copies) keeps "
                                               "those inside it, from its start step on; a finished run is replayed",
                                           metavar="STEP")
    world_size: int | None = option(None, "processes one run trains on (torch.distributed: one GPU each, or CPU "
                                          "processes with gloo); the global batch stays the same, each process takes "
                                          "its share (default: auto, from the network, the data and the GPUs: "
                                          "docs/scale.md); never part of a run's identity", low=1, metavar="N")
    dist_timeout: float | None = option(None, "distributed runs: seconds every rank waits for the others, at the "
                                              "rendezvous and at each collective, before the run fails naming the "
                                              "address (default 120; raise it where ranks start far apart, as "
                                              "queued Slurm tasks may)", low=0, low_open=True, metavar="SECONDS")
    devices: tuple[str, ...] = option((), "local: the devices populations train on side by side, one worker process "
                                          "each, and a distributed run's processes use (default: every visible GPU "
                                          "with --device auto, else --device)", metavar="DEVICE")
    plugin: tuple[str, ...] = option((), "import a module (dotted name or .py file) that registers models or "
                                         "datasets; repeatable", metavar="MODULE")
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)

    def check(self) -> None:
        """Across fields: the checkpoint interval, the telemetry intervals, the device and the executor."""
        self.executor.validate()
        self.checkpoint()
        for name in ("telemetry_every", "telemetry_dense_every"):
            v = getattr(self, name)
            if v is not None and v.count < 1:  # 0 silently meant every iteration
                raise UserError.bad(name, str(v), "at least 1it")
        dense = (self.telemetry_dense_until is not None, self.telemetry_dense_every is not None)
        if any(dense) and self.telemetry_every is None:
            raise UserError(f"{ref('telemetry_dense_until')}/{ref('telemetry_dense_every')} need "
                            f"{ref('telemetry_every')}")
        if dense[0] != dense[1]:
            raise UserError(f"{ref('telemetry_dense_until')} and {ref('telemetry_dense_every')} go together")
        check_device(self.device)
        if self.devices:
            from lth.executor.distributed import visible_devices

            if self.executor.kind != "local":
                raise UserError(f"{ref('devices')} is for {ref('executor.kind')} local (a cluster gives each task its "
                                f"devices); this command runs with {ref('executor.kind')} {self.executor.kind}",
                                allowed="local")
            visible_devices(self.devices)

    def checkpoint(self) -> tuple[Step | None, float | None]:
        """(interval, seconds) of ``checkpoint_every``: ``never`` (None, None), ``auto`` (1ep, 60 s) or a step."""
        if self.checkpoint_every == "never":
            return None, None
        if self.checkpoint_every == "auto":
            return Step(1, "ep"), AUTO_CHECKPOINT_SECONDS
        try:
            step = Step.parse(self.checkpoint_every)
        except UserError as e:
            raise UserError(f"{ref('checkpoint_every')}: {e.template} (or 'never')", value=self.checkpoint_every,
                            allowed="a step, 'never' or 'auto'") from None
        if step.count == 0:
            raise UserError(f"{ref('checkpoint_every')} {self.checkpoint_every}: expected at least 1it, or 'never'",
                            value=self.checkpoint_every, allowed="at least 1it, or 'never'")
        return step, None

    @property
    def store(self) -> Path:
        """The store directory."""
        return Path(self.root).expanduser()

    def torch_device(self) -> Any:
        """The device runs train on (``auto``: CUDA where a GPU is visible, else the CPU)."""
        import torch

        return check_device(self.device) or torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def engine_options(self, callback: Any = None) -> Any:
        """The engine's :class:`~lth.engine.train.EngineOptions` (``callback``: the progress's engine events)."""
        from lth.engine.train import EngineOptions

        every, seconds = self.checkpoint()
        telemetry = {k: getattr(self, k) for k in ("telemetry_every", "telemetry_dense_until",
                                                   "telemetry_dense_every") if getattr(self, k) is not None}
        return EngineOptions(device=self.device, cuda_graph=self.cuda_graph, checkpoint_every=every,
                             checkpoint_seconds=seconds, callback=callback, compile=self.compile, tf32=self.tf32,
                             mlp_backward=self.mlp_backward, loader_workers=self.loader_workers, decoder=self.decoder,
                             world_size=self.world_size, **telemetry,
                             **({} if self.dist_timeout is None else {"dist_timeout": self.dist_timeout}))

    def make_executor(self, progress: Any = None, command: str = "run") -> Any:
        """The executor these options describe, reporting to ``progress`` (a :class:`lth.progress.Progress`;
        None: silent), recording each graph it runs as planned by ``command`` in the store's ``plans/``
        (:mod:`lth.store.plans`). Checks the store can be written and sets torch's thread count where one is
        given."""
        from lth.executor import EXECUTORS

        check_root(self.root)
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        if self.tf32 and self.executor.kind == "local" and self.torch_device().type != "cuda":
            print("lth: --tf32 has no effect on the cpu (TF32 is a CUDA matrix-product mode); training in float32",
                  file=sys.stderr)
        return EXECUTORS[self.executor.kind](
            data_dir=self.data_dir, options=self.engine_options(progress.callback if progress else None),
            max_population=self.max_population, on_population=progress.population if progress else None,
            on_event=progress.graph_event if progress else None, plan_root=self.store, command=command,
            **self.executor.cluster_kwargs(self.store, self.plugin),
            **({"devices": tuple(self.devices)} if self.devices else {}))

    def keep(self, nodes: list[Any], spec: Any, steps_per_epoch: int) -> list[Any]:
        """``nodes`` also keeping the ``save_states`` steps inside their runs (:func:`keep_states`)."""
        return keep_states(nodes, tuple((str(s), s) for s in self.save_states), spec, steps_per_epoch)


# ------------------------------------------------------------------------------------------------ checks
def check_device(text: str) -> Any:
    """``device``: auto | cpu | cuda | cuda:N, and CUDA only where a GPU is visible; the torch device (None for
    auto)."""
    import re

    import torch

    if text in ("auto", "cpu"):
        return torch.device("cpu") if text == "cpu" else None
    m = re.fullmatch(r"cuda(?::(\d+))?", str(text))
    if not m:
        raise UserError(f"{ref('device')}: unknown value {text!r}; allowed: auto, cpu, cuda, cuda:N", value=text,
                        allowed="auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"{ref('device')} {text}: no CUDA GPU is visible on this machine; allowed here: auto, cpu",
                        value=text, allowed="auto, cpu")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise UserError(f"{ref('device')} {text}: this machine has {n} GPU(s): cuda:0 to cuda:{n - 1}", value=text,
                        allowed=f"cuda:0 to cuda:{n - 1}")
    return torch.device(text)


def check_root(text: str | Path) -> None:
    """``root``: a directory (or a path one can be made at) that is writable. Probed by making and removing a
    temporary directory in the nearest existing folder, so nothing is left behind."""
    import tempfile

    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{ref('root')} {str(text)!r}: is a file, expected a directory for the store", value=str(text))
    q = p.resolve()
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():  # a path under a file: saying "not writable" sends one looking at permissions
        raise UserError(f"{ref('root')} {str(text)!r}: {q} is a file, so no store can be made under it; "
                        f"choose a directory you can write to", value=str(text))
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lth-probe-", dir=q))
    except OSError:
        raise UserError(f"{ref('root')} {str(text)!r}: cannot create a store there ({q} is not writable); "
                        f"choose a directory you can write to", value=str(text)) from None


def existing_store(text: str | Path, path: str = "root") -> Path:
    """A store to read: ``text`` as a Path; UserError naming the field ``path`` when it is missing or is a file (a
    typo would otherwise read as an empty store)."""
    p = Path(text).expanduser()
    if p.is_file():
        raise UserError(f"{ref(path)} {str(text)!r}: is a file, expected a store directory", value=str(text))
    if not p.is_dir():
        raise UserError(f"{ref(path)} {str(text)!r}: no such store directory", value=str(text))
    return p


def check_fits(runtime: RuntimeOptions, spec: Any, runs: int, path: str = "replicates", value: object = None,
               given: Mapping[str, Any] | set[str] | frozenset[str] = frozenset()) -> None:
    """Before anything is planned: UserError when one network of ``spec`` cannot train on the device (naming
    ``width`` where given, else ``model``), or ``runs`` runs cannot be planned in memory (naming the field ``path``
    and ``value``; the disk is checked by the executor, for the runs still to train:
    :func:`lth.executor.capacity.check_store`). ``given``: the spec fields the user set, with their values as given
    where known (a preset's schedule under a shortened training is meant; a given warmup past the end is not). The
    parameter count is extrapolated, so a huge width is refused without building the network."""
    from lth.data.describe import describe
    from lth.executor.capacity import check_capacity, check_member, count_params
    from lth.spec import validate_lengths

    check_root(runtime.root)
    m = spec.model
    if "width" in given and not (m.width > 0 and math.isfinite(m.width)):
        raise UserError.bad("width", m.width, "a positive finite number")
    info = describe(spec.data, runtime.data_dir)
    validate_lengths(spec, info.n_train, set(given))  # a batch that fits; a given warmup/milestone in training
    params = count_params(m.model, m.norm, m.width, info.example_shape, info.num_classes)
    device = runtime.torch_device()
    if "width" in given:
        check_member("width", given["width"] if isinstance(given, Mapping) else m.width, params, device)
    else:
        check_member("model", m.model, params, device)
    check_capacity(path, value, runs)  # the disk: the executor, for what is still to train (check_store)


def keep_states(nodes: list[Any], save: tuple[tuple[str, Step], ...], spec: Any, spe: int,
                path: str = "save_states") -> list[Any]:
    """The runs of ``nodes`` (not their ancestors trained before, e.g. a branch's trunk) also keeping each step of
    ``save`` (name, step) that lies in their run (from their start step to their end: a level rewound to k keeps
    the steps from k on; the steps before k are its trunk's level 0's), named by the step (``5it``) unless the run
    keeps that iteration already under another name (``rewind``). Returned parents first, so the executor's graph
    holds these copies (a finished run missing a state is replayed). UserError naming the field ``path`` for a
    step after the end of the longest run of ``nodes``, before anything is written."""
    from lth.executor.base import extra_keeps
    from lth.graph import closure
    from lth.spec import past_end

    if not save:
        return nodes
    # a step past the end of every run asked for is an error (a branch's runs may be longer than the trunk's:
    # --finetune-steps); one inside some runs is kept by those
    longest = max(nodes, key=lambda n: n.spec.train.training_steps.iterations(spe), default=None)
    end = longest.spec.train.training_steps if longest is not None else spec.train.training_steps
    for _, step in save:
        if step.iterations(spe) > end.iterations(spe):
            raise past_end(path, step, end, end.iterations(spe))
    wanted = {n.path for n in nodes}
    out = []
    for n in closure(nodes):  # parents before children: a node's copy is in the graph before its children
        if n.path not in wanted:
            continue
        start, stop = n.start_step.iterations(spe), n.spec.train.training_steps.iterations(spe)
        extra = extra_keeps(n, [(name, step) for name, step in save if start <= step.iterations(spe) <= stop], spe)
        out.append(n.with_keep(extra.values()) if extra else n)
    return out


__all__ = ["DEFAULT_ROOT", "ExecutorOptions", "RayOptions", "RuntimeOptions", "SlurmOptions", "check_device",
           "check_fits", "check_root", "default_root", "existing_store", "keep_states", "RUNTIME_KEYWORDS",
           "runtime_from_keywords"]


# ------------------------------------------------------------------------------------------------ Python keywords
def _flag_keywords() -> dict[str, str]:
    """The executor parts' fields as the command line's flags name them, without dashes (``slurm_time``,
    ``ray_cpus_per_task``) -> their path under the executor (``slurm.time``)."""
    out = {}
    for part, cls in (("ray", RayOptions), ("slurm", SlurmOptions)):
        for f in cls.option_fields():
            out[(f.flag or cli_name(f.path))[2:].replace("-", "_")] = f"{part}.{f.name}"
    return out


# Every keyword the Python face takes for the runtime: RuntimeOptions' fields by name, the executor as ``executor``
# (its kind, a dict of its options or an ExecutorOptions; ``kind`` too), ``retries``, ``address``, ``ray={...}``,
# ``slurm={...}``, and each part's field as its flag without dashes (``slurm_time="1:00"``).
RUNTIME_KEYWORDS: tuple[str, ...] = tuple(dict.fromkeys(
    [f.name for f in RuntimeOptions.option_fields() if f.name != "executor"]
    + ["executor", "kind", "retries", "nodes", "address", "ray", "slurm", *_flag_keywords()]))


def _plain(value: Any) -> Any:
    """Options (and mappings of them) as nested dicts; paths as text."""
    import dataclasses

    if isinstance(value, Options):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def runtime_from_keywords(keywords: Mapping[str, Any], base: RuntimeOptions | None = None) -> RuntimeOptions:
    """:class:`RuntimeOptions` of the Python face's keywords (:data:`RUNTIME_KEYWORDS`: ``device="cpu"``,
    ``executor="slurm"``, ``slurm={"cluster": "local"}`` or ``slurm_cluster="local"``, ``save_states="5it,1ep"``,
    ``root=Path(...)``) over ``base`` (default: the store ``$LTH_ROOT`` or ``./runs``). None leaves a keyword at
    its default, as a flag left out. An unknown keyword is a UserError suggesting the nearest."""
    from lth.options import unknown_name

    flags = _flag_keywords()
    values: dict[str, Any] = _plain(base) if base is not None else {"root": default_root()}
    executor: dict[str, Any] = values.setdefault("executor", {})
    for key, value in keywords.items():
        if key not in RUNTIME_KEYWORDS:
            raise unknown_name(key, list(RUNTIME_KEYWORDS))
        if value is None:
            continue
        value = _plain(value)
        if key in ("executor", "kind") and isinstance(value, Mapping):
            executor.update(value)
        elif key in ("executor", "kind"):
            executor["kind"] = value
        elif key in ("retries", "nodes"):
            executor[key] = value
        elif key in ("ray", "slurm"):
            if not isinstance(value, Mapping):
                raise UserError.bad(key, value, f"a dict of the {key} executor's options")
            executor.setdefault(key, {}).update(value)
        elif key == "address" or key in flags:
            part, name = flags.get(key, "ray.address").split(".")
            executor.setdefault(part, {})[name] = value
        elif key in ("save_states", "plugin") and isinstance(value, str):
            values[key] = [x for x in value.replace(",", " ").split() if x]
        else:
            values[key] = str(value) if isinstance(value, Step) else value
    return RuntimeOptions.from_values(values)
