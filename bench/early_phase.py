"""Costs of the early-phase analysis pieces on ResNet-20 populations: population Lanczos Hessian eigenvalues,
device telemetry (eager and inside a CUDA graph) and the perturbations. Prints JSON.

    PYTHONPATH=src python bench/early_phase.py [--device cuda] [--members 1 8]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import device_info, sync

from lth.analysis.hessian import top_eigenvalues
from lth.analysis.telemetry import Telemetry
from lth.models import build_model
from lth.prune.perturb import perturb


def timed(fn, device: torch.device, repeat: int = 3) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(n: int, x: torch.Tensor, y: torch.Tensor, device: torch.device, iters: int) -> dict:
    """One population size's row."""
    model = build_model("resnet_20", n, (3, 32, 32), 10)
    for i in range(n):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
    model = model.to(device)
    row: dict = {"members": n, "params_per_member": model.num_params()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    res = None

    def hess() -> None:
        nonlocal res
        res = top_eigenvalues(model, x, y, k=5, iters=iters, bn_mode="train")

    row["hessian_s"] = timed(hess, device, repeat=1)
    row["hessian_ms_per_hvp"] = 1000 * row["hessian_s"] / iters
    row["top_eigenvalues_member0"] = res.values[0].tolist()
    if device.type == "cuda":
        row["hessian_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    init = {k: v.clone() for k, v in model.state_dict().items()}
    tel = Telemetry(model, init, init)
    row["telemetry_eager_ms"] = 1000 * timed(lambda: tel(model), device, repeat=10)
    if device.type == "cuda":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            tel(model)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = tel(model)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.01)
        graph.replay()
        ref = tel(model)
        row["telemetry_graph_matches_eager"] = all(
            torch.allclose(captured[k], ref[k], rtol=1e-5, atol=1e-6) for k in ref)
        row["telemetry_graph_ms"] = 1000 * timed(graph.replay, device, repeat=10)
    state = model.member_state(0)
    prunable = model.prunable()
    row["shuffle_unit_same_sign_ms"] = 1000 * timed(lambda: perturb(
        "shuffle", state, prunable, torch.Generator().manual_seed(1), within="unit", same_sign=True), device)
    row["noise_ms"] = 1000 * timed(lambda: perturb(
        "noise", state, prunable, torch.Generator().manual_seed(1), scale=1.0, sigmas="kaiming_normal"), device)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    device = torch.device(args.device)
    out: dict = {"info": device_info(device), "model": "resnet_20", "batch": args.batch, "lanczos_iters": args.iters,
                 "rows": []}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(10, (args.batch,), generator=g).to(device)
    for n in args.members:
        out["rows"].append(measure(n, x, y, device, args.iters))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
