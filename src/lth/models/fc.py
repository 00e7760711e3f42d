"""Fully connected networks: ``fc_300_100`` (LeNet-300-100) and any ``fc_N_M_...``."""

from __future__ import annotations

import math

import torch
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

    @torch.no_grad()
    def loss_and_grads(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward and a hand-written backward of each member's mean cross-entropy: sets every parameter's
        ``.grad`` and returns the per-member loss ``[N]``. The same numbers as autograd (tested), without its
        per-op bookkeeping, which is most of a small MLP's step on a CPU.

        On the CPU each member runs through the 2-d kernels a population of one uses (one member at a time), so
        a member's gradients are bit-identical whatever the population size; elsewhere the members are batched."""
        n, b = self.n, x.shape[1]
        h = x.reshape(x.shape[0], b, -1)
        if h.shape[0] != n:
            h = h.expand(n, -1, -1)
        if n == 1 or h.device.type == "cpu":
            ys = y.reshape(n, -1) if y.numel() == n * b else y.reshape(1, -1).expand(n, -1)
            if n == 1:
                loss, grads = self._member_loss_and_grads(0, h[0], ys[0].reshape(-1, 1))
                for layer, (gw, gb) in zip(self.layers, grads, strict=True):
                    layer.weight.grad, layer.bias.grad = gw.unsqueeze(0), gb.unsqueeze(0)
                return loss
            for layer in self.layers:
                layer.weight.grad = torch.empty_like(layer.weight)
                layer.bias.grad = torch.empty_like(layer.bias)
            losses = []
            for i in range(n):
                loss, grads = self._member_loss_and_grads(i, h[i], ys[i].reshape(-1, 1))
                losses.append(loss)
                for layer, (gw, gb) in zip(self.layers, grads, strict=True):
                    layer.weight.grad[i].copy_(gw)
                    layer.bias.grad[i].copy_(gb)
            return torch.cat(losses)
        inputs, pre = [], []
        last = len(self.layers) - 1
        for li, layer in enumerate(self.layers):
            inputs.append(h)
            z = torch.baddbmm(layer.bias.unsqueeze(1), h, layer.weight.transpose(1, 2))
            pre.append(z)
            h = z.relu() if li < last else z
        logp = h.log_softmax(-1)
        target = y.unsqueeze(-1)
        loss = -logp.gather(-1, target).mean(-2).reshape(n)
        d = logp.exp_()
        d.scatter_add_(-1, target, torch.full(target.shape, -1.0, dtype=d.dtype, device=d.device))
        d.mul_(1.0 / b)
        for li in range(last, -1, -1):
            layer = self.layers[li]
            layer.weight.grad = torch.bmm(d.transpose(1, 2), inputs[li])
            layer.bias.grad = d.sum(1)
            if li:
                d = torch.ops.aten.threshold_backward(torch.bmm(d, layer.weight), pre[li - 1], 0)
        return loss

    def _member_loss_and_grads(self, i: int, h: Tensor, target: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Member ``i`` on its flat input ``h`` ``[B, in]`` and labels ``target`` ``[B, 1]``: its mean loss ``[1]``
        and the (weight, bias) gradients of each layer, input layer first, with plain 2-d matrix products."""
        b = h.shape[0]
        inputs, pre = [], []
        last = len(self.layers) - 1
        for li, layer in enumerate(self.layers):
            inputs.append(h)
            z = torch.addmm(layer.bias[i], h, layer.weight[i].t())
            pre.append(z)
            h = z.relu() if li < last else z
        logp = h.log_softmax(-1)
        loss = -logp.gather(-1, target).mean(-2).reshape(1)
        d = logp.exp_()
        d.scatter_add_(-1, target, torch.full(target.shape, -1.0, dtype=d.dtype, device=d.device))
        d.mul_(1.0 / b)
        grads: list[tuple[Tensor, Tensor]] = []
        for li in range(last, -1, -1):
            grads.append((torch.mm(d.t(), inputs[li]), d.sum(0)))
            if li:
                d = torch.ops.aten.threshold_backward(torch.mm(d, self.layers[li].weight[i]), pre[li - 1], 0)
        return loss, grads[::-1]
