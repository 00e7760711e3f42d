"""The cost of a distributed step at world size 1: ms per iteration of lth's engine with and without
torch.distributed (a process group of one: gloo on the CPU, NCCL on CUDA; the gradients all-reduced in flat buckets,
the evaluation sharded and summed, the step eager) for LeNet-300-100 (MNIST, batch 60; hand-written backward on the
CPU) and ResNet-20 (CIFAR-shaped synthetic data, batch 128).

    python bench/ddp_overhead.py --data-dir ../shared/data [--device cuda] [--repeats 3] [--quick] [--models M,M]

On CUDA the plain step is timed twice: as lth runs it (one CUDA-graph replay) and eager (``cuda_graph=off``), since a
distributed step runs eagerly. Prints one JSON object: per model, each variant's mean and spread over the repeats
(alternated, so drift in a shared machine's load hits both), and the overhead of the distributed step in percent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EvalClock, device_info  # noqa: E402

from lth.data import load_dataset  # noqa: E402
from lth.engine import distributed as ddp  # noqa: E402
from lth.engine.train import EngineOptions, Job, train_population  # noqa: E402
from lth.executor.distributed import free_port  # noqa: E402
from lth.presets import get_preset  # noqa: E402
from lth.spec import DataHparams, Step, TrainSpec  # noqa: E402


def seconds_per_step(spec: TrainSpec, data: Any, device: torch.device, warmup: int, measure: int,
                     dist: Any = None, cuda_graph: str = "auto") -> float:
    """Seconds per iteration between two evaluations (the evaluation's own time left out), one network."""
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(warmup + measure, "it"),
                                                               eval_every=Step(warmup, "it")))
    clock = EvalClock()
    with tempfile.TemporaryDirectory() as tmp:
        opts = EngineOptions(device=str(device), cuda_graph=cuda_graph, checkpoint_every=None, callback=clock,
                             dist=dist)
        train_population([Job(spec, 0, Path(tmp) / "r")], data, opts)
    return clock.per_step(warmup, warmup + measure)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("LTH_DATA"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke test)")
    p.add_argument("--models", default="lenet_300_100,resnet20", help="which of lenet_300_100, resnet20")
    a = p.parse_args()
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    dist = ddp.setup(0, 1, "127.0.0.1", free_port(), str(dev))
    out: dict[str, Any] = {"benchmark": "ddp_overhead", "world_size": 1, "backend": dist.backend,
                           "repeats": a.repeats, **device_info(dev)}
    lenet = get_preset("lenet_300_100").spec
    resnet = get_preset("resnet20").spec
    resnet = dataclasses.replace(resnet, data=DataHparams(dataset="synthetic", batch_size=128, augment=True))
    cases = [("lenet_300_100", lenet, 100 if gpu else 50, (300 if gpu else 200) // (4 if a.quick else 1)),
             ("resnet20", resnet, 30 if gpu else 2, (200 if gpu else 6) // (4 if a.quick else 1))]
    try:
        for name, spec, warmup, measure in [c for c in cases if c[0] in a.models.split(",")]:
            data = load_dataset(spec.data, a.data_dir, dev)
            variants = {"plain": {}, "distributed": {"dist": dist}}
            if gpu:
                variants["plain_eager"] = {"cuda_graph": "off"}
            times: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(a.repeats):
                for k, kw in variants.items():
                    times[k].append(seconds_per_step(spec, data, dev, warmup, max(1, measure), **kw) * 1e3)
            row: dict[str, Any] = {k: {"ms_per_it_mean": statistics.mean(v), "ms_per_it_min": min(v),
                                       "ms_per_it_max": max(v)} for k, v in times.items()}
            base = statistics.mean(times["plain"])
            row["overhead_percent"] = 100 * (statistics.mean(times["distributed"]) - base) / base
            if gpu:
                eager = statistics.mean(times["plain_eager"])
                row["overhead_vs_eager_percent"] = 100 * (statistics.mean(times["distributed"]) - eager) / eager
            out[name] = row
            print(json.dumps({name: row}), file=sys.stderr)
    finally:
        ddp.teardown()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
