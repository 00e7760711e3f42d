"""What does bringing your own network cost? ms per training step of lth's engine for a plain ``nn.Module``
converted by ``lth.models.from_module`` (the fx rewrite and the vmap path) against lth's own population models:
LeNet-300-100 (a plain ``nn.Sequential`` 784-300-100-10) and a plain ResNet-20 written here, at N = 1 and 8.

    python bench/from_module.py [--device cuda] [--steps 20]

Synthetic data (nothing to learn: throughput only), SGD with momentum; warm-up steps (and, on CUDA, graph
capture) are excluded. Prints one JSON object; ``ratio`` is converted / native (1.0 = no cost).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info, time_engine  # noqa: E402

from lth.models import MODELS, register_module  # noqa: E402
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec  # noqa: E402


def lenet_300_100() -> nn.Module:
    """LeNet-300-100 as anyone would write it."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn (+ 1x1 conv-bn shortcut when the shape changes), relu."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """The CIFAR ResNet-20 of He et al. (2016), as a plain module."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for s, w in enumerate((16, 32, 64)):
            for b in range(3):
                blocks.append(BasicBlock(c, w, 2 if s > 0 and b == 0 else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def spec(model: str, shape: tuple[int, ...], batch: int, size: int) -> TrainSpec:
    return TrainSpec(DataHparams(dataset="synthetic", synthetic_shape=shape, synthetic_size=size, batch_size=batch),
                     ModelHparams(model=model),
                     TrainHparams(optimizer="sgd", lr=0.01, momentum=0.9, training_steps=Step(1, "ep")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 100 on CUDA, 20 / 3 on CPU)")
    p.add_argument("--sizes", default="1,8", help="population sizes")
    p.add_argument("--models", default="lenet_300_100,resnet_20", help="which of lenet_300_100, resnet_20")
    a = p.parse_args()
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    for name, factory in [("own_lenet", lenet_300_100), ("own_resnet20", ResNet20)]:
        for path in ("fx", "vmap"):
            if f"{name}_{path}" not in MODELS:
                register_module(f"{name}_{path}", factory, path=path)
    out: dict = {"benchmark": "from_module", **device_info(dev), "rows": []}
    cases = [("lenet_300_100", "own_lenet", (1, 28, 28), 60, a.steps or (100 if gpu else 20)),
             ("resnet_20", "own_resnet20", (3, 32, 32), 128 if gpu else 32, a.steps or (100 if gpu else 3))]
    for native, own, shape, batch, steps in (c for c in cases if c[0] in a.models.split(",")):
        for n in (int(s) for s in a.sizes.split(",")):
            size = batch * (2 * steps + 2)
            row = {"model": native, "n": n, "batch": batch, "steps": steps}
            base = time_engine(spec(native, shape, batch, size), n, steps, steps, dev)
            row["native_ms"] = base * 1e3
            for path in ("fx", "vmap"):
                s = time_engine(spec(f"{own}_{path}", shape, batch, size), n, steps, steps, dev)
                row[f"{path}_ms"] = s * 1e3
                row[f"{path}_ratio"] = s / base
            out["rows"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
