"""Two ways to train N networks as one: lth's stacked layers (grouped convolutions, batched matmuls) against
``torch.func.functional_call`` + ``vmap`` over N ordinary networks. Times forward+backward+SGD per iteration.

    python bench/vmap.py [--device cuda] [--n 16]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_info, sync  # noqa: E402
from baselines import Single  # noqa: E402

from lth.models import build_model  # noqa: E402


def time_it(fn, device: torch.device, warm: int, steps: int, graph: bool) -> float:
    """Seconds per call of ``fn`` (optionally captured as a CUDA graph)."""
    if graph and device.type == "cuda":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        call = g.replay
    else:
        call = fn
    for _ in range(warm):
        call()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        call()
    sync(device)
    return (time.perf_counter() - t) / steps


def bench(name: str, shape: tuple[int, ...], batch: int, n: int, device: torch.device, steps: int,
          graph: bool) -> dict:
    x = torch.randn(n, batch, *shape, device=device)
    y = torch.randint(0, 10, (n, batch), device=device)
    # stacked layers
    pop = build_model(name, n, shape, 10).to(device)
    for i in range(n):
        pop.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
    params = list(pop.parameters())

    def stacked() -> None:
        loss = F.cross_entropy(pop(x).reshape(n * batch, -1), y.reshape(-1), reduction="none").view(n, -1).mean(1)
        gs = torch.autograd.grad(loss.sum(), params)
        with torch.no_grad():
            torch._foreach_add_(params, gs, alpha=-0.01)

    # vmap over ordinary single networks (BatchNorm buffers are functional inputs, stats not written back)
    nets = [Single(name, shape, 10).to(device) for _ in range(n)]
    p_st, b_st = stack_module_state(nets)
    base = Single(name, shape, 10).to("meta")

    def loss_one(p, b, xi, yi):
        return F.cross_entropy(functional_call(base, (p, b), (xi,)), yi)

    gv = vmap(grad_and_value(loss_one), in_dims=(0, 0, 0, 0), randomness="different")
    keys = list(p_st)

    def vmapped() -> None:
        g, _ = gv(p_st, b_st, x, y)
        with torch.no_grad():
            torch._foreach_add_([p_st[k] for k in keys], [g[k] for k in keys], alpha=-0.01)

    return {"model": name, "n": n, "batch": batch,
            "stacked_ms": time_it(stacked, device, 3, steps, graph) * 1e3,
            "vmap_ms": time_it(vmapped, device, 3, steps, graph) * 1e3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=0)
    a = p.parse_args()
    dev = torch.device(a.device)
    gpu = dev.type == "cuda"
    steps = a.steps or (100 if gpu else 5)
    out = {"benchmark": "stacked_vs_vmap", **device_info(dev), "rows": []}
    for graph in ([False, True] if gpu else [False]):
        for name, shape, batch, n in [("lenet_300_100", (1, 28, 28), 60, max(a.n, 64 if gpu else a.n)),
                                      ("resnet_20", (3, 32, 32), 128, a.n)]:
            try:
                row = bench(name, shape, batch, n, dev, steps, graph)
            except Exception as e:  # vmap may refuse a model: record why
                row = {"model": name, "n": n, "error": f"{type(e).__name__}: {e}"[:300]}
            row["cuda_graph"] = graph
            out["rows"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
