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


def _autograd(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    n = model.n
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(n, -1).mean(1)
    loss.sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    return loss.detach(), grads


@pytest.mark.parametrize("compiled", [False, True])
def test_batched_function_equals_autograd(compiled: bool) -> None:
    """The batched hand-written step (what a GPU population uses), eager and under torch.compile (one function
    of tensors, compiled once per process and shape), gives autograd's losses and gradients."""
    from lth.models.fc import _compiled_batched, batched_loss_and_grads

    torch.manual_seed(0)
    n = 3
    model = build_model("fc_20_10", n, (1, 4, 4), 5)
    x = torch.randn(n, 7, 16)
    y = torch.randint(0, 5, (n, 7))
    loss, expected = _autograd(model, x, y)
    fn = _compiled_batched() if compiled else batched_loss_and_grads
    with torch.no_grad():
        got, grads = fn([layer.weight for layer in model.layers], [layer.bias for layer in model.layers], x, y)
    assert torch.allclose(got, loss, atol=1e-6)
    for li, (gw, gb) in enumerate(grads):
        assert torch.allclose(gw, expected[f"layers.{li}.weight"], atol=1e-6)
        assert torch.allclose(gb, expected[f"layers.{li}.bias"], atol=1e-6)
    if compiled:  # a second population of the same shapes reuses the compiled code
        import torch._dynamo.utils as du

        before = du.counters["stats"]["unique_graphs"]
        other = build_model("fc_20_10", n, (1, 4, 4), 5)
        with torch.no_grad():
            fn([layer.weight for layer in other.layers], [layer.bias for layer in other.layers], x, y)
        assert du.counters["stats"]["unique_graphs"] == before


def test_stepper_backward_choice(tmp_path) -> None:
    """``mlp_backward`` picks the hand-written or the autograd backward; both train to the same weights."""
    import dataclasses

    from lth.data import load_dataset
    from lth.engine.train import EngineOptions, Job, train_population
    from lth.presets import get_preset
    from lth.spec import Step
    from lth.store import RunDir

    spec = get_preset("digits_mlp").spec
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(20, "it")))
    data = load_dataset(spec.data)
    finals = []
    for how in ("manual", "autograd"):
        job = Job(spec, 0, tmp_path / how)
        train_population([job], data, EngineOptions(device="cpu", checkpoint_every=None, mlp_backward=how))
        finals.append(RunDir(job.run_dir).load_state("final"))
    for k in finals[0]:
        assert torch.allclose(finals[0][k], finals[1][k], atol=1e-5), k
    with pytest.raises(ValueError, match="mlp_backward"):
        train_population([Job(spec, 0, tmp_path / "bad")], data,
                         EngineOptions(device="cpu", checkpoint_every=None, mlp_backward="fast"))


@pytest.mark.parametrize("labels", ["per member", "shared [1, B]", "shared [B]"])
def test_batched_path_takes_the_labels_the_cpu_path_takes(labels: str) -> None:
    """Off the CPU (here the meta device: shapes only) the members are batched; labels shared by every member
    (``[1, B]`` or ``[B]``, as the CPU path accepts) give each member its loss, as per-member labels do."""
    n, b = 3, 7
    model = build_model("fc_20_10", n, (1, 4, 4), 5).to("meta")
    x = torch.empty(1, b, 1, 4, 4, device="meta")
    shape = {"per member": (n, b), "shared [1, B]": (1, b), "shared [B]": (b,)}[labels]
    y = torch.empty(shape, dtype=torch.long, device="meta")
    loss = model.loss_and_grads(x, y)
    assert loss.shape == (n,)
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.shape
