"""Populations at once: LeNet-300-100 (batch 60, Adam, masks at 50% density) trained as populations of N alone,
and as two or three populations at the same time, each in its own thread on its own CUDA stream. The question:
does a GPU that a small population leaves partly idle train two at once faster than one merged population (the
trunk of a lottery graph apart from its branches)? On an H100 it does not (bench/RESULTS.md), so lth's executor
merges ready nodes into one population. Prints JSON: the wall time of each configuration for ``--iterations`` steps per
population (population set-up, CUDA-graph capture and evaluations at the start and end included).
MNIST-shaped synthetic data (timing only).
  python bench/streams.py [--iterations 10000] [--device cuda]"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import torch
from _common import device_info, masked_lenet_jobs, sync

from lth.data.datasets import Dataset
from lth.engine.train import EngineOptions, Job, train_population


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--configs", default="5;10;15;5,10;5,10,10;15,15")
    args = ap.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(1)
    data = Dataset("mnist", torch.randn(55000, 1, 28, 28, generator=g), torch.randint(10, (55000,), generator=g),
                   torch.randn(10000, 1, 28, 28, generator=g), torch.randint(10, (10000,), generator=g),
                   torch.randn(5000, 1, 28, 28, generator=g), torch.randint(10, (5000,), generator=g), 10).to(device)
    opts = EngineOptions(device=str(device), checkpoint_every=None)
    results = []
    for c, config in enumerate(["5"] + args.configs.split(";")):  # the first: warm-up (cuBLAS, allocator)
        sizes = [int(s) for s in config.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            groups = [masked_lenet_jobs(Path(tmp), n, args.iterations, args.iterations, tag=f"p{k}_")
                      for k, n in enumerate(sizes)]

            def train(group: list[Job]) -> None:
                if device.type == "cuda":
                    stream = torch.cuda.Stream(device)
                    stream.wait_stream(torch.cuda.default_stream(device))
                    with torch.cuda.stream(stream):
                        train_population(group, data, opts)
                    stream.synchronize()
                else:
                    train_population(group, data, opts)

            sync(device)
            t0 = time.perf_counter()
            threads = [threading.Thread(target=train, args=(grp,)) for grp in groups]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sync(device)
            seconds = time.perf_counter() - t0
        if c:
            results.append({"populations": sizes, "runs": sum(sizes), "seconds": round(seconds, 3),
                            "ms_per_iteration": round(1000 * seconds / args.iterations, 4)})
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"bench": "streams", **device_info(device), "iterations": args.iterations,
                      "results": results}))


if __name__ == "__main__":
    main()
