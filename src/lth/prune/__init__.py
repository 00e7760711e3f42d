"""Pruning: masks, the strategy registry, one-shot pruning and the helpers of the lottery-ticket ablations."""

from __future__ import annotations

from lth.prune.ablations import DN_POOLS, MASK_MODES, permute_mask, random_mask_like, sample_dn, scaled_width_for_params
from lth.prune.masks import (
    Mask,
    apply_mask,
    density,
    effective_density,
    effective_mask,
    full_mask,
    is_submask,
    layer_densities,
    mask_counts,
)
from lth.prune.strategies import (
    CRITERIA,
    KINDS,
    RANDOM_MODES,
    STRATEGIES,
    STRATEGY_NAMES,
    STRUCTURED_NORMS,
    PruneHparams,
    Strategy,
    flag,
    kinds_of,
    layer_fraction_map,
    prune,
    prune_to_density,
)

__all__ = ["CRITERIA", "DN_POOLS", "KINDS", "MASK_MODES", "Mask", "PruneHparams", "RANDOM_MODES", "STRATEGIES",
           "STRATEGY_NAMES", "STRUCTURED_NORMS", "Strategy", "apply_mask", "density", "effective_density",
           "effective_mask", "flag", "full_mask", "is_submask", "kinds_of", "layer_densities", "layer_fraction_map",
           "mask_counts", "permute_mask", "prune", "prune_to_density", "random_mask_like", "sample_dn",
           "scaled_width_for_params"]
