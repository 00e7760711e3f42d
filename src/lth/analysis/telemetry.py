"""Weight telemetry of a population during training, on the device, without host synchronisation.

Frankle, Schwab & Morcos ("The early phase of neural network training", ICLR 2020, Section 3, Fig. 3) follow
ResNet-20 through its first iterations by: average weight magnitude, the fraction of weights whose sign differs
from initialisation, the values of ten randomly selected weights, the L2 distance of the weights from their
initial and from their final values, and the cosine similarity to the initial and to the final weights.

:func:`weight_telemetry` computes these per member from population tensors (every tensor ``[N, ...]``) as device
tensors (no ``.item()``, no boolean indexing, no data-dependent shapes), so the engine can call it inside its step
loop (or a captured CUDA graph) and read the results back only at its events. :class:`Telemetry` holds what is
fixed for a run (initial and final weights, the sampled positions, the mask). The same function computes the
stored-state telemetry of :func:`lth.analysis.weights.telemetry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

TELEMETRY_KEYS = ("mean_abs_weight", "sign_changed_fraction", "l2_from_init", "cosine_to_init", "l2_from_final",
                  "cosine_to_final", "sampled_weights")


def _flat(tensors: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    """Population tensors ``[N, ...]`` -> ``[N, P]``, flattened per member and concatenated in order."""
    n = tensors[0].shape[0]
    return torch.cat([t.detach().reshape(n, -1).to(dtype) for t in tensors], 1)


def sample_positions(sizes: Sequence[int], count: int = 10, seed: int = 0) -> Tensor:
    """``count`` distinct positions, uniformly at random from ``torch.Generator().manual_seed(seed)``, in the
    concatenation of one member's flattened tensors of ``sizes`` (every member is read at the same positions)."""
    total = sum(int(s) for s in sizes)
    if not 0 <= count <= total:
        raise ValueError(f"cannot sample {count} of {total} weights")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


def position_names(names: Sequence[str], shapes: Sequence[Sequence[int]], positions: Tensor) -> list[str]:
    """Readable names of flat positions (``sample_positions``), e.g. ``layers.0.weight[3, 17]``."""
    out = []
    starts = torch.tensor([0, *[int(torch.Size(s).numel()) for s in shapes]]).cumsum(0).tolist()
    for p in positions.tolist():
        i = max(j for j in range(len(names)) if starts[j] <= p)
        idx = torch.unravel_index(torch.tensor(p - starts[i]), tuple(shapes[i]))
        out.append(f"{names[i]}[{', '.join(str(int(v)) for v in idx)}]")
    return out


def weight_telemetry(current: Sequence[Tensor], init: Sequence[Tensor], final: Sequence[Tensor] | None = None,
                     positions: Tensor | None = None, keep: Sequence[Tensor] | None = None,
                     dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Telemetry of each member over the given weight tensors taken together (Frankle et al. 2020, Fig. 3).

    ``current``, ``init``, ``final`` and ``keep`` are parallel lists of population tensors ``[N, ...]`` (one per
    layer); ``keep`` (bool, True = kept) restricts every quantity to the kept weights. Returns, as tensors on
    the weights' device in ``dtype``:

    - ``mean_abs_weight [N]``: mean |w| over the (kept) weights;
    - ``sign_changed_fraction [N]``: among the (kept) weights that are nonzero at init, the fraction whose sign
      now differs from init (a weight now exactly 0 counts as changed); 0 if none is nonzero at init;
    - ``l2_from_init [N]``, ``cosine_to_init [N]``: |w - w_init| and cos(w, w_init), the weights as one vector;
    - ``l2_from_final [N]``, ``cosine_to_final [N]``: the same to ``final`` (only when ``final`` is given);
    - ``sampled_weights [N, K]``: the weights at the flat ``positions`` (see :func:`sample_positions`; only when
      given).
    """
    w, w0 = _flat(current, dtype), _flat(init, dtype).to(current[0].device)
    if w.shape != w0.shape:
        raise ValueError(f"current weights have shape {tuple(w.shape)} per population, init {tuple(w0.shape)}")
    out: dict[str, Tensor] = {}
    if keep is None:
        k = None
        count = torch.full((w.shape[0],), float(w.shape[1]), dtype=dtype, device=w.device)
        wk, w0k = w, w0
    else:
        k = _flat(keep, dtype).to(w.device)
        count = k.sum(1)
        wk, w0k = w * k, w0 * k
    out["mean_abs_weight"] = wk.abs().sum(1) / count.clamp_min(1)
    alive = w0k != 0
    changed = (torch.sign(w) != torch.sign(w0)) & alive
    out["sign_changed_fraction"] = changed.sum(1).to(dtype) / alive.sum(1).clamp_min(1).to(dtype)
    out["l2_from_init"] = (wk - w0k).norm(dim=1)
    out["cosine_to_init"] = F.cosine_similarity(wk, w0k, dim=1)
    if final is not None:
        wf = _flat(final, dtype).to(w.device)
        wfk = wf if k is None else wf * k
        out["l2_from_final"] = (wk - wfk).norm(dim=1)
        out["cosine_to_final"] = F.cosine_similarity(wk, wfk, dim=1)
    if positions is not None:
        out["sampled_weights"] = w.index_select(1, positions.to(w.device))
    return out


class Telemetry:
    """Weight telemetry of a population model against fixed initial (and final) weights.

    Built once per run from the model (for its layer shapes), the population's initial tensors (``{name: [N,
    ...]}``, e.g. ``model.state_dict()`` cloned at step 0 or the rewind point), optionally the final ones and a
    population mask; ``layers`` defaults to ``model.prunable()``. ``count`` positions are drawn once from
    ``seed``. Calling it on the model returns :func:`weight_telemetry`'s dict of device tensors."""

    def __init__(self, model: nn.Module, init: Mapping[str, Tensor], final: Mapping[str, Tensor] | None = None,
                 layers: Sequence[str] | None = None, count: int = 10, seed: int = 0,
                 mask: Mapping[str, Tensor] | None = None, dtype: torch.dtype = torch.float32) -> None:
        params = dict(model.named_parameters())
        self.layers = list(model.prunable() if layers is None else layers)
        missing = [k for k in self.layers if k not in params or k not in init or (final is not None and k not in final)]
        if missing:
            raise ValueError(f"telemetry layers missing from the model, init or final state: {missing}")
        device = params[self.layers[0]].device
        self.dtype = dtype
        self.init = [init[k].detach().to(device).clone() for k in self.layers]
        self.final = None if final is None else [final[k].detach().to(device).clone() for k in self.layers]
        self.keep = None if mask is None else [
            (mask[k].to(device) if k in mask else torch.ones_like(params[k], dtype=torch.bool)) for k in self.layers]
        shapes = [tuple(params[k].shape[1:]) for k in self.layers]
        self.positions = sample_positions([torch.Size(s).numel() for s in shapes], count, seed).to(device)
        self.position_names = position_names(self.layers, shapes, self.positions.cpu())

    def __call__(self, model: nn.Module) -> dict[str, Tensor]:
        """The telemetry of ``model``'s current weights (device tensors; nothing read back)."""
        params = dict(model.named_parameters())
        return weight_telemetry([params[k] for k in self.layers], self.init, self.final, self.positions,
                                self.keep, self.dtype)


def sampled_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a telemetry frame that hold the sampled weights' values (``w[layers.0.weight[3, 17]]``), in
    their recorded order."""
    return [c for c in df.columns if str(c).startswith("w[")]


__all__ = ["TELEMETRY_KEYS", "Telemetry", "position_names", "sample_positions", "sampled_columns",
           "weight_telemetry"]
