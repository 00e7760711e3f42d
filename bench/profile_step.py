"""Profile lth's ResNet-20 training step on CUDA (eager, so kernels are visible): the top kernels by device time
and the kernel count per step, to see what bounds the CUDA-graph step.

    python bench/profile_step.py [--n 1] [--precision fp32]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.presets import get_preset
from lth.spec import DataHparams, Step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    spec = get_preset("resnet20").spec
    spec = dataclasses.replace(spec, data=DataHparams(dataset="synthetic", batch_size=128, augment=True),
                               train=dataclasses.replace(spec.train, precision=a.precision,
                                                         training_steps=Step(a.steps, "it"),
                                                         eval_every=Step(10000, "it")))
    data = load_dataset(spec.data, device="cuda")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [Job(spec, r, Path(tmp) / str(r)) for r in range(a.n)]
        opts = EngineOptions(device="cuda", cuda_graph="off", checkpoint_every=None)
        train_population(jobs, data, opts)  # warm-up (cuDNN autotuning)
        jobs = [Job(spec, r, Path(tmp) / f"b{r}") for r in range(a.n)]
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            train_population(jobs, data, opts)
    events = prof.key_averages()
    kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
    print(f"device kernels per step (incl. evaluation): {kernels / a.steps:.0f}")
    print(events.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    main()
