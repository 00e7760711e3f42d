"""ResNet-20 (batch 128, CIFAR-shaped data) ms per iteration under the engine's layout and precision options,
for populations of 1 and 16: what to turn on by default on a GPU.

    python bench/resnet_variants.py [--sizes 1,16]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info  # noqa: E402

from lth.data import load_dataset  # noqa: E402
from lth.engine.train import EngineOptions, Job, train_population  # noqa: E402
from lth.presets import get_preset  # noqa: E402
from lth.spec import DataHparams, Step  # noqa: E402


def ms_per_it(n: int, precision: str, channels_last: str, graph: str, warm: int = 20, steps: int = 200,
              compile: bool = False) -> float:
    spec = get_preset("resnet20").spec
    spec = dataclasses.replace(spec, data=DataHparams(dataset="synthetic", batch_size=128, augment=True),
                               train=dataclasses.replace(spec.train, precision=precision,
                                                         training_steps=Step(warm + steps, "it"),
                                                         eval_every=Step(warm, "it")))
    data = load_dataset(spec.data, device="cuda")
    stamps: dict[int, float] = {}
    evals: dict[int, float] = {}

    def cb(event: str, info: dict) -> None:
        if event == "eval":
            stamps[info["iteration"]] = time.perf_counter()
            evals[info["iteration"]] = info["eval_seconds"]

    with tempfile.TemporaryDirectory() as tmp:
        jobs = [Job(spec, r, Path(tmp) / str(r)) for r in range(n)]
        train_population(jobs, data, EngineOptions(device="cuda", cuda_graph=graph, channels_last=channels_last,
                                                   checkpoint_every=None, callback=cb, compile=compile))
    end = warm + steps
    return (stamps[end] - stamps[warm] - sum(v for k, v in evals.items() if k > warm)) / steps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1,16")
    p.add_argument("--compile-only", action="store_true", help="only compare torch.compile on/off (fp32, bf16)")
    a = p.parse_args()
    out = {"benchmark": "resnet_variants", **device_info(torch.device("cuda")), "rows": []}
    if a.compile_only:
        for n in map(int, a.sizes.split(",")):
            for precision in ("fp32", "bf16"):
                for comp in (False, True):
                    row = {"n": n, "precision": precision, "channels_last": "auto", "cuda_graph": "auto",
                           "compile": comp, "ms_per_it": ms_per_it(n, precision, "auto", "auto", compile=comp)}
                    out["rows"].append(row)
                    print(json.dumps(row), file=sys.stderr)
        print(json.dumps(out, indent=2))
        return
    for n in map(int, a.sizes.split(",")):
        for precision, cl, graph in [("fp32", "off", "auto"), ("fp32", "input", "auto"), ("fp32", "auto", "auto"),
                                     ("bf16", "input", "auto"), ("bf16", "auto", "auto"), ("fp32", "auto", "off")]:
            row = {"n": n, "precision": precision, "channels_last": cl, "cuda_graph": graph,
                   "ms_per_it": ms_per_it(n, precision, cl, graph)}
            out["rows"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
