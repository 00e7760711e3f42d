"""On the CPU, when does a population pay? ms per iteration per network for a tiny MLP (digits_mlp) and for
LeNet-300-100 at N = 1, 4, 16: this sets the executor's CPU default (lth.executor.CPU_POPULATION_MAX_PARAMS).

    python bench/cpu_population.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info, time_engine  # noqa: E402

from lth.presets import get_preset  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("LTH_DATA"))
    a = p.parse_args()
    dev = torch.device("cpu")
    out: dict = {"benchmark": "cpu_population", **device_info(dev), "rows": []}
    for preset, sizes, measure in [("digits_mlp", (1, 4, 16), 400), ("lenet_300_100", (1, 4, 16), 100)]:
        for n in sizes:
            s = time_engine(get_preset(preset).spec, n, 20, measure, dev, a.data_dir)
            row = {"preset": preset, "n": n, "ms_per_it": s * 1e3, "ms_per_it_per_network": s * 1e3 / n}
            out["rows"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
