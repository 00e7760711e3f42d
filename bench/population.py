"""Population scaling: ms per iteration and the projected full recipe for N networks trained as one.

ResNet-20 on CIFAR-shaped data (batch 128, 63K-iteration recipe) for N = 1, 2, 4, 8, 16, 32 beside the textbook
DataLoader loop, and LeNet-300-100 on MNIST (batch 60, 50K-iteration recipe) for N = 1, 8, 64, 256.

    python bench/population.py --data-dir ../shared/data [--device cuda] [--quick] [--cuda-graph off]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info, time_engine  # noqa: E402
from baselines import textbook_resnet20  # noqa: E402

from lth.presets import get_preset  # noqa: E402
from lth.spec import DataHparams  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("LTH_DATA"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cuda-graph", default="auto", choices=("auto", "off"))
    p.add_argument("--resnet-sizes", default="1,2,4,8,16,32")
    p.add_argument("--lenet-sizes", default="1,8,64,256")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    a = p.parse_args()
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    out: dict = {"benchmark": "population", "cuda_graph": a.cuda_graph, "precision": a.precision,
                 **device_info(dev)}

    resnet = get_preset("resnet20").spec
    resnet = dataclasses.replace(resnet, data=DataHparams(dataset="synthetic", batch_size=128, augment=True),
                                 train=dataclasses.replace(resnet.train, precision=a.precision))
    rows = []
    for n in map(int, a.resnet_sizes.split(",")):
        measure = (50 if a.quick else 200) if gpu else 5
        s = time_engine(resnet, n, 20 if gpu else 2, measure, dev, cuda_graph=a.cuda_graph)
        rows.append({"n": n, "ms_per_it": s * 1e3, "recipe_63k_s_all": s * 63000,
                     "recipe_63k_s_per_network": s * 63000 / n})
        print(json.dumps(rows[-1]), file=sys.stderr)
    tb = textbook_resnet20(dev, 50 if gpu else 5, min(8, os.cpu_count() or 1) if gpu else 0)
    out["resnet20"] = {"rows": rows, "textbook_ms_per_it": tb * 1e3, "textbook_63k_recipe_s": tb * 63000}

    lenet = get_preset("lenet_300_100").spec
    lenet = dataclasses.replace(lenet, train=dataclasses.replace(lenet.train, precision=a.precision))
    rows = []
    for n in map(int, a.lenet_sizes.split(",")):
        measure = (200 if a.quick else 1000) if gpu else 100
        s = time_engine(lenet, n, 100 if gpu else 20, measure, dev, a.data_dir, cuda_graph=a.cuda_graph)
        rows.append({"n": n, "ms_per_it": s * 1e3, "recipe_50k_s_all": s * 50000,
                     "recipe_50k_s_per_network": s * 50000 / n})
        print(json.dumps(rows[-1]), file=sys.stderr)
    out["lenet_300_100"] = {"rows": rows}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
