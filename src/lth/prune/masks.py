"""Masks: one bool tensor per prunable weight, the weight's shape, True where the weight is kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

Mask = dict[str, Tensor]


def full_mask(state: Mapping[str, Tensor], prunable: Iterable[str]) -> Mask:
    """The mask that keeps every weight of the ``prunable`` tensors of ``state``."""
    return {name: torch.ones(state[name].shape, dtype=torch.bool, device=state[name].device) for name in prunable}


def mask_counts(mask: Mapping[str, Tensor]) -> dict[str, int]:
    """Number of kept weights per layer."""
    return {name: int(m.sum()) for name, m in mask.items()}


def layer_densities(mask: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction of each layer's weights that is kept."""
    return {name: int(m.sum()) / m.numel() if m.numel() else 1.0 for name, m in mask.items()}


def density(mask: Mapping[str, Tensor]) -> float:
    """Fraction of all prunable weights that is kept (1.0 for an empty mask)."""
    total = sum(m.numel() for m in mask.values())
    return sum(int(m.sum()) for m in mask.values()) / total if total else 1.0


def apply_mask(state: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A copy of ``state`` (every tensor cloned) whose masked tensors hold exactly 0 at pruned positions."""
    missing = set(mask) - set(state)
    if missing:
        raise ValueError(f"mask names tensors the state lacks: {sorted(missing)}")
    out = {}
    for name, v in state.items():
        if name in mask:
            m = mask[name]
            if m.shape != v.shape:
                raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, weight has {tuple(v.shape)}")
            out[name] = v.detach().masked_fill(~m.to(device=v.device, dtype=torch.bool), 0)
        else:
            out[name] = v.detach().clone()
    return out


def is_submask(new: Mapping[str, Tensor], old: Mapping[str, Tensor]) -> bool:
    """True when ``new`` keeps nothing that ``old`` pruned (same layers, same shapes)."""
    return set(new) == set(old) and all(
        new[k].shape == old[k].shape and not bool((new[k] & ~old[k].to(new[k].device)).any()) for k in old)


__all__ = ["Mask", "apply_mask", "density", "full_mask", "is_submask", "layer_densities", "mask_counts"]
