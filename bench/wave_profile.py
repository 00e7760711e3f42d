"""Where a lottery wave's step goes on a GPU: masked LeNet-300-100 populations (batch 60, Adam, MNIST-shaped
synthetic data) timed per step between two evaluation events after a warm-up (CUDA-graph capture), in the
shapes the F&C figure and the mode-connectivity recipe train:

- ``fc15``: 15 members, one optimiser clock (a trunk level with its two branches, 5 replicates);
- ``mc12``: 12 members in four clock groups, three joining late at 100, 500 and 2000 it (a level of four
  rewinding trunks, 3 replicates);
- ``mc12_one_clock``: the same 12 members on one clock (what the four clock groups cost);
- ``fc15_manual``: ``fc15`` with the MLP's hand-written backward (``EngineOptions(mlp_backward="manual")``), fewer
  kernels than autograd's;
- ``fc15_tf32``: ``fc15`` with TF32 matmuls (``--tf32``: rounds differently);
- ``fc15_compile``: ``fc15`` with ``--compile``: for an MLP the hand-written forward and backward compiled as one
  function (set-up seconds include the compilation); ``fc15_compile_tf32``: both.

Then a CUDA-kernel table (torch.profiler) of one eager step of each ``--kernels`` configuration (``fc15`` and
``mc12`` by default): how many kernels a step launches and which cost most. Prints JSON lines.
  python bench/wave_profile.py [--measure 3000] [--only fc15,mc12] [--kernels fc15,fc15_manual]"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import EvalClock, device_info, masked_lenet_jobs

from lth.data.datasets import Dataset
from lth.engine.population import Population
from lth.engine.step import Stepper
from lth.engine.train import EngineOptions, train_population

CONFIGS = ("fc15", "mc12", "mc12_one_clock", "fc15_manual", "fc15_tf32", "fc15_compile", "fc15_compile_tf32")


def _options(name: str, device: torch.device, callback: Any = None) -> EngineOptions:
    """The engine options a configuration's name stands for."""
    return EngineOptions(device=str(device), checkpoint_every=None, callback=callback, compile="compile" in name,
                         mlp_backward="manual" if "manual" in name else "auto", tf32="tf32" in name)


def timed(name: str, data: Dataset, measure: int, device: torch.device, late: list[int]) -> dict[str, Any]:
    n, starts = (15, [0]) if name.startswith("fc15") else (12, [0, *late] if name == "mc12" else [0])
    warm = max(measure, max(late) + 100)
    clock = EvalClock()
    opts = _options(name, device, clock)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train_population(masked_lenet_jobs(Path(tmp), n, warm + measure, warm, starts), data, opts)
    step = clock.per_step(warm, warm + measure)
    return {"config": name, "members": n, "clock_groups": len(starts), "ms_per_step": round(1000 * step, 4),
            "setup_and_warmup_seconds": round(clock.stamps[warm] - t0, 2)}


def kernels(name: str, data: Dataset, device: torch.device, late: list[int], rows: int = 25) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    n, starts = (15, [0]) if name.startswith("fc15") else (12, [0, *late] if name == "mc12" else [0])
    with tempfile.TemporaryDirectory() as tmp:
        jobs = masked_lenet_jobs(Path(tmp), n, 4000, 4000, starts)
        pop = Population(jobs, data, _options(name, device), lambda *a, **k: None)
        stepper = Stepper(pop)
        for i in range(n):
            pop.activate(i, 0)
        stepper.new_epoch(0)
        for t in range(3):
            stepper.step(t, t)
            stepper._clear_grads()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            stepper.step(3, 3)
            stepper._clear_grads()
            torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows)
    launches = sum(e.count for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA)
    total = sum(e.self_device_time_total for e in prof.key_averages()
                if e.device_type == torch.autograd.DeviceType.CUDA)
    return {"config": name, "kernels_per_step": launches, "kernel_us_per_step": round(total, 1), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measure", type=int, default=3000)
    ap.add_argument("--only", default=",".join(CONFIGS))
    ap.add_argument("--late", default="100,500,2000", help="the late members' start steps in mc12")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--kernels", default="fc15,mc12",
                    help="configurations whose one-step kernel table is printed ('' for none)")
    args = ap.parse_args()
    device = torch.device(args.device)
    late = [int(x) for x in args.late.split(",")]
    g = torch.Generator().manual_seed(1)
    data = Dataset("mnist", torch.randn(55000, 1, 28, 28, generator=g), torch.randint(10, (55000,), generator=g),
                   torch.randn(10000, 1, 28, 28, generator=g), torch.randint(10, (10000,), generator=g),
                   None, None, 10).to(device)
    print(json.dumps({"bench": "wave_profile", **device_info(device)}), flush=True)
    for name in args.only.split(","):
        try:
            print(json.dumps(timed(name, data, args.measure, device, late)), flush=True)
        except Exception as e:  # one failing configuration must not hide the others
            print(json.dumps({"config": name, "error": repr(e)}), flush=True)
    if device.type == "cuda":
        for name in [k for k in args.kernels.split(",") if k]:
            try:
                print(json.dumps(kernels(name, data, device, late)), flush=True)
            except Exception as e:
                print(json.dumps({"config": name, "kernels_error": repr(e)}), flush=True)


if __name__ == "__main__":
    main()
