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
    def loss_and_grads(self, x: Tensor, y: Tensor, compiled: bool = False) -> Tensor:
        """Forward and a hand-written backward of each member's mean cross-entropy: sets every parameter's
        ``.grad`` and returns the per-member loss ``[N]``. The same numbers as autograd (tested), without its
        per-op bookkeeping, which is most of a small MLP's step on a CPU.

        On the CPU each member runs through the 2-d kernels a population of one uses (one member at a time), so
        a member's gradients are bit-identical whatever the population size; elsewhere the members are batched
        (:func:`batched_loss_and_grads`; ``compiled``: its ``torch.compile``d version, compiled once per process
        and shape, so every population of that shape reuses it)."""
        n, b = self.n, x.shape[1]
        h = x.reshape(x.shape[0], b, -1)
        if h.shape[0] != n:
            h = h.expand(n, -1, -1)
        ys = y.reshape(n, -1) if y.numel() == n * b else y.reshape(1, -1).expand(n, -1)  # shared labels too
        if h.device.type == "cpu" or (n == 1 and not compiled):
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
        fn = _compiled_batched() if compiled else batched_loss_and_grads
        loss, grads = fn([layer.weight for layer in self.layers], [layer.bias for layer in self.layers], h, ys)
        for layer, (gw, gb) in zip(self.layers, grads, strict=True):
            layer.weight.grad, layer.bias.grad = gw, gb
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


def batched_loss_and_grads(weights: list[Tensor], biases: list[Tensor], h: Tensor,
                           y: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """An MLP population's per-member mean cross-entropy and its hand-written backward, members batched.

    ``weights[l]`` ``[N, out, in]`` and ``biases[l]`` ``[N, out]`` per layer (ReLU between layers), ``h`` the
    flat inputs ``[N, B, in]``, ``y`` the labels ``[N, B]``. Returns the loss ``[N]`` and ``(weight grad, bias
    grad)`` per layer, input layer first: the gradients autograd gives for the sum of the members' losses.
    A plain function of tensors (no module, no side effects), so ``torch.compile`` fuses its pointwise work and
    reuses the compiled code for every population of the same shapes."""
    n, b = h.shape[0], h.shape[1]
    inputs, pre = [], []
    last = len(weights) - 1
    for li, (w, bias) in enumerate(zip(weights, biases, strict=True)):
        inputs.append(h)
        z = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))
        pre.append(z)
        h = z.relu() if li < last else z
    logp = h.log_softmax(-1)
    target = y.unsqueeze(-1)
    loss = -logp.gather(-1, target).mean(-2).reshape(n)
    d = logp.exp().scatter_add(-1, target, torch.full(target.shape, -1.0, dtype=logp.dtype, device=logp.device))
    d = d * (1.0 / b)
    grads: list[tuple[Tensor, Tensor]] = []
    for li in range(last, -1, -1):
        grads.append((torch.bmm(d.transpose(1, 2), inputs[li]), d.sum(1)))
        if li:
            d = torch.ops.aten.threshold_backward(torch.bmm(d, weights[li]), pre[li - 1], 0)
    return loss, grads[::-1]


_COMPILED: list = []


def _compiled_batched() -> object:
    """:func:`batched_loss_and_grads` under ``torch.compile`` (made once per process)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(batched_loss_and_grads, dynamic=False))
    return _COMPILED[0]
