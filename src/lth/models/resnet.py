"""CIFAR ResNets ``resnet_<6n+2>`` (He et al. 2016, as in open_lth) with a choice of normalisation.

Stem conv 3x3 16, three stages of ``n`` basic blocks at widths 16/32/64 (times the width multiplier), stride 2
and a 1x1 conv (+ norm) shortcut at the first block of stages 2 and 3, global average pool, linear classifier.

``norm``:
- ``batchnorm``: :class:`PopBatchNorm2d` after every conv (convs without bias);
- ``groupnorm``: :class:`PopGroupNorm` with the largest divisor of C that is at most 32 groups (C = 16 -> 16,
  32 -> 32, 64 -> 32; convs without bias);
- ``none``: no normalisation (convs with bias);
- ``fixup``: Fixup (Zhang et al. 2019): no normalisation, convs without bias; scalar biases before every conv,
  activation and the classifier, a scalar multiplier per residual branch; the last conv of each branch and the
  classifier start at zero, the first conv of each branch is scaled by ``L ** -0.5`` (L residual branches);
- ``weightnorm``: no normalisation layers, convs with bias, every conv and the classifier weight normalised
  (Salimans & Kingma 2016; :class:`lth.models.layers.WeightNormed`: ``w = g v / |v|`` per output unit, ``g``
  starting at ``|v|``, so the initial network is the ``none`` one). Siswanto, Frankle & Carbin name it as the
  next normalisation to try (seed 000, Section 4). No mean-field initialisation (Arpit et al. 2019): lth's choice.

``residual=False`` (model names ``resnet_<D>_plain`` / ``resnet<D>_plain``) drops every shortcut, identity and
1x1 conv alike: a plain stack of the same convolutions, Ma et al.'s "ResNet-like network without residual
connections" (NeurIPS 2021, Fig. 5, seed 002). Fixup needs the shortcuts (its branches start at zero) and is
refused without them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lth.errors import UserError, ref
from lth.models.base import PopModel
from lth.models.conv import check_input, image_shape, pool_to_fc, scale_width, stem
from lth.models.layers import PopBatchNorm2d, PopConv2d, PopGroupNorm, PopLinear, PopScalar, WeightNormed

RESNET_NORMS = ("batchnorm", "fixup", "groupnorm", "none", "weightnorm")
GROUPNORM_MAX_GROUPS = 32


def groupnorm_groups(channels: int) -> int:
    """The number of GroupNorm groups for ``channels``: the largest divisor of it that is at most 32."""
    return max(g for g in range(1, min(GROUPNORM_MAX_GROUPS, channels) + 1) if channels % g == 0)


def make_norm(norm: str, n: int, channels: int) -> nn.Module:
    if norm == "batchnorm":
        return PopBatchNorm2d(n, channels)
    if norm == "groupnorm":
        return PopGroupNorm(n, groupnorm_groups(channels), channels)
    return nn.Identity()


class Block(nn.Module):
    """A basic residual block: conv3x3-norm-relu-conv3x3-norm (+ shortcut), relu; without ``residual``, no
    shortcut at all."""

    def __init__(self, n: int, c_in: int, c_out: int, stride: int, norm: str, residual: bool = True) -> None:
        super().__init__()
        self.fixup, self.residual = norm == "fixup", residual
        bias, wn = norm in ("none", "weightnorm"), norm == "weightnorm"
        self.conv1 = PopConv2d(n, c_in, c_out, 3, stride=stride, padding=1, bias=bias, weight_norm=wn)
        self.norm1 = make_norm(norm, n, c_out)
        self.conv2 = PopConv2d(n, c_out, c_out, 3, stride=1, padding=1, bias=bias, weight_norm=wn)
        self.norm2 = make_norm(norm, n, c_out)
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut: nn.Module | None = PopConv2d(n, c_in, c_out, 1, stride=stride, bias=bias, weight_norm=wn)
            self.shortcut_norm = make_norm(norm, n, c_out)
        else:
            self.shortcut = None
        if self.fixup:
            self.bias1a, self.bias1b = PopScalar(n, 0.0), PopScalar(n, 0.0)
            self.bias2a, self.bias2b = PopScalar(n, 0.0), PopScalar(n, 0.0)
            self.scale = PopScalar(n, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.fixup:
            xa = self.bias1a.add(x)
            out = F.relu(self.bias1b.add(self.conv1(xa)))
            out = self.bias2b.add(self.scale.mul(self.conv2(self.bias2a.add(out))))
            identity = x if self.shortcut is None else self.shortcut(xa)
        else:
            out = F.relu(self.norm1(self.conv1(x)))
            out = self.norm2(self.conv2(out))
            if not self.residual:
                return F.relu(out)
            identity = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x))
        return F.relu(out + identity)


class ResNet(PopModel):
    """CIFAR ResNet of depth ``6 * blocks + 2``."""

    def __init__(
        self, n: int, example_shape: tuple[int, ...], num_classes: int, depth: int, norm: str = "batchnorm",
        width: float = 1.0, residual: bool = True,
    ) -> None:
        super().__init__(n)
        if depth < 8 or (depth - 2) % 6:
            raise UserError(f"ResNet depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110, ...); got {depth}")
        if norm not in RESNET_NORMS:
            raise UserError(f"unknown norm {norm!r} for resnet; allowed: {', '.join(RESNET_NORMS)}")
        if norm == "fixup" and not residual:
            allowed = ", ".join(x for x in RESNET_NORMS if x != "fixup")
            raise UserError(f"{ref('norm')} 'fixup' for resnet_{depth}_plain: Fixup needs residual connections (its "
                            f"branches start at zero); allowed: {allowed}", value=norm, allowed=allowed)
        self.depth, self.norm_kind, self.residual = depth, norm, residual
        wn = norm == "weightnorm"
        self.image = image_shape(f"resnet_{depth}", example_shape)
        per_stage = (depth - 2) // 6
        widths = [scale_width(w, width) for w in (16, 32, 64)]
        self.conv = PopConv2d(n, self.image[0], widths[0], 3, padding=1, bias=norm in ("none", "weightnorm"),
                              weight_norm=wn)
        self.norm = make_norm(norm, n, widths[0])
        blocks, c = [], widths[0]
        for s, w in enumerate(widths):
            for b in range(per_stage):
                blocks.append(Block(n, c, w, 2 if s > 0 and b == 0 else 1, norm, residual))
                c = w
        self.blocks = nn.ModuleList(blocks)
        self.fc = PopLinear(n, c, num_classes, weight_norm=wn)
        self.output_layer = "fc.weight"
        if norm == "fixup":
            self.bias1, self.bias2 = PopScalar(n, 0.0), PopScalar(n, 0.0)  # after the stem, before the fc
            for i in range(n):
                self._fixup(i)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, self.image)
        y = stem(self.conv, x)
        y = F.relu(self.bias1.add(y) if self.norm_kind == "fixup" else self.norm(y))
        for block in self.blocks:
            y = block(y)
        y = pool_to_fc(y, self.n)
        if self.norm_kind == "fixup":
            y = self.bias2.add(y)
        return self.fc(y)

    @torch.no_grad()
    def _fixup(self, i: int) -> None:
        """Fixup's rescaling of member ``i`` on top of whatever initialisation its weights have."""
        scale = len(self.blocks) ** -0.5  # L ** (-1 / (2m - 2)) with m = 2 layers per branch
        for block in self.blocks:
            block.conv1.weight[i].mul_(scale)
            block.conv2.weight[i].zero_()
            for s in (block.bias1a, block.bias1b, block.bias2a, block.bias2b):
                s.weight[i].zero_()
            block.scale.weight[i].fill_(1.0)
        self.bias1.weight[i].zero_()
        self.bias2.weight[i].zero_()
        self.fc.weight[i].zero_()
        self.fc.bias[i].zero_()

    def _init_extra(self, i: int, init: str, generator: torch.Generator) -> None:
        if self.norm_kind == "fixup":
            self._fixup(i)
        for m in self.modules():  # weight norm: the gain follows the freshly drawn direction (w == v at init)
            if isinstance(m, WeightNormed):
                m.reset_gain(i)
