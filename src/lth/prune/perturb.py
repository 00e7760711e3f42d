"""Perturbations of a network's state early in training (Frankle, Schwab & Morcos, "The early phase of neural
network training", ICLR 2020, Section 4: "Perturbing neural networks early in training").

Every function takes single-network state dicts (``{name: tensor}``, as ``PopModel.member_state`` returns and
``states/*.pt`` stores) and returns a new one; the input is never modified. Only the tensors named in
``prunable`` change; every other tensor (biases, normalisation parameters and buffers) is a clone of the input's.
With a ``mask`` (``{name: bool tensor}``, True = kept), pruned positions stay exactly as they are (zero in a
masked state) and random draws and permutations involve only kept positions. Every random draw comes from the
CPU ``generator`` passed in, layer by layer in ``prunable`` order, so the result does not depend on the device.

``PERTURBATIONS`` maps a name to a function with one signature,
``fn(state, prunable, generator, *, mask=None, **options) -> state``; :func:`perturb` applies one by name and
turns bad names and options into one-line :class:`~lth.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lth.errors import UserError, ref
from lth.models.base import INITIALIZERS

State = dict[str, Tensor]
SHUFFLE_WITHIN = ("layer", "unit", "network")


# ---------------------------------------------------------------------------------------------- helpers
def _check(state: Mapping[str, Tensor], prunable: Sequence[str], mask: Mapping[str, Tensor] | None) -> None:
    missing = [k for k in prunable if k not in state]
    if missing:
        raise ValueError(f"state lacks prunable tensors {missing}")
    if mask is not None:
        for k in prunable:
            if k not in mask:
                raise ValueError(f"mask lacks prunable tensor {k}")
            if mask[k].shape != state[k].shape:
                raise ValueError(f"mask for {k} has shape {tuple(mask[k].shape)}, weight has "
                                 f"{tuple(state[k].shape)}")


def _kept(mask: Mapping[str, Tensor] | None, name: str, like: Tensor) -> Tensor:
    """The kept positions of layer ``name`` as a bool tensor on ``like``'s device (all True without a mask)."""
    if mask is None:
        return torch.ones(like.shape, dtype=torch.bool, device=like.device)
    return mask[name].to(device=like.device, dtype=torch.bool)


def _clone(state: Mapping[str, Tensor]) -> State:
    return {k: v.detach().clone() for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- signs
def swap_signs(state_mag: Mapping[str, Tensor], state_sign: Mapping[str, Tensor], prunable: Sequence[str],
               mask: Mapping[str, Tensor] | None = None) -> State:
    """Each prunable weight with the magnitude it has in ``state_mag`` and the sign it has in ``state_sign``:
    ``|w_mag| * sign(w_sign)`` (Frankle et al. 2020, Section 4, Fig. 4: magnitudes at iteration 0 or k combined
    with signs at iteration 0 or k). ``swap_signs(s, s, ...)`` is ``s``. A weight that is exactly zero in either
    state is zero in the result. Every other tensor is taken from ``state_mag``; pruned positions of ``mask``
    are zero."""
    _check(state_mag, prunable, mask)
    _check(state_sign, prunable, mask)
    out = _clone(state_mag)
    for k in prunable:
        mag, sgn = state_mag[k].detach(), state_sign[k].detach().to(state_mag[k].device)
        if mag.shape != sgn.shape:
            raise ValueError(f"{k}: magnitudes have shape {tuple(mag.shape)}, signs {tuple(sgn.shape)}")
        w = mag.abs() * torch.sign(sgn)
        out[k] = w if mask is None else w.masked_fill(~_kept(mask, k, w), 0)
    return out


# ---------------------------------------------------------------------------------------------- shuffles
def _permute_groups(w: Tensor, group: Tensor, eligible: Tensor, generator: torch.Generator) -> Tensor:
    """``w`` (flat) with the values at ``eligible`` positions permuted uniformly at random among the eligible
    positions of the same ``group`` id; other positions unchanged.

    Both orderings below list the positions group by group (ineligible ones last, untouched); within a group the
    first is by position and the second by a random key, so sending the second's values to the first's positions
    permutes every group uniformly at random."""
    n = w.numel()
    if n == 0:
        return w.clone()
    keys = torch.rand(n, generator=generator, dtype=torch.float64).to(w.device)
    gid = torch.where(eligible, group, torch.full_like(group, int(group.max()) + 1))
    canonical = torch.sort(gid, stable=True).indices
    shuffled = torch.sort(gid.double() + keys).indices  # keys < 1: the random key only orders within a group
    out = w.clone()
    out[canonical] = w[shuffled]
    return torch.where(eligible, out, w)


def shuffle(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator,
            within: str = "layer", same_sign: bool = False, mask: Mapping[str, Tensor] | None = None) -> State:
    """Each prunable tensor's weights randomly permuted (Frankle et al. 2020, Section 4, Figs. 5 and 6: the
    weights at iteration k "permuted within various structural elements").

    ``within="layer"`` permutes over the whole tensor; ``within="unit"`` permutes within each output neuron of a
    linear layer (a row ``w[o, :]``) or each filter of a convolution (``w[o, :, :, :]``), i.e. along every
    dimension but the first; ``within="network"`` permutes over all prunable tensors pooled (a weight may move
    to another layer). ``same_sign=True`` permutes positive weights only among positive ones and negative
    only among negative ones (zeros stay where they are), so every position keeps its sign (Fig. 6). With a
    ``mask``, only kept positions take part: pruned positions keep their value and no value moves into them."""
    if within not in SHUFFLE_WITHIN:
        raise ValueError(f"unknown shuffle scope {within!r}; allowed: {', '.join(SHUFFLE_WITHIN)}")
    _check(state, prunable, mask)
    out = _clone(state)
    if within == "network":
        if not prunable:
            return out
        device = state[prunable[0]].device
        flat = torch.cat([state[k].detach().to(device).reshape(-1) for k in prunable])
        eligible = torch.cat([_kept(mask, k, state[k]).to(device).reshape(-1) for k in prunable])
        group = torch.zeros(flat.numel(), dtype=torch.long, device=device)
        if same_sign:
            group = torch.sign(flat).long() + 1
        moved = _permute_groups(flat, group, eligible, generator)
        for k, part in zip(prunable, moved.split([state[k].numel() for k in prunable]), strict=True):
            out[k] = part.view(state[k].shape).to(device=state[k].device, dtype=state[k].dtype)
        return out
    for k in prunable:
        w = state[k].detach()
        flat = w.reshape(-1)
        eligible = _kept(mask, k, w).reshape(-1)
        if within == "unit":
            group = torch.arange(w.shape[0], device=w.device).repeat_interleave(w[0].numel() if w.dim() else 1)
        else:
            group = torch.zeros(flat.numel(), dtype=torch.long, device=w.device)
        if same_sign:  # three classes per group: negative, zero, positive
            group = group * 3 + (torch.sign(flat).long() + 1)
        out[k] = _permute_groups(flat, group, eligible, generator).view(w.shape)
    return out


# ---------------------------------------------------------------------------------------------- noise
def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` as torch.nn.init counts them: ``[out, in, *kernel]`` gives
    ``in * prod(kernel)`` and ``out * prod(kernel)``."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def init_std(shape: Sequence[int], init: str) -> float:
    """The standard deviation of the distribution ``lth.models.base.init_weight(w, init, ...)`` draws a weight
    of ``shape`` from (torch.nn.init's defaults: a = 0 for Kaiming, gain 1 for Xavier):

    - ``kaiming_normal``: sqrt(2 / fan_in);
    - ``kaiming_uniform``: U(-b, b) with b = sqrt(3) * sqrt(2 / fan_in), std b / sqrt(3) = sqrt(2 / fan_in);
    - ``xavier_normal``: sqrt(2 / (fan_in + fan_out));
    - ``xavier_uniform``: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), std b / sqrt(3) = sqrt(2 / (fan_in +
      fan_out)).

    This is the sigma of Frankle et al. 2020, Section 4, Fig. 7 ("the standard deviation of the initialization
    distribution for each layer"). It does not know of re-scalings after the draw (Fixup); pass explicit sigmas
    to :func:`add_noise` for those."""
    fan_in, fan_out = _fans(tuple(int(s) for s in shape))
    if init == "kaiming_normal":
        return torch.nn.init.calculate_gain("leaky_relu", 0) / math.sqrt(fan_in)
    if init == "kaiming_uniform":
        bound = math.sqrt(3.0) * torch.nn.init.calculate_gain("leaky_relu", 0) / math.sqrt(fan_in)
        return bound / math.sqrt(3.0)
    if init == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "xavier_uniform":
        return math.sqrt(6.0 / (fan_in + fan_out)) / math.sqrt(3.0)
    raise ValueError(f"unknown initialiser {init!r}; allowed: {', '.join(INITIALIZERS)}")


def add_noise(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, scale: float,
              sigmas: Mapping[str, float] | str, mask: Mapping[str, Tensor] | None = None) -> State:
    """Each prunable weight plus Gaussian noise of standard deviation ``scale * sigma_l``, sigma_l the
    standard deviation of layer l's initialisation distribution (Frankle et al. 2020, Section 4, Fig. 7, "n
    sigma" noise). ``sigmas`` is ``{name: sigma}`` or an initialiser name, in which case sigma_l is
    :func:`init_std` of the layer's shape. With a ``mask``, pruned positions get no noise."""
    _check(state, prunable, mask)
    if not scale >= 0:
        raise ValueError(f"noise scale must be >= 0, got {scale!r}")
    out = _clone(state)
    for k in prunable:
        w = state[k].detach()
        sigma = init_std(w.shape, sigmas) if isinstance(sigmas, str) else float(sigmas[k])
        noise = torch.randn(w.shape, generator=generator, dtype=torch.float64).to(device=w.device, dtype=w.dtype)
        noise = noise * (scale * sigma)
        out[k] = w + (noise if mask is None else noise.masked_fill(~_kept(mask, k, w), 0))
    return out


# ---------------------------------------------------------------------------------------------- measures
def effective_std(before: Mapping[str, Tensor], after: Mapping[str, Tensor], prunable: Sequence[str],
                  mask: Mapping[str, Tensor] | None = None) -> float:
    """The effective standard deviation of a perturbation (Frankle et al. 2020, Section 4, Fig. 8): the standard
    deviation of ``after - before`` pooled over every weight of every prunable tensor (kept positions only when a
    ``mask`` is given; biases and normalisation parameters are not part of it), one number for the network.
    It is taken about the differences' own mean (the paper reports that mean as about 0) with Bessel's
    correction, in float64."""
    _check(before, prunable, mask)
    _check(after, prunable, mask)
    diffs = []
    for k in prunable:
        d = (after[k].detach().double() - before[k].detach().double().to(after[k].device)).reshape(-1)
        diffs.append(d if mask is None else d[_kept(mask, k, after[k]).reshape(-1)])
    d = torch.cat(diffs)
    if d.numel() < 2:
        raise ValueError("effective_std needs at least 2 weights")
    return float(d.std())


# ---------------------------------------------------------------------------------------------- heads
def head_names(model: Any) -> list[str]:
    """The state names of ``model``'s output layer: its weight (``model.output_layer``) and bias, if any."""
    weight = model.output_layer
    bias = weight.removesuffix("weight") + "bias"
    return [weight, *([bias] if bias in model.state_dict() else [])]


def replace_head(state: Mapping[str, Tensor], fresh_state: Mapping[str, Tensor],
                 output_layer_names: Sequence[str]) -> State:
    """``state`` (e.g. after pretraining on the 4-way rotation task) with the tensors ``output_layer_names``
    (see :func:`head_names`) taken from ``fresh_state`` (a fresh initialisation of the target network, e.g.
    10-way): Frankle et al. 2020, Section 5, pretraining on another task and then training on CIFAR-10 with a new
    output layer. The head's shapes may differ; every other tensor must have the same name and shape in both."""
    names = set(output_layer_names)
    missing = sorted(names - set(fresh_state))
    if missing:
        raise ValueError(f"fresh state lacks head tensors {missing}")
    if set(state) - names != set(fresh_state) - names:
        raise ValueError(f"the states differ outside the head: {sorted((set(state) ^ set(fresh_state)) - names)}")
    for k in set(state) - names:
        if state[k].shape != fresh_state[k].shape:
            raise ValueError(f"{k} has shape {tuple(state[k].shape)} in the pretrained state and "
                             f"{tuple(fresh_state[k].shape)} in the fresh one; only the head may differ")
    return {k: (fresh_state[k] if k in names else state[k]).detach().clone() for k in fresh_state}


# ---------------------------------------------------------------------------------------------- registry
Perturbation = Callable[..., State]


def _signs_from(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, *,
                mask: Mapping[str, Tensor] | None = None, source: Mapping[str, Tensor]) -> State:
    """Magnitudes of ``state``, signs of ``source`` (e.g. start at step k with the signs of step 0)."""
    return swap_signs(state, source, prunable, mask)


def _magnitudes_from(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, *,
                     mask: Mapping[str, Tensor] | None = None, source: Mapping[str, Tensor]) -> State:
    """Magnitudes of ``source``, signs of ``state``; every other tensor from ``state``."""
    out = swap_signs(source, state, prunable, mask)
    return {k: (out[k] if k in prunable else v.detach().clone()) for k, v in state.items()}


def _shuffle(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, *,
             mask: Mapping[str, Tensor] | None = None, within: str = "layer", same_sign: bool = False) -> State:
    """:func:`shuffle`."""
    return shuffle(state, prunable, generator, within=within, same_sign=same_sign, mask=mask)


def _noise(state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, *,
           mask: Mapping[str, Tensor] | None = None, scale: float, sigmas: Mapping[str, float] | str) -> State:
    """:func:`add_noise`."""
    return add_noise(state, prunable, generator, scale, sigmas, mask=mask)


# name -> fn(state, prunable, generator, *, mask=None, **options) -> new state
PERTURBATIONS: dict[str, Perturbation] = {
    "signs_from": _signs_from,  # options: source (state whose signs to take)
    "magnitudes_from": _magnitudes_from,  # options: source (state whose magnitudes to take)
    "shuffle": _shuffle,  # options: within ("layer" | "unit" | "network"), same_sign (bool)
    "noise": _noise,  # options: scale (n of n sigma), sigmas (initialiser name or {name: sigma})
}


def perturb(name: str, state: Mapping[str, Tensor], prunable: Sequence[str], generator: torch.Generator, *,
            mask: Mapping[str, Tensor] | None = None, **options: Any) -> State:
    """Apply the perturbation ``name`` of :data:`PERTURBATIONS` with ``options``; an unknown name, a missing or
    unknown option, or a bad option value is a :class:`UserError`."""
    if name not in PERTURBATIONS:
        raise UserError.bad("perturbation", name, ", ".join(PERTURBATIONS))
    try:
        return PERTURBATIONS[name](state, prunable, generator, mask=mask, **options)
    except TypeError as e:  # a missing or unexpected option
        raise UserError(f"{ref('perturbation')} {name}: bad options {sorted(options)}: {e}", value=name) from None
    except ValueError as e:
        raise UserError(f"{ref('perturbation')} {name}: {e}", value=name) from None


__all__ = ["PERTURBATIONS", "SHUFFLE_WITHIN", "add_noise", "effective_std", "head_names", "init_std", "perturb",
           "replace_head", "shuffle", "swap_signs"]
