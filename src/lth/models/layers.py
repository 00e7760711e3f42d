"""Population layers: N independent networks evaluated as one wide network.

Every parameter and buffer carries a leading member dimension ``N``; member ``i``'s own tensor is
``t[i]``, with exactly the shape the ordinary ``torch.nn`` layer would give it (``[out, in]`` for a linear
weight, ``[out, in, k, k]`` for a convolution), so per-member state dicts are plain ``torch.nn`` state dicts.

Activation layouts:
- fully connected: ``[N, B, F]`` (linear layers are batched matmuls);
- convolutional: ``[B, N * C, H, W]`` (member ``i`` owns channels ``i*C .. (i+1)*C``), so convolutions
  are grouped convolutions with ``groups = N`` and BatchNorm over ``N * C`` channels keeps statistics per
  member. ``to_conv`` / ``to_fc`` convert between the two.

With N = 1 every layer reduces to the ordinary dense operation, so a single network pays nothing. On the CPU a
population runs its linear and convolution layers one member at a time with exactly those N = 1
kernels, so a member's numbers are bit-identical whatever the population size (batched kernels such as ``bmm``
and grouped convolutions round differently); on CUDA the members are batched.

Weight normalisation (Salimans & Kingma, NeurIPS 2016): :class:`PopLinear` and :class:`PopConv2d` built with
``weight_norm=True`` compute with ``w = g * v / |v|`` per member and output unit, where the parameter ``weight``
holds the direction ``v`` (so masks, pruning and stored states keep their names: a pruned ``v`` is a pruned ``w``)
and ``weight_g`` the gain ``g`` ``[N, out]``, set to ``|v|`` at initialisation so the network starts as the plain
one. Hand-written rather than ``torch.nn.utils.parametrizations.weight_norm``: a population weight stacks the
members in dim 0, so the norm must keep two dims (member, output unit) where torch's ``dim`` keeps one, and its
parametrisation renames ``weight`` to ``parametrizations.weight.original1``, a name the masks would not find.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def to_conv(x: Tensor) -> Tensor:
    """``[N, B, C, H, W]`` -> ``[B, N*C, H, W]``."""
    n, b, c, h, w = x.shape
    if n == 1:
        return x[0]
    return x.transpose(0, 1).reshape(b, n * c, h, w)


def to_fc(x: Tensor, n: int) -> Tensor:
    """``[B, N*C, H, W]`` -> ``[N, B, C*H*W]`` (flatten per member)."""
    b = x.shape[0]
    if n == 1:
        return x.reshape(1, b, -1)
    return x.reshape(b, n, -1).transpose(0, 1)


def unit_norms(v: Tensor) -> Tensor:
    """The L2 norm of each member's output units of a population weight ``[N, out, ...]``: ``[N, out]``."""
    return v.flatten(2).norm(dim=2)


class WeightNormed(nn.Module):
    """What :class:`PopLinear` and :class:`PopConv2d` share: the weight they compute with, optionally weight
    normalised (see the module docstring)."""

    weight: nn.Parameter

    def _setup_weight_norm(self, on: bool) -> None:
        self.weight_g = nn.Parameter(unit_norms(self.weight.detach()).clone()) if on else None

    def effective_weight(self) -> Tensor:
        """``weight``, or ``g * v / |v|`` under weight normalisation (a unit whose ``v`` is all zero stays zero)."""
        g = getattr(self, "weight_g", None)  # (subclasses that skip __init__, e.g. from_module's, have none)
        if g is None:
            return self.weight
        v = self.weight
        scale = g / unit_norms(v).clamp_min(1e-12)
        return v * scale.view(*scale.shape, *([1] * (v.dim() - 2)))

    @torch.no_grad()
    def reset_gain(self, i: int) -> None:
        """Member ``i``'s gain set to the norm of its direction (``w == v``), after ``v`` is (re)initialised."""
        if getattr(self, "weight_g", None) is not None:
            self.weight_g[i].copy_(unit_norms(self.weight[i:i + 1])[0])


class PopLinear(WeightNormed):
    """N independent linear layers: ``[N, B, in] -> [N, B, out]``."""

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True,
                 weight_norm: bool = False) -> None:
        super().__init__()
        self.n, self.in_features, self.out_features = n, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n, out_features)) if bias else None
        for i in range(n):  # torch.nn.Linear's own default, per member
            nn.init.kaiming_uniform_(self.weight.data[i], a=math.sqrt(5))
        self._setup_weight_norm(weight_norm)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.effective_weight()
        if self.n == 1:  # views, not selects: their backward reshapes the gradient instead of scattering it
            w = weight.view(self.out_features, self.in_features)
            b = None if self.bias is None else self.bias.view(self.out_features)
            return F.linear(x.view(x.shape[1], self.in_features), w, b).view(1, x.shape[1], self.out_features)
        if x.device.type == "cpu":  # per member, the N = 1 kernel: bit-identical to training alone
            return torch.stack([F.linear(x[i], weight[i], None if self.bias is None else self.bias[i])
                                for i in range(self.n)])
        if self.bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, weight.transpose(1, 2))


class PopConv2d(WeightNormed):
    """N independent 2-d convolutions as one grouped convolution on ``[B, N*C, H, W]``.

    ``channels_last`` (set by the engine on CUDA) asks the model's first convolution to hand cuDNN its input
    in NHWC memory order; the layout then carries through the network."""

    channels_last: bool = False

    def __init__(
        self, n: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
        padding: int = 0, bias: bool = True, weight_norm: bool = False,
    ) -> None:
        super().__init__()
        self.n, self.stride, self.padding = n, stride, padding
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.empty(n, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(n, out_channels)) if bias else None
        for i in range(n):
            nn.init.kaiming_uniform_(self.weight.data[i], a=math.sqrt(5))
        self._setup_weight_norm(weight_norm)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.effective_weight()
        if self.n > 1 and x.device.type == "cpu":  # per member, the N = 1 kernel: bit-identical to training alone
            return per_member_channels(x, self.n, lambda i, xi: F.conv2d(
                xi, weight[i], None if self.bias is None else self.bias[i], self.stride, self.padding))
        w = weight.reshape(self.n * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        b = None if self.bias is None else self.bias.reshape(-1)
        return F.conv2d(x, w, b, self.stride, self.padding, groups=self.n)


def use_channels_last(model: nn.Module, weights: bool = True) -> None:
    """Have cuDNN see NHWC tensors: every :class:`PopConv2d` hands its input over in channels-last order and, with
    ``weights``, stores its weight so that the grouped ``[N*O, I, k, k]`` view is channels-last too (values and
    shapes unchanged; loading a member's state keeps the order). What lth does for convnets on CUDA."""
    for m in model.modules():
        if isinstance(m, PopConv2d):
            m.channels_last = True
            if weights:
                m.weight.data = m.weight.data.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient: a member's slice of ``torch.cat``'s gradient is
    strided, and the CPU BatchNorm backward reduces a strided gradient in another order than a contiguous one."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:  # noqa: ARG004
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, g: Tensor) -> Tensor:  # noqa: ARG004
        return g.contiguous()


def _contiguous_grad(x: Tensor) -> Tensor:
    return _ContiguousGrad.apply(x) if x.requires_grad else x


def per_member_channels(x: Tensor, n: int, fn: Callable[[int, Tensor], Tensor]) -> Tensor:
    """``fn(i, member i's channels)`` for every member of the conv layout ``[B, N*C, H, W]``, concatenated back:
    each member's channels as a contiguous tensor, its gradient handed back contiguous, so a CPU population
    computes what each member computes alone, bit for bit."""
    c = x.shape[1] // n
    return torch.cat([_contiguous_grad(fn(i, x[:, i * c:(i + 1) * c].contiguous())) for i in range(n)], 1)


class PopBatchNorm2d(nn.Module):
    """BatchNorm over ``N*C`` channels: statistics and affine parameters stay per member."""

    def __init__(self, n: int, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.n, self.channels, self.momentum, self.eps = n, channels, momentum, eps
        self.weight = nn.Parameter(torch.ones(n, channels))
        self.bias = nn.Parameter(torch.zeros(n, channels))
        self.register_buffer("running_mean", torch.zeros(n, channels))
        self.register_buffer("running_var", torch.ones(n, channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.n > 1 and x.device.type == "cpu":  # per member, as alone: bit-identical to training alone
            return per_member_channels(x, self.n, lambda i, xi: F.batch_norm(
                xi, self.running_mean[i], self.running_var[i], self.weight[i], self.bias[i], self.training,
                self.momentum, self.eps))
        return F.batch_norm(
            x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1), self.bias.view(-1),
            self.training, self.momentum, self.eps,
        )


class PopGroupNorm(nn.Module):
    """GroupNorm with ``groups`` groups per member (member groups never mix)."""

    def __init__(self, n: int, groups: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"GroupNorm: {channels} channels do not split into {groups} groups")
        self.n, self.groups, self.eps = n, groups, eps
        self.weight = nn.Parameter(torch.ones(n, channels))
        self.bias = nn.Parameter(torch.zeros(n, channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.n > 1 and x.device.type == "cpu":  # per member, as alone (see PopBatchNorm2d)
            return per_member_channels(x, self.n, lambda i, xi: F.group_norm(xi, self.groups, self.weight[i],
                                                                             self.bias[i], self.eps))
        return F.group_norm(x, self.n * self.groups, self.weight.view(-1), self.bias.view(-1), self.eps)


class PopScalar(nn.Module):
    """One learnable scalar per member (Fixup's multipliers and biases), broadcast over ``[B, N*C, H, W]``
    or ``[N, B, F]``."""

    def __init__(self, n: int, value: float) -> None:
        super().__init__()
        self.n = n
        self.weight = nn.Parameter(torch.full((n, 1), float(value)))

    def _shaped(self, x: Tensor) -> Tensor:
        if x.dim() == 4:  # conv layout [B, N*C, H, W]
            return self.weight.view(1, self.n, 1, 1, 1)
        return self.weight.view(self.n, 1, 1)

    def _per_member(self, x: Tensor, op: str) -> Tensor:
        """On the CPU, conv layout: each member's channels alone (so the scalar's gradient sums in the same order
        as in a network of one)."""
        f = torch.add if op == "add" else torch.mul
        return per_member_channels(x, self.n, lambda i, xi: f(xi, self.weight[i].view(1, 1, 1, 1)))

    def add(self, x: Tensor) -> Tensor:
        """``x + scalar`` per member."""
        if x.dim() == 4:
            if self.n > 1 and x.device.type == "cpu":
                return self._per_member(x, "add")
            b, nc, h, w = x.shape
            return (x.view(b, self.n, nc // self.n, h, w) + self._shaped(x)).view(b, nc, h, w)
        return x + self._shaped(x)

    def mul(self, x: Tensor) -> Tensor:
        """``x * scalar`` per member."""
        if x.dim() == 4:
            if self.n > 1 and x.device.type == "cpu":
                return self._per_member(x, "mul")
            b, nc, h, w = x.shape
            return (x.view(b, self.n, nc // self.n, h, w) * self._shaped(x)).view(b, nc, h, w)
        return x * self._shaped(x)
