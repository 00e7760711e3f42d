"""The MLP's hand-written backward gives autograd's loss and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lth.models import build_model


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("shared", [False, True])
def test_manual_backward_equals_autograd(n: int, shared: bool) -> None:
    torch.manual_seed(0)
    model = build_model("fc_20_10", n, (1, 4, 4), 5)
    for i in range(n):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
    x = torch.randn(1 if shared else n, 7, 1, 4, 4)
    y = torch.randint(0, 5, (n, 7))
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(n * 7, 5), y.reshape(-1), reduction="none").view(n, 7).mean(1)
    loss.sum().backward()
    expected = {k: p.grad.clone() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    got = model.loss_and_grads(x, y)
    assert torch.allclose(got, loss.detach(), atol=1e-6)
    for k, p in model.named_parameters():
        assert p.grad.shape == p.shape
        assert torch.allclose(p.grad, expected[k], atol=1e-6), k
