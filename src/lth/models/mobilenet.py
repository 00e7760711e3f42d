"""MobileNet-v1 (Howard et al. 2017) for small images, the network of Ma et al. 2021 (seed 002, Table 2: MBNet-v1 on
CIFAR-10, 3.21M parameters). torchvision has MobileNet-v2 and -v3 only, so v1 is written here as a plain module and
made a population by :func:`lth.models.from_module.from_module` (depthwise convolutions become grouped ones).

The CIFAR form that Ma et al.'s parameter count matches: a 3x3 stride-1 stem of 32 channels (the ImageNet network's
stride 2 would leave a 32x32 image 1x1 before its last stage), then 13 depthwise-separable blocks (3x3 depthwise conv,
BatchNorm, ReLU, 1x1 pointwise conv, BatchNorm, ReLU) at 64, 128, 128, 256, 256, 512 (x6), 1024, 1024 channels with
stride 2 at the first 128, 256, 512 and 1024, a global average pool and a linear classifier: 3,217,226 parameters
for 10 classes. ``width`` multiplies every channel count (Howard et al.'s alpha). Prunable: every convolution
(depthwise and pointwise) and the classifier.
"""

from __future__ import annotations

from torch import Tensor, nn

from lth.models.conv import image_shape, scale_width

# (output channels, stride) of the 13 depthwise-separable blocks
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class MobileNetV1(nn.Module):
    """MobileNet-v1 with a stride-1 stem for ``in_channels`` x H x W images and ``num_classes`` outputs."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        c = scale_width(32, width)
        self.conv1 = nn.Conv2d(in_channels, c, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        blocks = []
        for out, stride in MOBILENET_V1_BLOCKS:
            blocks.append(DepthwiseSeparable(c, scale_width(out, width), stride))
            c = scale_width(out, width)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def mobilenet_v1(example_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> MobileNetV1:
    """The module for one example shape (C, H, W); UserError for an input that is not an image."""
    c, _, _ = image_shape("mobilenet_v1", example_shape)
    return MobileNetV1(num_classes, width, in_channels=c)


__all__ = ["DepthwiseSeparable", "MOBILENET_V1_BLOCKS", "MobileNetV1", "mobilenet_v1"]
