"""Time to evaluate one linear-interpolation path between two ResNet-20 states, BatchNorm statistics recomputed
at every point (the LMC instability of lth stability): 30 points, 10,000 test images, BN from 30 batches of 128
training images. CIFAR-10-shaped synthetic data (timing only). Prints JSON.
  python bench/stability_path.py [--device cuda] [--points 30] [--repeats 3]"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import device_info, sync

from lth.analysis.stability import default_alphas, instability
from lth.engine.batches import generator
from lth.models import build_model
from lth.spec import ModelHparams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--points", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--test-size", type=int, default=10000)
    ap.add_argument("--one-by-one", default="auto", choices=("auto", "on", "off"),
                    help="evaluate the points one at a time after the BN recomputation (auto: on CUDA)")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = ModelHparams(model="resnet_20", norm="batchnorm")
    pop = build_model("resnet_20", 2, (3, 32, 32), 10)
    for i in range(2):
        pop.init_member(i, "kaiming_normal", generator(torch.device("cpu"), 0, i))
    a, b = pop.member_state(0), pop.member_state(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.test_size, 3, 32, 32, generator=g).to(device)
    y = torch.randint(10, (args.test_size,), generator=g).to(device)
    train_x = torch.randn(50000, 3, 32, 32, generator=g).to(device)
    kw = dict(example_shape=(3, 32, 32), num_classes=10, device=device, bn_data=train_x, bn_batches=30,
              bn_batch_size=128, one_by_one={"auto": None, "on": True, "off": False}[args.one_by_one])
    alphas = default_alphas(args.points)
    instability(model, a, b, x, y, alphas=alphas, **kw)  # warm-up (cuDNN autotuning, allocations)
    times = []
    for _ in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        res = instability(model, a, b, x, y, alphas=alphas, **kw)
        sync(device)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"bench": "stability_path", **device_info(device), "model": "resnet_20", "points": args.points,
                      "test_examples": args.test_size, "bn_batches": 30, "bn_batch_size": 128,
                      "one_by_one": args.one_by_one,
                      "seconds": [round(t, 3) for t in times], "best_seconds": round(min(times), 3),
                      "instability": res.instability}))


if __name__ == "__main__":
    main()
