"""Shared helpers for the benchmarks: device facts and timing of lth's engine."""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import Step, TrainSpec


def device_info(device: torch.device) -> dict[str, Any]:
    """Hardware and versions, as every benchmark reports them."""
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
                            "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def sync(device: torch.device) -> None:
    """Wait for the device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(spec: TrainSpec, n: int, warmup: int, measure: int, device: torch.device,
                data_dir: str | None = None, cuda_graph: str = "auto", **engine: Any) -> float:
    """Seconds per iteration of lth's engine for a population of ``n`` copies of ``spec``.

    Trains ``measure`` warm-up iterations (at least ``warmup``: CUDA-graph capture, cuDNN autotuning), then
    ``measure`` timed ones, with evaluations only at 0, the start and the end of the timed stretch: the time
    between the last two evaluation events (each reads results back, so the device is synchronised), less the
    last evaluation's own time, over ``measure`` iterations. ``engine``: more EngineOptions fields (``decoder``)."""
    warmup = max(warmup, measure)
    spec = _with(spec, training_steps=Step(warmup + measure, "it"), eval_every=Step(warmup, "it"))
    data = load_dataset(spec.data, data_dir, device)
    clock = EvalClock()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [Job(spec, r, Path(tmp) / f"r{r}") for r in range(n)]
        opts = EngineOptions(device=str(device), cuda_graph=cuda_graph, checkpoint_every=None, callback=clock, **engine)
        train_population(jobs, data, opts)
    return clock.per_step(warmup, warmup + measure)


class EvalClock:
    """An engine callback that notes when each evaluation event happened and how long the evaluation took."""

    def __init__(self) -> None:
        self.stamps: dict[int, float] = {}
        self.evals: dict[int, float] = {}

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "eval":
            self.stamps[info["iteration"]] = time.perf_counter()
            self.evals[info["iteration"]] = info["eval_seconds"]

    def per_step(self, start: int, end: int) -> float:
        """Seconds per step between the evaluations at ``start`` and ``end``, less the evaluations after
        ``start`` (each event reads results back, so the device is synchronised at both ends)."""
        eval_time = sum(v for k, v in self.evals.items() if start < k <= end)
        return (self.stamps[end] - self.stamps[start] - eval_time) / (end - start)


def _with(spec: TrainSpec, **train: Any) -> TrainSpec:
    import dataclasses

    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, **train))


def masked_lenet_jobs(root: Path, n: int, total: int, every: int, starts: tuple[int, ...] | list[int] = (0,),
                      tag: str = "m") -> list[Job]:
    """``n`` LeNet-300-100 jobs (the F&C preset) of ``total`` iterations, evaluated every ``every``, each under
    a random 50% mask; member i starts at ``starts[i % len(starts)]`` (a later start: it joins there)."""
    import dataclasses

    from lth.presets import get_preset

    base = get_preset("lenet_300_100").spec
    spec = dataclasses.replace(base, train=dataclasses.replace(base.train, training_steps=Step(total, "it"),
                                                               eval_every=Step(every, "it")))
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        mask = {f"layers.{k}.weight": torch.rand(shape, generator=g) < 0.5
                for k, shape in enumerate([(300, 784), (100, 300), (10, 100)])}
        out.append(Job(spec, i, root / f"{tag}{i}", start_step=starts[i % len(starts)], mask=mask))
    return out
