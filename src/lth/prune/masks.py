"""Masks: one bool tensor per prunable weight, the weight's shape, True where the weight is kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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


def effective_mask(mask: Mapping[str, Tensor], order: Sequence[str] | None = None) -> Mask:
    """``mask`` less the kept weights that can no longer carry an input-dependent signal to the output.

    ``order`` lists the prunable weights of a *sequential* network from input to output (default: the mask's own
    order, which is the model's ``prunable()`` order): layer ``j + 1`` reads the units that layer ``j`` writes
    (fc rows ``[out, in]``, conv filters ``[out, in, k, k]``; an fc layer after a conv reads each channel as
    ``in / channels`` consecutive inputs, the flatten of ``[C, H, W]``). Repeated until nothing changes:

    * a unit (row or filter) with no kept incoming weight is *dead* (it outputs at most a constant: bias, norm
      shift), so its outgoing weights, the next layer's inputs from it, are removed;
    * a hidden unit with no kept outgoing weight reaches nothing, so its incoming weights are removed.

    Structured pruning (Li et al. style, ``prune_structured``) removes rows only, so the next layer's columns from
    a removed unit stay in ``mask`` and :func:`density` overstates what the network can use; this is the density
    that remains. Not defined for residual networks (a dead channel of a branch is still fed by the shortcut):
    pass a sequential network's layers only."""
    names = list(mask if order is None else order)
    out = {n: mask[n].clone().bool() for n in mask}

    def in_units(j: int) -> tuple[Tensor, int]:
        """Per input column of layer j: the index of the previous layer's unit it reads, and that unit count."""
        prev, cur = out[names[j - 1]], out[names[j]]
        units, cols = prev.shape[0], cur.shape[1]
        if cols % units:
            raise ValueError(f"{names[j]} reads {cols} inputs, not a multiple of {names[j - 1]}'s {units} units")
        return torch.arange(cols, device=cur.device) // (cols // units), units

    changed = True
    while changed:
        changed = False
        for j in range(1, len(names)):
            prev, cur = out[names[j - 1]], out[names[j]]
            col_unit, _ = in_units(j)
            alive_in = prev.reshape(prev.shape[0], -1).any(1).to(cur.device)  # units with a kept incoming weight
            cols = alive_in[col_unit].view(1, -1, *([1] * (cur.dim() - 2)))
            reads = cur.transpose(0, 1).reshape(cur.shape[1], -1).any(1)  # input columns still read
            used = torch.zeros(prev.shape[0], dtype=torch.bool, device=cur.device).index_put_(
                (col_unit[reads],), torch.tensor(True, device=cur.device))  # units with a kept outgoing weight
            new_cur = cur & cols
            new_prev = prev & used.to(prev.device).view(-1, *([1] * (prev.dim() - 1)))
            if not (torch.equal(new_cur, cur) and torch.equal(new_prev, prev)):
                out[names[j]], out[names[j - 1]] = new_cur, new_prev
                changed = True
    return out


def effective_density(mask: Mapping[str, Tensor], order: Sequence[str] | None = None) -> float:
    """:func:`density` of :func:`effective_mask`: the fraction of prunable weights that can still carry signal.
    Equal to ``density(mask)`` for unstructured masks without dead units; below it after structured pruning."""
    return density(effective_mask(mask, order))


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


__all__ = ["Mask", "apply_mask", "density", "effective_density", "effective_mask", "full_mask",
           "is_submask", "layer_densities", "mask_counts"]
