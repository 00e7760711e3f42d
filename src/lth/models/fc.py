"""Fully connected networks: ``fc_300_100`` (LeNet-300-100) and any ``fc_N_M_...``."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from lth.models.base import PopModel
from lth.models.layers import PopLinear


class FC(PopModel):
    """An MLP with ReLU hidden layers ``hidden`` on flattened inputs."""

    def __init__(self, n: int, input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> None:
        super().__init__(n)
        sizes = [math.prod(input_shape), *hidden, num_classes]
        self.layers = nn.ModuleList(PopLinear(n, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.output_layer = f"layers.{len(sizes) - 2}.weight"

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.shape[0] != self.n:
            x = x.expand(self.n, -1, -1)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)
