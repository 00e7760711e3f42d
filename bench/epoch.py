"""Seconds per epoch: LeNet-300-100 on MNIST (batch 60, Adam) and ResNet-20 on CIFAR-shaped data (batch 128),
for lth and, in the same run, a textbook torchvision Dataset+DataLoader loop and a tight hand-written loop.

    python bench/epoch.py --data-dir ../shared/data [--device cuda] [--quick]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info, time_engine  # noqa: E402
from baselines import textbook_mnist, textbook_resnet20, tight_mnist  # noqa: E402

from lth.data import load_dataset  # noqa: E402
from lth.presets import get_preset  # noqa: E402
from lth.spec import DataHparams  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("LTH_DATA"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke test)")
    p.add_argument("--skip-resnet", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="LeNet timings: median of this many")
    a = p.parse_args()
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    workers = min(8, os.cpu_count() or 1) if gpu else 0
    steps = 200 if a.quick else 1000
    out: dict = {"benchmark": "epoch", **device_info(dev)}

    lenet = get_preset("lenet_300_100").spec
    spe = 1000  # MNIST: 60000 / 60
    lth, tight = [], []
    for _ in range(a.repeats):  # interleaved, so a noisy neighbour hits both alike
        lth.append(time_engine(lenet, 1, 100, steps, dev, a.data_dir) * spe)
        tight.append(tight_mnist(*_mnist(a.data_dir), dev, steps) * spe)
    out["lenet_300_100_mnist"] = {
        "batch_size": 60, "steps_per_epoch": spe, "repeats": a.repeats,
        "lth_s_per_epoch": statistics.median(lth), "lth_s_per_epoch_all": lth,
        "tight_loop_s_per_epoch": statistics.median(tight), "tight_loop_s_per_epoch_all": tight,
        "textbook_dataloader_s_per_epoch": textbook_mnist(Path(a.data_dir), dev, min(steps, 300), workers) * spe,
        "textbook_workers": workers,
    }
    if not a.skip_resnet:
        spec = get_preset("resnet20").spec
        import dataclasses

        spec = dataclasses.replace(spec, data=DataHparams(dataset="synthetic", batch_size=128, augment=True))
        spe = 50000 // 128
        n_steps = (200 if gpu else 10) if a.quick else (500 if gpu else 20)
        lth_it = time_engine(spec, 1, 20 if gpu else 3, n_steps, dev)
        tb_it = textbook_resnet20(dev, n_steps, workers)
        out["resnet20_cifar_shaped"] = {
            "batch_size": 128, "steps_per_epoch": spe,
            "lth_ms_per_it": lth_it * 1e3, "lth_s_per_epoch": lth_it * spe, "lth_63k_recipe_s": lth_it * 63000,
            "textbook_ms_per_it": tb_it * 1e3, "textbook_s_per_epoch": tb_it * spe,
            "textbook_63k_recipe_s": tb_it * 63000, "textbook_workers": workers,
        }
    print(json.dumps(out, indent=2))


def _mnist(data_dir: str | None):
    d = load_dataset(DataHparams(dataset="mnist"), data_dir)
    return d.train_x, d.train_y


if __name__ == "__main__":
    main()
