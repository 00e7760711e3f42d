"""Ranking survivors for magnitude pruning (lth.prune.strategies._drop_ranked): selection (kthvalue, then the tied
survivors in index order) against the stable sort it replaces, on ``--weights`` random magnitudes (ResNet-18:
11.2M) with 70% surviving, dropping 20% of the survivors (one IMP level). Checks both give the same mask; prints
one JSON document with the median seconds of ``--repeats`` runs each.

  python bench/prune_rank.py [--weights 11200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _common import device_info

from lth.prune.strategies import _drop_ranked


def by_sort(score: torch.Tensor, keep: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """The stable sort (the previous implementation)."""
    new = keep.clone()
    idx = keep.nonzero().squeeze(1)
    new[idx[torch.argsort(score[idx], stable=True, descending=largest)[:k]]] = False
    return new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=int, default=11_200_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    score = torch.randn(args.weights, generator=g).abs()
    keep = torch.rand(args.weights, generator=g) < 0.7
    k = int(0.2 * int(keep.sum()))
    out = {"bench": "prune_rank", **device_info(torch.device("cpu")), "weights": args.weights, "dropped": k}
    for largest in (False, True):
        times: dict[str, list[float]] = {"stable_sort": [], "selection": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            a = by_sort(score, keep, k, largest)
            times["stable_sort"].append(time.perf_counter() - t)
            t = time.perf_counter()
            b = _drop_ranked(score, keep, k, largest)
            times["selection"].append(time.perf_counter() - t)
            assert torch.equal(a, b)
        med = {name: round(statistics.median(v), 4) for name, v in times.items()}
        out["largest" if largest else "smallest"] = {**med, "speedup": round(med["stable_sort"] / med["selection"], 2)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
