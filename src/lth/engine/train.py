"""The training loop: N jobs that share an architecture train together as one population.

Read top to bottom: a :class:`Job` says what to train and where to store it; :func:`train_population` builds
one wide model, places every member at its start (a fresh initialisation, another run's state at step k, or
its own checkpoint), and steps all members in lockstep on a shared iteration counter. A member that starts at
step k joins at iteration k with the schedule and data order an uninterrupted run would have there.

The parts live apart: :mod:`lth.engine.population` (members, starts, masks, records, store files),
:mod:`lth.engine.step` (the step, eager or a CUDA-graph replay), :mod:`lth.engine.evaluate` (any population on
any data). Losses (NaN or inf: divergence) accumulate on the device and are read only at evaluation points.
Events reach the caller through one callback signature: ``callback(event, info)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.data import Dataset
from lth.engine.distributed import DEFAULT_TIMEOUT_S
from lth.engine.population import Population
from lth.engine.step import Stepper
from lth.spec import Step, TrainSpec, past_end, validate_lengths
from lth.store import RunDir

Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class Job:
    """One run to train: its spec, replicate, directory, starting point and mask."""

    spec: TrainSpec
    replicate: int
    run_dir: Path
    start_step: int = 0  # iteration at which training starts (k > 0: from another run's state at step k)
    start_state: dict[str, Tensor] | None = None  # model state at start_step; None: initialise from the seed
    mask: dict[str, Tensor] | None = None  # {prunable name: bool tensor}; masked weights stay exactly zero
    state_names: dict[int, str] = field(default_factory=dict)  # extra states to keep: iteration -> name
    state_steps: tuple[Step, ...] = ()  # more states to keep, named by their step ("500it", "2ep")
    meta: dict[str, Any] = field(default_factory=dict)  # written into spec.json beside the hyperparameters

    def seed(self, which: str) -> int:
        """The init / order / augment seed: the spec's, else the replicate number."""
        s = getattr(self.spec.train, f"{which}_seed")
        return self.replicate if s is None else s


@dataclass
class EngineOptions:
    """How to train (never what: nothing here changes a result, except the device's arithmetic)."""

    device: str = "auto"
    cuda_graph: str = "auto"  # auto | off
    channels_last: str = "auto"  # CUDA convnets: auto (inputs and weights in NHWC order) | input | off
    compile: bool = False  # torch.compile the training forward (inside the CUDA graph on GPU); costs compile time
    # MLPs: "auto" = the hand-written backward on the CPU, autograd elsewhere (with ``compile`` on a GPU: the
    # hand-written forward and backward as one compiled function); "manual" / "autograd" force one
    mlp_backward: str = "auto"
    # CUDA: TF32 for float32 matrix products (cuDNN's convolutions use TF32 by default already); rounds differently
    tf32: bool = False
    checkpoint_every: Step | None = Step(1, "ep")
    # with checkpoint_every: write a checkpoint at those steps only once this many seconds have passed since the
    # last one (None: at every one). Checkpoints cost I/O; a short run loses little when it restarts.
    checkpoint_seconds: float | None = None
    threads: int | None = None  # CPU threads for torch (None: leave torch's setting); cluster workers set it
    loader_workers: int | None = None  # images read from disk: DataLoader worker processes (None: the CPUs, <= 16)
    decoder: str = "auto"  # images read from disk: pillow | dali | auto (lth.engine.stream.resolve_decoder)
    callback: Callback | None = None
    # weight telemetry (Frankle et al. 2020, Fig. 3) into telemetry.csv: what is recorded, never the result
    telemetry_every: Step | None = None  # None: no telemetry
    telemetry_dense_until: Step | None = None  # before this step, record every ``telemetry_dense_every``
    telemetry_dense_every: Step | None = None
    # processes per run (torch.distributed; lth.engine.distributed): the executors launch them; None: chosen from
    # the model, the data and the devices (lth.executor.distributed.choose_world_size)
    world_size: int | None = 1
    # distributed runs: seconds each rank waits for the others at the rendezvous and at each collective
    dist_timeout: float = DEFAULT_TIMEOUT_S
    dist: Any = None  # inside a rank of a distributed run: its lth.engine.distributed.Dist (set by the launcher)

    def telemetry_steps(self, spe: int, total: int) -> set[int]:
        """The iterations at which telemetry is recorded (empty without ``telemetry_every``)."""
        if self.telemetry_every is None:
            return set()
        every = max(1, self.telemetry_every.iterations(spe))
        out = set(range(0, total + 1, every)) | {total}
        if self.telemetry_dense_until is not None and self.telemetry_dense_every is not None:
            dense = max(1, self.telemetry_dense_every.iterations(spe))
            out |= set(range(0, min(total, self.telemetry_dense_until.iterations(spe)) + 1, dense))
        return out

    def torch_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def population_key(spec: TrainSpec) -> tuple:
    """Specs with equal keys can train in one population (members may differ in seeds, learning rate and
    schedule, weight decay, momentum, initialiser, start and mask)."""
    t = spec.train
    return (spec.data, spec.model.model, spec.model.norm, spec.model.width, t.optimizer, t.training_steps,
            t.eval_every, t.precision)


def check_jobs(jobs: list[Job], data: Dataset) -> None:
    """UserError for jobs that cannot train on ``data`` (called before anything is written)."""
    for j in jobs:
        n_train = data.train_x.shape[0]
        validate_lengths(j.spec, n_train, given=())  # a batch that fits (the schedule: checked by the CLI)
        spe = n_train // j.spec.data.batch_size
        total = j.spec.train.training_steps.iterations(spe)
        if j.start_step > total:
            raise past_end("start step", f"{j.start_step}it", j.spec.train.training_steps, total)
        for step in j.state_steps:
            if step.iterations(spe) > total:
                raise past_end("save_states", step, j.spec.train.training_steps, total)


def _emit(opts: EngineOptions, event: str, **info: Any) -> None:
    if opts.callback is not None:
        opts.callback(event, info)


def train_population(jobs: list[Job], data: Dataset, opts: EngineOptions) -> list[dict[str, Any]]:
    """Train every job to its last step (resuming from checkpoints) and return one summary per job.

    Host work happens only at *event* iterations (a member joins, an epoch starts, an evaluation, a named
    state, a checkpoint); between them the step runs eagerly or as a CUDA-graph replay."""
    assert len({population_key(j.spec) for j in jobs}) == 1, "a population must share its population_key"
    check_jobs(jobs, data)
    if opts.torch_device().type != "cuda":
        return _train(jobs, data, opts)
    before = torch.backends.cuda.matmul.allow_tf32  # TF32 (``opts.tf32``) for this population's training only
    torch.backends.cuda.matmul.allow_tf32 = bool(opts.tf32)
    try:
        return _train(jobs, data, opts)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _train(jobs: list[Job], data: Dataset, opts: EngineOptions) -> list[dict[str, Any]]:
    pop = Population(jobs, data, opts, lambda event, **info: _emit(opts, event, **info))
    try:
        return _loop(pop, jobs)
    finally:
        close = getattr(pop.batches, "close", None)
        if close is not None:  # images read from disk: stop the DataLoader's workers
            close()


def _loop(pop: Population, jobs: list[Job]) -> list[dict[str, Any]]:
    opts = pop.opts
    pop.prepare_store()
    stepper = Stepper(pop)
    spe, total, n = pop.spe, pop.total, pop.n
    resumed = [i for i in range(n) if pop.ckpts[i]]
    if resumed:  # said, so that a rerun after an interruption shows where it picks up
        pop.emit("resumed", runs=[str(jobs[i].run_dir) for i in resumed],
                 iterations=[pop.starts[i] for i in resumed], total=total)
    t0 = min(pop.starts)
    events = set(pop.starts) | {t0, total} | set(range(0, total + 1, spe)) | set(range(0, total + 1, pop.eval_every))
    if pop.ckpt_every:
        events |= set(range(0, total + 1, pop.ckpt_every))
    events |= pop.tele_at
    for named in pop.names:
        events |= {t for t in named if t <= total}
    pop.model.train()
    last_checkpoint = time.perf_counter()
    t = t0
    for t in range(t0, total + 1):
        if t in events:
            joining = [i for i in range(n) if pop.starts[i] == t]
            if t == t0 or t % spe == 0:
                stepper.new_epoch(t)
            for i in joining:
                pop.activate(i, t)
            fresh = [i for i in joining if not pop.ckpts[i]]
            if fresh:
                pop.record(t, fresh)
            due = [i for i in pop.running(t) if i not in joining and (t % pop.eval_every == 0 or t == total)]
            if due:
                pop.record(t, due)
            pop.save_named_states(t)
            if t in pop.tele_at:  # device tensors only: read back at the next evaluation
                pop.telemetry(t)
            if t == total or not any(s == "running" for s in pop.status):
                break
            if pop.ckpt_every and t % pop.ckpt_every == 0 and t > t0:
                now = time.perf_counter()
                due = opts.checkpoint_seconds is None or now - last_checkpoint >= opts.checkpoint_seconds
                if opts.dist is not None:  # the clock is read on rank 0: every rank checkpoints together
                    due = opts.dist.agree(due)
                if due:
                    pop.checkpoint(t)
                    last_checkpoint = now
        stepper(t)
        if t in pop.tele_at:
            pop.telemetry_grad()
    for i in range(n):
        if pop.status[i] == "running":
            pop.finish(i, t)
    return [summary(j, pop.stores[i]) for i, j in enumerate(jobs)]


def summary(job: Job, store: RunDir) -> dict[str, Any]:
    """The JSON record of a finished run (the CONTRACT's run record)."""
    done = store.done or {}
    rec: dict[str, Any] = {"path": str(store.path), "replicate": job.replicate,
                           "final_test_accuracy": done.get("final_test_accuracy"),
                           "status": done.get("status", "missing"), "states": store.states()}
    if store.has_mask():
        rec["mask"] = str(store.mask_file)
    return rec
