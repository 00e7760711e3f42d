"""Pruning strategies: one registry of plain functions from (trained weights, current mask) to a new mask.

Every strategy has the signature ``strategy(weights, mask, hp, kinds) -> Mask``: ``weights`` holds (at least)
the trained prunable tensors, ``mask`` is the current mask, ``kinds`` maps each prunable name to ``"conv"``,
``"fc"`` or ``"output"``. A strategy removes weights from the survivors only (the new mask is a subset of the
old one) and returns a new mask; it never changes its inputs.

Counts are ``round(f * remaining)`` with halves rounded up. Ties in a ranking are broken by position: the
survivors are ranked by a stable sort over their flat index order (layers in the mask's order for ``global``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lth.errors import UserError, cli_name, ref
from lth.prune.masks import Mask, full_mask
from lth.spec import help_field, hparam_fields, to_dict

STRATEGY_NAMES = ("global", "layerwise", "random", "structured")
CRITERIA = ("smallest", "largest")
STRUCTURED_NORMS = ("l1", "l2")
RANDOM_MODES = ("layerwise", "global")
KINDS = ("conv", "fc", "output")
FLAG_PREFIX = "pruning-"


def field_path(field_name: str) -> str:
    """The path of a :class:`PruneHparams` field in errors (``fraction`` -> ``pruning.fraction``: ``--pruning-fraction``
    on the command line, ``pruning["fraction"]`` in Python)."""
    return f"pruning.{field_name}"


def flag(field_name: str) -> str:
    """The CLI flag of a :class:`PruneHparams` field (``fraction`` -> ``--pruning-fraction``); the prefix keeps
    ``seed`` and ``norm`` apart from the model's and training's flags of the same name."""
    return cli_name(field_path(field_name))


def _ref(field_name: str) -> str:
    """A reference to a :class:`PruneHparams` field in an error's template (:func:`lth.errors.ref`)."""
    return ref(field_path(field_name))


@dataclass(frozen=True)
class PruneHparams:
    """How each pruning level chooses the weights it removes."""

    strategy: str = help_field("layerwise", "pruning strategy: global magnitude, per-layer magnitude, random, "
                               "or structured (whole neurons/filters)", choices=STRATEGY_NAMES)
    fraction: float = help_field(0.2, "global strategy (and random with random mode global): fraction of the "
                                 "remaining weights removed per level")
    conv_fraction: float = help_field(0.2, "layerwise/random/structured: fraction of each conv layer's remaining "
                                      "weights (structured: filters) removed per level")
    fc_fraction: float = help_field(0.2, "layerwise/random/structured: fraction of each fully connected layer's "
                                    "remaining weights (structured: neurons) removed per level")
    output_fraction: float | None = help_field(None, "layerwise/random: fraction of the output layer's remaining "
                                               "weights removed per level (default: half of the fc fraction)")
    layer_fractions: tuple[str, ...] = help_field((), "per-layer fraction overrides written name=fraction, e.g. "
                                                  "layers.0.weight=0.3 (layerwise, random, structured)")
    ignore: tuple[str, ...] = help_field((), "layers never pruned, by name (any strategy)")
    criterion: str = help_field("smallest", "magnitude strategies: remove the smallest or the largest weights",
                                choices=CRITERIA)
    norm: str = help_field("l1", "structured: norm that ranks neurons/filters", choices=STRUCTURED_NORMS)
    random_mode: str = help_field("layerwise", "random: keep layerwise's per-layer counts, or global's total "
                                  "count spread uniformly over all surviving weights", choices=RANDOM_MODES)
    seed: int = help_field(0, "random strategy: seed of the random mask")
    count_ignored: bool = help_field(False, "global (and random with random mode global): the fraction is of every "
                                     "surviving weight, the ignored layers' included, all removed from the pruned "
                                     "layers, so level L keeps 1-fraction to the L of the mask (open_lth's "
                                     "sparse_global; the densities of Frankle et al. 2020, Table 1)")

    # Fields added after stores were written: a node records them only when set, so older stores keep their ids.
    RECORD_IF_SET = ("count_ignored",)

    def __post_init__(self) -> None:
        # count_ignored changes nothing without a global count over ignored layers: left unset, so it does not give
        # the same pruning another identity (a global preset run with --pruning-strategy layerwise keeps its runs)
        if self.count_ignored and (not self.ignore or not (
                self.strategy == "global" or (self.strategy == "random" and self.random_mode == "global"))):
            object.__setattr__(self, "count_ignored", False)

    def record(self) -> dict[str, Any]:
        """Every field as JSON values (what IMP's nodes record and hash), less :attr:`RECORD_IF_SET` fields left at
        their defaults."""
        out = to_dict(self)
        for name in self.RECORD_IF_SET:
            if getattr(self, name) == type(self).__dataclass_fields__[name].default:
                out.pop(name)
        return out

    def validate(self) -> None:
        """Raise :class:`UserError` (one line naming the flag and the value) on a value outside what is allowed."""
        for name, f, _ in hparam_fields(type(self)):
            choices = f.metadata.get("choices")
            v = getattr(self, name)
            if choices and v not in choices:
                raise UserError(f"{_ref(name)} {v!r}: unknown value; allowed: {', '.join(choices)}", value=v,
                                allowed=", ".join(choices))
        for name in ("fraction", "conv_fraction", "fc_fraction", "output_fraction"):
            v = getattr(self, name)
            if v is None and name == "output_fraction":
                continue
            _check_fraction(_ref(name), v)
        self.overrides()
        for name in self.ignore:
            if not str(name).strip():
                raise UserError(f"{_ref('ignore')} {name!r}: expected a layer name", value=name,
                                allowed="a layer name")

    def overrides(self) -> dict[str, float]:
        """``layer_fractions`` parsed to ``{name: fraction}``; UserError on a malformed or repeated entry."""
        out: dict[str, float] = {}
        for item in self.layer_fractions:
            name, sep, value = str(item).partition("=")
            name = name.strip()
            if not sep or not name:
                raise UserError(f"{_ref('layer_fractions')} {item!r}: write name=fraction, e.g. "
                                "layers.0.weight=0.3", value=item, allowed="name=fraction")
            try:
                f = float(value)
            except ValueError:
                raise UserError(f"{_ref('layer_fractions')} {item!r}: the fraction {value.strip()!r} is not "
                                f"a number; write name=fraction, e.g. layers.0.weight=0.3", value=item,
                                allowed="name=fraction") from None
            _check_fraction(f"{_ref('layer_fractions')} {name}=", f, sep="")
            if name in out:
                raise UserError(f"{_ref('layer_fractions')} {item!r}: layer {name!r} is given twice",
                                value=item)
            out[name] = f
        return out

    def output_rate(self) -> float:
        """The output layer's fraction: ``output_fraction``, or half of ``fc_fraction`` when that is None."""
        return self.fc_fraction / 2 if self.output_fraction is None else self.output_fraction

    def kind_fraction(self, kind: str) -> float:
        """The per-level fraction of a layer of ``kind`` (``conv``, ``fc`` or ``output``)."""
        if kind == "conv":
            return self.conv_fraction
        if kind == "fc":
            return self.fc_fraction
        if kind == "output":
            return self.output_rate()
        raise ValueError(f"unknown layer kind {kind!r}; allowed: {', '.join(KINDS)}")


def _check_fraction(label: str, v: float, sep: str = " ") -> None:
    """UserError for a fraction outside (0, 1); ``label``: the field as an error's template (:func:`ref`)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
        raise UserError(f"{label}{sep}{v!r}: expected a number in (0, 1)", value=v, allowed="a number in (0, 1)")


# ---------------------------------------------------------------------------------------------- layer names
def _resolve(name: str, names: Iterable[str], what: str) -> str:
    """A user-written layer name -> the prunable tensor it means (``layers.0`` or ``layers.0.weight``)."""
    names = list(names)
    for cand in (name, f"{name}.weight"):
        if cand in names:
            return cand
    raise UserError(f"{_ref(what)}: unknown layer {name!r}; prunable layers: {', '.join(names)}", value=name,
                    allowed=", ".join(names))


def ignored(hp: PruneHparams, names: Iterable[str]) -> set[str]:
    """The prunable names that ``hp.ignore`` names (UserError for a name that is not a prunable layer)."""
    names = list(names)
    return {_resolve(n.strip(), names, "ignore") for n in hp.ignore}


def layer_fraction_map(hp: PruneHparams, kinds: Mapping[str, str], names: Iterable[str] | None = None,
                       structured: bool = False) -> dict[str, float]:
    """Per-layer fraction of the per-layer strategies: 0 for ignored layers, else the override, else the fraction of
    the layer's kind. ``structured``: the output layer is never pruned (0)."""
    names = list(kinds if names is None else names)
    skip = ignored(hp, names)
    over = {_resolve(k, names, "layer_fractions"): v for k, v in hp.overrides().items()}
    out = {}
    for n in names:
        if n in skip or (structured and kinds[n] == "output"):
            out[n] = 0.0
        else:
            out[n] = over.get(n, hp.kind_fraction(kinds[n]))
    return out


def _count(f: float, n: int) -> int:
    """``round(f * n)`` with halves rounded up, clamped to [0, n]."""
    return min(n, max(0, math.floor(f * n + 0.5)))


def _check_inputs(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], kinds: Mapping[str, str]) -> None:
    for name, m in mask.items():
        if name not in weights:
            raise ValueError(f"no weights for masked tensor {name}")
        if name not in kinds:
            raise ValueError(f"no kind for masked tensor {name}")
        if kinds[name] not in KINDS:
            raise ValueError(f"unknown layer kind {kinds[name]!r} for {name}; allowed: {', '.join(KINDS)}")
        if tuple(weights[name].shape) != tuple(m.shape):
            raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, weight has {tuple(weights[name].shape)}")
        if m.dtype != torch.bool:
            raise ValueError(f"mask for {name} is {m.dtype}, expected torch.bool")


# ---------------------------------------------------------------------------------------------- primitives
def _drop_ranked(score: Tensor, keep: Tensor, k: int, largest: bool) -> Tensor:
    """Flat ``keep`` with its ``k`` surviving entries of lowest (``largest``: highest) score set False; ties go
    to the lower flat index: the first ``k`` of a stable sort of the survivors' scores, found without sorting (the
    k-th value by selection, every survivor beyond it, then the tied ones in index order; about 3x faster on 11M
    weights: bench/prune_rank.py). Scores with NaN take the stable sort itself."""
    new = keep.clone()
    if k <= 0:
        return new
    idx = keep.nonzero().squeeze(1)
    s = score[idx]
    if k >= s.numel() or bool(torch.isnan(s).any()):
        order = torch.argsort(s, stable=True, descending=largest)
        new[idx[order[:k]]] = False
        return new
    key = -s if largest else s
    v = torch.kthvalue(key, k).values
    below = key < v
    ties = (key == v).nonzero().squeeze(1)[: k - int(below.sum())]
    new[idx[torch.cat([below.nonzero().squeeze(1), ties])]] = False
    return new


def _drop_random(keep: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Flat ``keep`` with ``k`` of its surviving entries, drawn uniformly without replacement, set False."""
    new = keep.clone()
    if k <= 0:
        return new
    idx = keep.nonzero().squeeze(1)
    perm = torch.randperm(idx.numel(), generator=generator)  # on the CPU: the same mask on every device
    new[idx[perm[:k].to(idx.device)]] = False
    return new


def _magnitude(w: Tensor) -> Tensor:
    return w.detach().reshape(-1).float().abs()


def _copy(mask: Mapping[str, Tensor]) -> Mask:
    return {n: m.clone() for n, m in mask.items()}


def magnitude_per_layer(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], removals: Mapping[str, int],
                        largest: bool = False) -> Mask:
    """Remove ``removals[name]`` surviving weights of smallest (``largest``: largest) magnitude in each layer."""
    out = _copy(mask)
    for n, k in removals.items():
        m = mask[n]
        out[n] = _drop_ranked(_magnitude(weights[n]).to(m.device), m.reshape(-1), k, largest).view(m.shape)
    return out


def magnitude_global(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], names: list[str], k: int,
                     largest: bool = False) -> Mask:
    """Remove the ``k`` surviving weights of smallest (``largest``: largest) magnitude over the layers ``names``
    ranked together."""
    out = _copy(mask)
    if not names:
        return out
    dev = mask[names[0]].device
    score = torch.cat([_magnitude(weights[n]).to(dev) for n in names])
    keep = torch.cat([mask[n].reshape(-1).to(dev) for n in names])
    new = _drop_ranked(score, keep, k, largest)
    for n, part in zip(names, new.split([mask[n].numel() for n in names]), strict=True):
        out[n] = part.view(mask[n].shape).to(mask[n].device)
    return out


def random_per_layer(mask: Mapping[str, Tensor], removals: Mapping[str, int], generator: torch.Generator) -> Mask:
    """Remove ``removals[name]`` surviving weights of each layer uniformly at random (layers in the mask's order)."""
    out = _copy(mask)
    for n in mask:
        if n in removals:
            out[n] = _drop_random(mask[n].reshape(-1), removals[n], generator).view(mask[n].shape)
    return out


def random_global(mask: Mapping[str, Tensor], names: list[str], k: int, generator: torch.Generator) -> Mask:
    """Remove ``k`` surviving weights drawn uniformly at random from all survivors of the layers ``names``."""
    out = _copy(mask)
    if not names:
        return out
    dev = mask[names[0]].device
    keep = torch.cat([mask[n].reshape(-1).to(dev) for n in names])
    new = _drop_random(keep, k, generator)
    for n, part in zip(names, new.split([mask[n].numel() for n in names]), strict=True):
        out[n] = part.view(mask[n].shape).to(mask[n].device)
    return out


def row_scores(w: Tensor, keep: Tensor, norm: str) -> Tensor:
    """Per output unit (row of an fc weight, filter of a conv weight): the L1 or L2 norm of its surviving weights."""
    wm = w.detach().float().to(keep.device).masked_fill(~keep, 0).reshape(w.shape[0], -1)
    if norm == "l1":
        return wm.abs().sum(1)
    if norm == "l2":
        return wm.pow(2).sum(1).sqrt()
    raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(STRUCTURED_NORMS)}")


def alive_rows(keep: Tensor) -> Tensor:
    """Per output unit: True while it has at least one surviving weight."""
    return keep.reshape(keep.shape[0], -1).any(1)


def structured_per_layer(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], row_removals: Mapping[str, int],
                         norm: str = "l1", largest: bool = False) -> Mask:
    """Remove ``row_removals[name]`` whole surviving rows/filters of each layer, those of smallest (``largest``:
    largest) norm of surviving weights. A removed row is all False."""
    out = _copy(mask)
    for n, k in row_removals.items():
        m = mask[n]
        rows = _drop_ranked(row_scores(weights[n], m, norm), alive_rows(m), k, largest)
        out[n] = m & rows.view(-1, *([1] * (m.dim() - 1)))
    return out


# ---------------------------------------------------------------------------------------------- strategies
def _included(mask: Mapping[str, Tensor], hp: PruneHparams) -> list[str]:
    skip = ignored(hp, mask)
    return [n for n in mask if n not in skip]


def _global_count(mask: Mapping[str, Tensor], names: list[str], hp: PruneHparams) -> int:
    """How many survivors a global level removes from the layers ``names``: ``round(fraction * remaining)``, the
    remaining weights counted over ``names`` or, with ``count_ignored``, over the whole mask (open_lth's
    ``sparse_global``, which Frankle et al. 2020 use: Table 1's densities are exactly 0.8^L with the classifier
    ignored), at most the survivors of ``names``."""
    pruned = sum(int(mask[n].sum()) for n in names)
    remaining = sum(int(m.sum()) for m in mask.values()) if hp.count_ignored else pruned
    return min(pruned, _count(hp.fraction, remaining))


def prune_global(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], hp: PruneHparams,
                 kinds: Mapping[str, str]) -> Mask:
    """Rank the survivors of every non-ignored layer together by |w| and remove ``round(fraction * remaining)``
    (:func:`_global_count` says which weights count as remaining)."""
    names = _included(mask, hp)
    return magnitude_global(weights, mask, names, _global_count(mask, names, hp), hp.criterion == "largest")


def _layer_removals(mask: Mapping[str, Tensor], hp: PruneHparams, kinds: Mapping[str, str]) -> dict[str, int]:
    fr = layer_fraction_map(hp, kinds, list(mask))
    return {n: _count(fr[n], int(mask[n].sum())) for n in mask}


def prune_layerwise(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], hp: PruneHparams,
                    kinds: Mapping[str, str]) -> Mask:
    """In each layer, remove ``round(f * remaining in the layer)`` survivors by |w|; f is the layer's override or
    its kind's fraction (the output layer's defaults to half the fc fraction)."""
    return magnitude_per_layer(weights, mask, _layer_removals(mask, hp, kinds), hp.criterion == "largest")


def prune_random(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], hp: PruneHparams,
                 kinds: Mapping[str, str]) -> Mask:
    """Remove survivors uniformly at random (generator seeded by ``hp.seed``): per layer as many as ``layerwise``
    would, or (``random_mode`` global) as many in total as ``global`` would, spread over all survivors."""
    g = torch.Generator().manual_seed(hp.seed)
    if hp.random_mode == "global":
        names = _included(mask, hp)
        return random_global(mask, names, _global_count(mask, names, hp), g)
    return random_per_layer(mask, _layer_removals(mask, hp, kinds), g)


def prune_structured(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], hp: PruneHparams,
                     kinds: Mapping[str, str]) -> Mask:
    """In each layer but the output layer, remove ``round(f * remaining rows)`` whole neurons (fc rows) or filters
    (conv ``[out, ...]`` slices), ranked by the ``hp.norm`` of their surviving weights; f as in ``layerwise``."""
    fr = layer_fraction_map(hp, kinds, list(mask), structured=True)
    removals = {n: _count(fr[n], int(alive_rows(mask[n]).sum())) for n in mask}
    return structured_per_layer(weights, mask, removals, hp.norm, hp.criterion == "largest")


Strategy = Callable[[Mapping[str, Tensor], Mapping[str, Tensor], PruneHparams, Mapping[str, str]], Mask]

# The one registry of strategies; PruneHparams.strategy names an entry.
STRATEGIES: dict[str, Strategy] = {
    "global": prune_global,
    "layerwise": prune_layerwise,
    "random": prune_random,
    "structured": prune_structured,
}
assert tuple(STRATEGIES) == STRATEGY_NAMES


def prune(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor], hp: PruneHparams,
          kinds: Mapping[str, str]) -> Mask:
    """One pruning level: validate ``hp`` and the layer names it mentions, then run ``hp.strategy``."""
    hp.validate()
    _check_inputs(weights, mask, kinds)
    layer_fraction_map(hp, kinds, list(mask))  # UserError for an unknown layer in ignore / layer_fractions
    return STRATEGIES[hp.strategy](weights, mask, hp, kinds)


def prune_to_density(weights: Mapping[str, Tensor], hp: PruneHparams, kinds: Mapping[str, str],
                     target_density: float, mask: Mapping[str, Tensor] | None = None) -> Mask:
    """One-shot pruning from ``mask`` (default: dense over ``kinds``' names) straight to ``target_density`` overall.

    The strategy runs once with derived fractions:

    * ``fraction`` (global, random global) removes exactly enough survivors to keep ``round(target * total)``;
    * per-layer fractions (layerwise, random layerwise, structured) follow the iterative schedule: each layer keeps
      ``(1 - f_layer) ** L`` of its survivors, with ``L`` the real number of levels (found by bisection) at which
      the overall density reaches the target. Each layer's count is rounded, so the overall density is within
      half a weight per layer of the target (structured: within rounding to whole rows, the rows counted as if
      equally dense; the output layer is never pruned).
    """
    hp.validate()
    mask = full_mask(weights, list(kinds)) if mask is None else mask
    _check_inputs(weights, mask, kinds)
    if isinstance(target_density, bool) or not isinstance(target_density, int | float) or not 0 < target_density <= 1:
        raise UserError(f"target density {target_density!r}: expected a number in (0, 1]")
    names = list(mask)
    total = sum(mask[n].numel() for n in names)
    kept = {n: int(mask[n].sum()) for n in names}
    current = sum(kept.values())
    goal = _count(target_density, total)
    if goal > current:
        raise UserError(f"target density {target_density!r} is above the mask's density {current / total:.6g}; "
                        "pruning only removes weights")
    structured = hp.strategy == "structured"
    base = layer_fraction_map(hp, kinds, names, structured=structured)
    floor = sum(kept[n] for n in names if base[n] == 0)
    if goal < floor:
        raise UserError(f"target density {target_density!r} is below {floor / total:.6g}, the density of the layers "
                        "that are never pruned (ignored layers" + (", the output layer)" if structured else ")"))

    # global count: remove exactly current - goal from the survivors of the non-ignored layers
    included = _included(mask, hp)
    available = sum(kept[n] for n in included)
    frac = min(1.0, (current - goal) / available) if available else 0.0

    # per-layer schedule: the real level L at which sum(kept * (1 - f)^L) == goal
    def level_density(level: float) -> float:
        return sum(kept[n] * (1 - base[n]) ** level for n in names)

    lo, hi = 0.0, 1.0
    while level_density(hi) > goal and hi < 1e6:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if level_density(mid) > goal:
            lo = mid
        else:
            hi = mid
    level = (lo + hi) / 2
    per_layer = {n: 1 - (1 - base[n]) ** level for n in names if base[n] > 0}
    one_shot = dataclasses.replace(  # frac is of the pruned layers' survivors: count_ignored would overshoot
        hp, fraction=frac, count_ignored=False, layer_fractions=tuple(f"{n}={f!r}" for n, f in per_layer.items()))
    return STRATEGIES[hp.strategy](weights, mask, one_shot, kinds)


_WARNED_OUTPUT: set[str] = set()  # model classes already warned about (once per process)


def kinds_of(model: torch.nn.Module) -> dict[str, str]:
    """``{prunable name: kind}`` of a :class:`~lth.models.PopModel`: ``output`` for ``model.output_layer``,
    ``conv`` for convolution weights (5-d with the member dimension), ``fc`` otherwise. A model that knows its
    layers' types (one converted from a plain module, with Conv1d layers) says so by ``prunable_kinds()``.

    A model that does not say which layer is its output layer (``output_layer == ""``) gets its last prunable
    layer taken as the output layer (pruned at the output rate: Frankle & Carbin, ICLR 2019, prune LeNet's output
    layer at half the rate of its other fc layers), with one warning on stderr per model class saying how to set
    it.
    """
    if hasattr(model, "prunable_kinds"):
        return dict(model.prunable_kinds())
    names = list(model.prunable())
    output = getattr(model, "output_layer", "")
    if not output and names:
        output = names[-1]
        cls = type(model).__name__
        if cls not in _WARNED_OUTPUT:
            _WARNED_OUTPUT.add(cls)
            import sys

            print(f"lth: warning: model {cls} does not name its output layer; taking the last prunable layer "
                  f"{output!r} as the output layer (set self.output_layer = '<weight name>' in its __init__)",
                  file=sys.stderr)
    out = {}
    for name in names:
        if name == output:
            out[name] = "output"
        else:
            out[name] = "conv" if model.get_parameter(name).dim() == 5 else "fc"
    return out


__all__ = ["CRITERIA", "KINDS", "PruneHparams", "RANDOM_MODES", "STRATEGIES", "STRATEGY_NAMES", "STRUCTURED_NORMS",
           "Strategy", "alive_rows", "flag", "ignored", "kinds_of", "layer_fraction_map", "magnitude_global",
           "magnitude_per_layer", "prune", "prune_global", "prune_layerwise", "prune_random", "prune_structured",
           "prune_to_density", "random_global", "random_per_layer", "row_scores", "structured_per_layer"]
