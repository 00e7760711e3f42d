"""Helpers of the lottery-ticket ablations: shuffled masks, re-sampled initialisations, random masks, and the
width of a dense network with a given parameter count. Every random draw comes from the ``generator`` passed in
(drawn on the CPU, so results do not depend on the device)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from lth.prune.masks import Mask

MASK_MODES = ("layerwise", "global")


def permute_mask(mask: Mapping[str, Tensor], generator: torch.Generator) -> Mask:
    """Each layer's mask with its entries randomly permuted: the same kept count per layer, new positions."""
    out = {}
    for name, m in mask.items():
        perm = torch.randperm(m.numel(), generator=generator).to(m.device)
        out[name] = m.reshape(-1)[perm].view(m.shape).clone()
    return out


DN_POOLS = ("network", "layer")


def sample_dn(init_weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], generator: torch.Generator,
              pool: str = "network") -> dict[str, Tensor]:
    """New weights for the masked layers drawn from the ticket's distribution ``D_n``; zeros at pruned positions.

    ``D_n`` is the empirical distribution of the ticket's nonzero initial weights,
    ``theta_LT = nonzero(m * theta_0)`` (mask-topology study, seed 004, section 2), quantised and sampled
    "uniformly at random from theta_LT". ``pool`` says over which weights:

    * ``network`` (default, the study's definition): every kept position of every layer gets a value drawn
      uniformly, with replacement, from the nonzero kept initial weights of the *whole network*;
    * ``layer``: each layer draws from its own nonzero kept initial weights. A layer that keeps weights but whose
      pool is empty (all its kept initial weights are zero, e.g. the last convolution of each residual branch of
      a Fixup ResNet at k = 0) draws from the network-wide pool instead.

    Draws come from ``generator`` (on the CPU): first one index per kept position of every layer in the mask's
    order (``network``), or layer by layer (``layer``). ValueError when weights are kept but no kept initial
    weight of the network is nonzero."""
    if pool not in DN_POOLS:
        raise ValueError(f"unknown D_n pool {pool!r}; allowed: {', '.join(DN_POOLS)}")
    keeps, pools = {}, {}
    for name, m in mask.items():
        w = init_weights[name].detach()
        if w.shape != m.shape:
            raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, weight has {tuple(w.shape)}")
        keeps[name] = m.to(device=w.device, dtype=torch.bool)
        pools[name] = w[keeps[name] & (w != 0)]
    everything = torch.cat([p.cpu() for p in pools.values()]) if pools else torch.zeros(0)

    def draw(source: Tensor, k: int, name: str) -> Tensor:
        if source.numel() == 0:
            raise ValueError(f"layer {name} keeps {k} weights but no kept initial weight of the network is nonzero")
        return source[torch.randint(source.numel(), (k,), generator=generator)]

    out = {}
    for name, keep in keeps.items():
        k = int(keep.sum())
        new = torch.zeros_like(init_weights[name].detach())
        if k:
            source = everything if pool == "network" or pools[name].numel() == 0 else pools[name].cpu()
            new[keep] = draw(source, k, name).to(device=new.device, dtype=new.dtype)
        out[name] = new
    return out


def random_mask_like(mask: Mapping[str, Tensor], generator: torch.Generator, mode: str = "layerwise") -> Mask:
    """A uniformly random mask over all positions with ``mask``'s kept count per layer (``layerwise``) or with its
    total kept count spread over all layers together (``global``)."""
    if mode == "layerwise":
        out = {}
        for name, m in mask.items():
            flat = torch.zeros(m.numel(), dtype=torch.bool)
            flat[torch.randperm(m.numel(), generator=generator)[:int(m.sum())]] = True
            out[name] = flat.view(m.shape).to(m.device)
        return out
    if mode == "global":
        sizes = [m.numel() for m in mask.values()]
        flat = torch.zeros(sum(sizes), dtype=torch.bool)
        kept = sum(int(m.sum()) for m in mask.values())
        flat[torch.randperm(flat.numel(), generator=generator)[:kept]] = True
        return {name: part.view(m.shape).to(m.device)
                for (name, m), part in zip(mask.items(), flat.split(sizes), strict=True)}
    raise ValueError(f"unknown random mask mode {mode!r}; allowed: {', '.join(MASK_MODES)}")


def scaled_width_for_params(target_params: int, count_fn: Callable[[float], int], max_width: float = 1024.0,
                            min_width: float = 1e-4) -> float:
    """The width multiplier ``w`` whose dense parameter count ``count_fn(w)`` is closest to ``target_params``.

    ``count_fn`` must not decrease with ``w``. Brackets the target by doubling/halving, bisects to the step of
    ``count_fn`` where it crosses the target, then returns whichever neighbour of the crossing (just below, just
    above) is closer (the smaller width on a tie). Widths are clamped to ``[min_width, max_width]``.
    """
    if target_params < 1:
        raise ValueError(f"target parameter count must be >= 1, got {target_params}")
    cache: dict[float, int] = {}

    def count(w: float) -> int:
        if w not in cache:
            cache[w] = int(count_fn(w))
        return cache[w]

    hi = 1.0
    while count(hi) < target_params and hi < max_width:
        hi = min(hi * 2, max_width)
    if count(hi) < target_params:
        return hi  # even the widest allowed network is too small
    lo = hi / 2
    while count(lo) >= target_params and lo > min_width:
        hi, lo = lo, max(lo / 2, min_width)
    if count(lo) >= target_params:
        return lo  # even the narrowest allowed network is big enough
    # invariant: count(lo) < target <= count(hi)
    for _ in range(100):
        mid = (lo + hi) / 2
        if mid in (lo, hi) or hi - lo <= 1e-9 * hi:
            break
        if count(mid) < target_params:
            lo = mid
        else:
            hi = mid
        if count(hi) == target_params:
            return hi
    return lo if target_params - count(lo) <= count(hi) - target_params else hi


__all__ = ["DN_POOLS", "MASK_MODES", "permute_mask", "random_mask_like", "sample_dn", "scaled_width_for_params"]
