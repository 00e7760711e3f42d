"""Convolutional networks of Frankle & Carbin (2019, Table 1), ``conv2``, ``conv4``, ``conv6``; ``lenet5``.

Also the helpers the other convolutional models share: :func:`scale_width`, :func:`image_shape`,
:func:`stem` (the first convolution, which reads the ``[N|1, B, C, H, W]`` input) and :func:`pool_to_fc`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lth.errors import UserError
from lth.models.base import PopModel
from lth.models.layers import PopConv2d, PopLinear, to_conv, to_fc

# Frankle & Carbin 2019, Table 1: convolution widths ("M" = 2x2 max pool), then the hidden FC widths.
CONV_CFGS: dict[str, list[int | str]] = {
    "conv2": [64, 64, "M"],
    "conv4": [64, 64, "M", 128, 128, "M"],
    "conv6": [64, 64, "M", 128, 128, "M", 256, 256, "M"],
}
CONV_FC = [256, 256]


def scale_width(width: int, multiplier: float) -> int:
    """A hidden width times the width multiplier, rounded, at least 1."""
    return max(1, round(width * multiplier))


def image_shape(name: str, example_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of one example, or a :class:`UserError` if the model cannot read it."""
    shape = tuple(int(s) for s in example_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"model {name} needs image inputs of shape (C, H, W); got example shape {shape}")
    return shape  # type: ignore[return-value]


def check_input(model: PopModel, x: Tensor, image: tuple[int, ...]) -> None:
    """Reject an input that is not ``[N, B, *image]`` or ``[1, B, *image]``."""
    if x.dim() != 5 or x.shape[0] not in (1, model.n) or tuple(x.shape[2:]) != tuple(image):
        dims = ", ".join(map(str, image))
        name = type(model).__name__
        raise ValueError(f"{name} expects input [{model.n} or 1, B, {dims}], got {list(x.shape)}")


def stem(conv: PopConv2d, x: Tensor) -> Tensor:
    """Apply the first convolution to ``[N, B, C, H, W]`` or shared ``[1, B, C, H, W]``; returns the conv
    layout ``[B, N*C_out, H', W']``. A shared input is not copied N times: the N members' kernels are stacked
    into one dense convolution over the single input, which is the same computation."""
    if x.shape[0] == conv.n:
        x = to_conv(x)
        if conv.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return conv(x)
    w = conv.effective_weight().reshape(conv.n * conv.out_channels, conv.in_channels, conv.kernel_size,
                                        conv.kernel_size)
    b = None if conv.bias is None else conv.bias.reshape(-1)
    x = x[0].contiguous(memory_format=torch.channels_last) if conv.channels_last else x[0]
    return F.conv2d(x, w, b, conv.stride, conv.padding)


def pool_to_fc(x: Tensor, n: int) -> Tensor:
    """Global average pool of the conv layout ``[B, N*C, H, W]`` -> ``[N, B, C]``."""
    return to_fc(x.mean(dim=(2, 3), keepdim=True), n)


class Conv(PopModel):
    """``conv2``/``conv4``/``conv6``: 3x3 convolutions (padding 1) with ReLU and 2x2 max pools, then ReLU FC
    layers and a linear output layer."""

    def __init__(
        self, n: int, example_shape: tuple[int, ...], num_classes: int, cfg: list[int | str],
        fc: list[int], name: str = "conv",
    ) -> None:
        super().__init__(n)
        self.image = c, h, w = image_shape(name, example_shape)
        convs = []
        for v in cfg:
            if v == "M":
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise UserError(f"model {name} pools its input {example_shape[1]}x{example_shape[2]} "
                                    f"down to nothing; it needs inputs of at least "
                                    f"{2 ** cfg.count('M')}x{2 ** cfg.count('M')}")
            else:
                convs.append(PopConv2d(n, c, int(v), 3, padding=1))
                c = int(v)
        self.cfg = list(cfg)
        self.convs = nn.ModuleList(convs)
        sizes = [c * h * w, *fc, num_classes]
        self.fc = nn.ModuleList(PopLinear(n, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.output_layer = f"fc.{len(sizes) - 2}.weight"

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, self.image)
        convs = iter(self.convs)
        y = None
        for v in self.cfg:
            if v == "M":
                y = F.max_pool2d(y, 2)
            else:
                conv = next(convs)
                y = F.relu(stem(conv, x) if y is None else conv(y))
        y = to_fc(y, self.n)
        for layer in self.fc[:-1]:
            y = F.relu(layer(y))
        return self.fc[-1](y)


class LeNet5(PopModel):
    """Classic LeNet-5 with ReLU and max pooling: conv 6@5x5, pool, conv 16@5x5, pool, FC 120, 84, classes.
    No padding, so the flatten size follows the input (16*5*5 for 32x32, 16*4*4 for 28x28)."""

    def __init__(self, n: int, example_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> None:
        super().__init__(n)
        self.image = c, h, w = image_shape("lenet5", example_shape)
        c1, c2, f1, f2 = (scale_width(v, width) for v in (6, 16, 120, 84))
        for _ in range(2):
            h, w = (h - 4) // 2, (w - 4) // 2
            if h < 1 or w < 1:
                raise UserError(f"model lenet5 needs inputs of at least 16x16; got example shape "
                                f"{tuple(example_shape)}")
        self.conv1 = PopConv2d(n, c, c1, 5)
        self.conv2 = PopConv2d(n, c1, c2, 5)
        self.fc = nn.ModuleList(
            [PopLinear(n, c2 * h * w, f1), PopLinear(n, f1, f2), PopLinear(n, f2, num_classes)]
        )
        self.output_layer = "fc.2.weight"

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, self.image)
        y = F.max_pool2d(F.relu(stem(self.conv1, x)), 2)
        y = F.max_pool2d(F.relu(self.conv2(y)), 2)
        y = to_fc(y, self.n)
        y = F.relu(self.fc[0](y))
        y = F.relu(self.fc[1](y))
        return self.fc[2](y)


def conv_net(name: str, n: int, example_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> Conv:
    """``conv2``, ``conv4`` or ``conv6`` with every hidden width (channels and FC) scaled by ``width``."""
    cfg = [v if v == "M" else scale_width(int(v), width) for v in CONV_CFGS[name]]
    fc = [scale_width(v, width) for v in CONV_FC]
    return Conv(n, example_shape, num_classes, cfg, fc, name=name)
