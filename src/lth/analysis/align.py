"""Weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin", ICLR 2023, Sec. 3.2 and Algorithm 1).

Permuting the hidden units of a network (the rows of one layer's weight and bias, the columns of the next
layer's weight) does not change the function it computes. Weight matching permutes network B's hidden units to
bring its weights as close as possible to network A's: for each hidden layer l it solves the linear assignment
problem ``max_P <sum of the similarity matrices of every tensor P_l acts on, P>`` with the other permutations
held fixed (``scipy.optimize.linear_sum_assignment``), visiting the layers in a random order and repeating until
a whole pass changes nothing. Aligned networks are then compared with :mod:`lth.analysis.stability`.

Supported: the plain chains of lth's model zoo, i.e. ``fc_*`` / ``lenet_300_100``, ``conv2``/``conv4``/``conv6``,
``lenet5`` (convolution channels, and the first linear layer's input blocks after the per-member flatten, whose
columns are ordered channel-major: column ``c * H * W + h * W + w``) and ``vgg_*`` (with or without BatchNorm:
the BN weight, bias and running statistics follow their channel). ResNets are refused: their residual
connections tie the permutations of every block in a stage together, which this chain spec does not model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from lth.errors import UserError
from lth.models import resolve
from lth.spec import ModelHparams

State = dict[str, Tensor]
SUPPORTED = "fc_* (lenet_300_100), conv2, conv4, conv6, lenet5, vgg_*"


@dataclass(frozen=True)
class PermSpec:
    """Which permutation acts on which axis of which tensor.

    ``axes[key]`` names, for each axis of the tensor ``key`` (in its *view*, see ``blocks``), the permutation
    acting on it, or None. ``blocks[key] = s`` views a linear weight ``[out, C * s]`` as ``[out, C, s]`` so that
    a channel permutation of the layer before a flatten moves whole blocks of ``s`` columns."""

    axes: dict[str, tuple[str | None, ...]]
    blocks: dict[str, int] = field(default_factory=dict)

    @property
    def perms(self) -> dict[str, list[tuple[str, int]]]:
        """Permutation name -> the (key, axis) pairs it acts on."""
        out: dict[str, list[tuple[str, int]]] = {}
        for key, axes in self.axes.items():
            for ax, p in enumerate(axes):
                if p is not None:
                    out.setdefault(p, []).append((key, ax))
        return out

    def view(self, key: str, t: Tensor) -> Tensor:
        """``t`` in the shape that ``axes[key]`` describes."""
        s = self.blocks.get(key)
        return t.reshape(t.shape[0], -1, s) if s else t


def _chain(layers: list[tuple[str, list[str]]], state: State, flatten_after: int | None) -> PermSpec:
    """A chain of layers ``(prefix, extra per-channel prefixes such as a BatchNorm)``: layer i's output units
    are permutation ``prefix_i`` (none for the last layer); layer i+1's input axis follows it."""
    axes: dict[str, tuple[str | None, ...]] = {}
    blocks: dict[str, int] = {}
    prev: str | None = None
    for i, (prefix, extras) in enumerate(layers):
        w = state[f"{prefix}.weight"]
        out = None if i == len(layers) - 1 else prefix
        if flatten_after is not None and i == flatten_after + 1:
            channels = state[f"{layers[flatten_after][0]}.weight"].shape[0]
            blocks[f"{prefix}.weight"] = w.shape[1] // channels
            axes[f"{prefix}.weight"] = (out, prev, None)
        else:
            axes[f"{prefix}.weight"] = (out, prev, *([None] * (w.dim() - 2)))
        if f"{prefix}.bias" in state:
            axes[f"{prefix}.bias"] = (out,)
        for extra in extras:
            for name in ("weight", "bias", "running_mean", "running_var"):
                if f"{extra}.{name}" in state:
                    axes[f"{extra}.{name}"] = (out,)
        prev = out
    return PermSpec(axes, blocks)


def _count(state: State, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def permutation_spec(model: str | ModelHparams, state: State) -> PermSpec:
    """The hidden-unit permutations of ``model`` (a name or ModelHparams), with shapes read from ``state`` (a
    single-network state dict). :class:`UserError` for models that weight matching does not support."""
    name = model.model if isinstance(model, ModelHparams) else model
    family, _ = resolve(name)
    if family == "fc":
        n = _count(state, r"layers\.(\d+)\.weight")
        return _chain([(f"layers.{i}", []) for i in range(n)], state, None)
    if family in ("conv2", "conv4", "conv6"):
        nc, nf = _count(state, r"convs\.(\d+)\.weight"), _count(state, r"fc\.(\d+)\.weight")
        return _chain([*((f"convs.{i}", []) for i in range(nc)), *((f"fc.{i}", []) for i in range(nf))], state, nc - 1)
    if family == "lenet5":
        return _chain([("conv1", []), ("conv2", []), *((f"fc.{i}", []) for i in range(3))], state, 1)
    if family == "vgg":  # global average pool before the classifier: one column per channel
        nc = _count(state, r"convs\.(\d+)\.weight")
        return _chain([*((f"convs.{i}", [f"norms.{i}"]) for i in range(nc)), ("fc", [])], state, None)
    if family == "resnet":
        raise UserError(f"weight matching: model {name!r} has residual connections, which this implementation "
                        f"does not align; allowed: {SUPPORTED}")
    raise UserError(f"weight matching: model {name!r} (family {family}) is not supported; allowed: {SUPPORTED}")


def _permuted(spec: PermSpec, key: str, t: Tensor, perms: dict[str, Tensor], skip: int | None = None) -> Tensor:
    """``t`` (in its view) with every permutation applied except the one on axis ``skip``."""
    v = spec.view(key, t)
    for ax, p in enumerate(spec.axes[key]):
        if p is not None and ax != skip:
            v = v.index_select(ax, perms[p].to(v.device))
    return v


def apply_permutation(spec: PermSpec, state: State, perms: dict[str, Tensor]) -> State:
    """``state`` with its hidden units permuted: along each permuted axis, new unit j is old unit ``perm[j]``.
    Works on any dict that holds some of the spec's keys (a state, a mask); other tensors are copied."""
    out = {}
    for k, t in state.items():
        out[k] = _permuted(spec, k, t, perms).reshape(t.shape) if k in spec.axes else t.clone()
    return out


def weight_matching(model: str | ModelHparams, a: State, b: State, *, max_iter: int = 100,
                    seed: int = 0) -> tuple[dict[str, Tensor], State]:
    """Permute ``b``'s hidden units to match ``a``'s weights (Ainsworth et al. 2023, Algorithm 1).

    For each permutation P_l in a random order (from ``seed``), the similarity matrix is the sum over every
    tensor P_l acts on of ``A_l @ B_l^T`` (the tensors moved to put P_l's axis first and flattened, with ``b``'s
    other axes already permuted), and P_l becomes its linear-assignment maximiser; passes repeat until none
    improves the total similarity (at most ``max_iter``). Returns ``(perms, aligned b)``; the aligned network
    computes the same function as ``b``."""
    spec = permutation_spec(model, a)
    if set(a) != set(b):
        raise ValueError("weight matching: the two states have different keys")
    groups = spec.perms
    perms = {p: torch.arange(spec.view(k, a[k]).shape[ax]) for p, [(k, ax), *_] in groups.items()}
    names = sorted(groups)
    g = torch.Generator().manual_seed(seed)
    for _ in range(max_iter):
        progress = False
        for pi in torch.randperm(len(names), generator=g).tolist():
            p = names[pi]
            n = perms[p].numel()
            sim = torch.zeros(n, n, dtype=torch.float64)
            for key, ax in groups[p]:
                wa = spec.view(key, a[key]).double().cpu().movedim(ax, 0).reshape(n, -1)
                wb = _permuted(spec, key, b[key], perms, skip=ax).double().cpu().movedim(ax, 0).reshape(n, -1)
                sim += wa @ wb.T
            s = sim.numpy()
            _, col = linear_sum_assignment(s, maximize=True)
            old = s[np.arange(n), perms[p].numpy()].sum()
            new = s[np.arange(n), col].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                progress = True
                perms[p] = torch.as_tensor(col, dtype=torch.long)
        if not progress:
            break
    return perms, apply_permutation(spec, b, perms)


def align(model: str | ModelHparams, a: State, b: State, *, max_iter: int = 100, seed: int = 0) -> State:
    """``b`` with its hidden units permuted to match ``a`` by :func:`weight_matching`."""
    return weight_matching(model, a, b, max_iter=max_iter, seed=seed)[1]


__all__ = ["PermSpec", "SUPPORTED", "align", "apply_permutation", "permutation_spec", "weight_matching"]
