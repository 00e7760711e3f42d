"""CIFAR VGG-11/13/16/19 as in open_lth: 3x3 convs (padding 1) with optional BatchNorm and ReLU, 2x2 max
pools, the last pool replaced by global average pooling, and a single linear layer to the classes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lth.errors import UserError
from lth.models.base import PopModel
from lth.models.conv import check_input, image_shape, pool_to_fc, scale_width, stem
from lth.models.layers import PopBatchNorm2d, PopConv2d, PopLinear

# The standard configurations without the final pool ("M" = 2x2 max pool).
VGG_CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}
VGG_NORMS = ("batchnorm", "none")


class VGG(PopModel):
    """VGG-``depth``; convs have no bias when followed by BatchNorm."""

    def __init__(
        self, n: int, example_shape: tuple[int, ...], num_classes: int, depth: int, norm: str = "batchnorm",
        width: float = 1.0,
    ) -> None:
        super().__init__(n)
        if depth not in VGG_CFGS:
            raise UserError(f"VGG depth must be one of {', '.join(map(str, VGG_CFGS))}; got {depth}")
        if norm not in VGG_NORMS:
            raise UserError(f"unknown norm {norm!r} for vgg; allowed: {', '.join(VGG_NORMS)}")
        self.image = c, h, w = image_shape(f"vgg_{depth}", example_shape)
        self.cfg = [v if v == "M" else scale_width(int(v), width) for v in VGG_CFGS[depth]]
        pools = self.cfg.count("M")
        if h >> pools < 1 or w >> pools < 1:
            raise UserError(f"model vgg_{depth} needs inputs of at least {2 ** pools}x{2 ** pools}; "
                            f"got example shape {tuple(example_shape)}")
        bn = norm == "batchnorm"
        convs, norms = [], []
        for v in self.cfg:
            if v != "M":
                convs.append(PopConv2d(n, c, int(v), 3, padding=1, bias=not bn))
                norms.append(PopBatchNorm2d(n, int(v)) if bn else nn.Identity())
                c = int(v)
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.fc = PopLinear(n, c, num_classes)
        self.output_layer = "fc.weight"

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, self.image)
        layers = iter(zip(self.convs, self.norms, strict=True))
        y = None
        for v in self.cfg:
            if v == "M":
                y = F.max_pool2d(y, 2)
            else:
                conv, norm = next(layers)
                y = F.relu(norm(stem(conv, x) if y is None else conv(y)))
        return self.fc(pool_to_fc(y, self.n))
