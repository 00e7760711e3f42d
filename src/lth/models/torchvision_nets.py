"""torchvision's ImageNet networks as lth models: ResNet-18/34/50/101/152 with an ImageNet or a small-image stem, and
Inception-v3 (the networks of seed 002's tables: Frankle et al. 2020, Table 1; Ma et al. 2021, Table 2).

Each is a plain ``torch.nn.Module`` built by torchvision and made a population by
:func:`lth.models.from_module.from_module` (every member a copy of the module, its parameters under torchvision's
names: ``layer1.0.conv1.weight``, ``fc.weight``), so a member's state loads into ``torchvision.models.resnet50()``.

Names (resolved in :mod:`lth.models`, which imports this module, and so torchvision, only when one is built):

- ``imagenet_resnet_<D>`` (open_lth's name), D in 18, 34, 50, 101, 152: torchvision's ResNet-D unchanged (7x7
  stride-2 stem and a 3x3 max-pool): 224x224 ImageNet crops, any input of at least 32x32.
- ``tiny_resnet_<D>`` and ``cifar_resnet_<D>``: the same network with the usual small-image stem, a 3x3 stride-1
  first convolution and no max-pool, so the four stages see 64/32/16/8 pixels of a 64x64 Tiny-ImageNet image (as
  ImageNet's 56/28/14/7) and 32/16/8/4 of a 32x32 CIFAR image. The two names are one network; the presets use the
  one that names their dataset.
- ``inception_v3``: torchvision's Inception-v3 without the auxiliary classifier (lth trains one logits output) and
  without torchvision's input transform: 299x299 inputs (at least 75x75).

``width`` multiplies every ResNet stage's channels (64/128/256/512, the stem's 64 with them; 1.0 is torchvision's
network exactly, state-dict shapes included); Inception-v3's width is a multiple of 1/16 (its channel counts are
multiples of 16, so its branches' concatenations still add up). The layers lth prunes are every
convolution and linear weight, the first convolution and the classifier included, as open_lth's ImageNet ResNets
(``models/imagenet_resnet.py``: ``sparse_global`` over every conv and linear weight); the presets say which they
leave out (docs/fidelity.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn
from torchvision.models import inception as tv_inception
from torchvision.models import resnet as tv_resnet

from lth.errors import UserError, ref
from lth.models.base import PopModel
from lth.models.conv import image_shape, scale_width
from lth.models.from_module import from_module

RESNET_LAYERS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2]),
    34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3]),
    101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
    152: (tv_resnet.Bottleneck, [3, 8, 36, 3]),
}
INCEPTION_MIN_SIDE = 75  # torchvision's Inception-v3 reduces a 75x75 input to 1x1 before its pooling


class TorchvisionResNet(tv_resnet.ResNet):
    """torchvision's ``ResNet`` with a width multiplier, a choice of stem and ``in_channels`` input channels.

    ``width`` 1.0, stem ``imagenet`` and 3 input channels is torchvision's network exactly (the same modules, names,
    shapes and initialisation); otherwise the first convolution, its BatchNorm and the classifier are rebuilt for
    the scaled widths, initialised as torchvision initialises them."""

    def __init__(self, depth: int, num_classes: int = 1000, stem: str = "imagenet", width: float = 1.0,
                 in_channels: int = 3) -> None:
        if depth not in RESNET_LAYERS:
            raise UserError(f"ResNet depth must be one of {', '.join(map(str, RESNET_LAYERS))}; got {depth}")
        if stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small'; got {stem!r}")
        block, layers = RESNET_LAYERS[depth]
        # read by _make_layer during torchvision's constructor (a plain float: no nn.Module bookkeeping needed)
        object.__setattr__(self, "_width", float(width))
        super().__init__(block, layers, num_classes=num_classes)  # type: ignore[arg-type]
        stem_width = scale_width(64, width)
        if stem == "small" or in_channels != 3 or stem_width != 64:
            k, s, p = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
            self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=k, stride=s, padding=p, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.bn1 = nn.BatchNorm2d(stem_width)
        if stem == "small":
            self.maxpool = nn.Identity()
        if self.fc.in_features != self.inplanes:
            self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> nn.Sequential:
        if planes == 64:  # the first stage: it reads the stem's (scaled) width
            self.inplanes = scale_width(64, self._width)
        return super()._make_layer(block, scale_width(planes, self._width), blocks, stride, dilate)  # type: ignore


def resnet_module(depth: int, stem: str, example_shape: tuple[int, ...], num_classes: int,
                  width: float = 1.0) -> TorchvisionResNet:
    """One ``TorchvisionResNet`` for inputs of ``example_shape`` (C, H, W); UserError for an input it cannot read."""
    c, h, w = image_shape(f"resnet_{depth}", example_shape)
    least = 32 if stem == "imagenet" else 8
    if min(h, w) < least:
        raise UserError(f"model {'imagenet' if stem == 'imagenet' else 'small-stem'} resnet_{depth} needs images of "
                        f"at least {least}x{least}; got {h}x{w}")
    return TorchvisionResNet(depth, num_classes, stem, width, in_channels=c)


class _ScaledBasicConv2d(tv_inception.BasicConv2d):
    """torchvision's Inception conv + BatchNorm block with every channel count times ``width`` (the image's 3 input
    channels kept)."""

    def __init__(self, in_channels: int, out_channels: int, *, width: float = 1.0, **kwargs: object) -> None:
        c_in = in_channels if in_channels == 3 else round(in_channels * width)
        super().__init__(c_in, round(out_channels * width), **kwargs)


def inception_module(example_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> nn.Module:
    """torchvision's Inception-v3 (no auxiliary classifier, no input transform) for 3-channel images of at least
    75x75; ``width`` (a multiple of 1/16, so every branch's channels stay whole and their concatenations add up)
    multiplies every channel count. UserError otherwise."""
    c, h, w = image_shape("inception_v3", example_shape)
    if c != 3 or min(h, w) < INCEPTION_MIN_SIDE:
        raise UserError(f"model inception_v3 needs 3-channel images of at least {INCEPTION_MIN_SIDE}x"
                        f"{INCEPTION_MIN_SIDE} (299x299 as the paper); got {c}x{h}x{w}")
    if width != 1.0:
        if abs(width * 16 - round(width * 16)) > 1e-9 or width < 1 / 16:
            raise UserError(f"{ref('width')} {width}: inception_v3's channel counts scale only by multiples of 1/16; "
                            "allowed: 0.0625, 0.125, ..., 1.0, ...", value=width, allowed="a multiple of 0.0625")
        conv = functools.partial(_ScaledBasicConv2d, width=width)
        blocks = [conv, *(functools.partial(b, conv_block=conv) for b in (
            tv_inception.InceptionA, tv_inception.InceptionB, tv_inception.InceptionC, tv_inception.InceptionD,
            tv_inception.InceptionE, tv_inception.InceptionAux))]
        m = tv_inception.Inception3(num_classes=num_classes, aux_logits=False, transform_input=False,
                                    inception_blocks=blocks, init_weights=True)
        m.fc = nn.Linear(round(2048 * width), num_classes)
        return m
    return tv_inception.Inception3(num_classes=num_classes, aux_logits=False, transform_input=False,
                                   init_weights=True)


@functools.cache
def _resnet_builder(depth: int, stem: str) -> Callable[..., PopModel]:
    """One registry builder per (depth, stem), kept, so its check against the module runs once per shape."""
    def factory(example_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> nn.Module:
        return resnet_module(depth, stem, example_shape, num_classes, width)
    label = f"imagenet_resnet_{depth}" if stem == "imagenet" else f"resnet_{depth} (small-image stem)"
    return from_module(factory, init="spec", output="fc", name=label)


def build_resnet(n: int, example_shape: tuple[int, ...], num_classes: int, *, depth: int, stem: str,
                 norm: str = "batchnorm", width: float = 1.0) -> PopModel:
    """Registry builder of ``imagenet_resnet_<D>`` / ``tiny_resnet_<D>`` / ``cifar_resnet_<D>``: a population of
    ``n`` torchvision ResNet-D (BatchNorm only)."""
    return _resnet_builder(depth, stem)(n, example_shape, num_classes, norm=norm, width=width)


# Registry builder of ``inception_v3``: a population of torchvision Inception-v3 (BatchNorm only)
build_inception_v3 = from_module(inception_module, init="spec", output="fc", name="inception_v3")


__all__ = ["INCEPTION_MIN_SIDE", "RESNET_LAYERS", "TorchvisionResNet", "build_inception_v3",
           "build_resnet", "inception_module", "resnet_module"]
