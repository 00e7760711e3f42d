"""Evaluating lists of states as populations: equal to one network at a time, chunking, BatchNorm recomputation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lth.engine.evaluate import evaluate_states, recompute_batchnorm
from lth.errors import UserError
from lth.models import build_model
from lth.spec import ModelHparams


def _states(name: str, shape: tuple[int, ...], k: int, norm: str = "batchnorm", width: float = 0.25,
            seed: int = 0) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    pop = build_model(name, k, shape, 5, norm, width)
    for m in pop.modules():  # make BN buffers and affine parameters non-trivial
        if hasattr(m, "running_mean"):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
    return [pop.member_state(i) for i in range(k)]


def _alone(name: str, shape: tuple[int, ...], state: dict, x: torch.Tensor, y: torch.Tensor, norm: str = "batchnorm",
           width: float = 0.25) -> tuple[float, float]:
    """One network, built alone, evaluated on the whole set at once."""
    net = build_model(name, 1, shape, 5, norm, width)
    net.load_member(0, state)
    net.eval()
    with torch.no_grad():
        logits = net(x.unsqueeze(0))[0]
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).double().mean().item()


@pytest.mark.parametrize("name,shape,norm", [("fc_12_8", (6,), "batchnorm"), ("conv2", (3, 8, 8), "batchnorm"),
                                              ("resnet_8", (3, 8, 8), "batchnorm")])
def test_population_equals_each_state_alone(name, shape, norm):
    states = _states(name, shape, 5, norm)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(37, *shape, generator=g), torch.randint(0, 5, (37,), generator=g)
    hp = ModelHparams(model=name, norm=norm, width=0.25)
    # max_population 2 splits the five states into 2 + 2 + 1; a small chunk budget splits the 37 examples in 3
    res = evaluate_states(hp, states, x, y, example_shape=shape, num_classes=5, max_population=2,
                          chunk_budget=2 * 16 * x[0].numel())
    assert set(res) == {"loss", "accuracy", "error"} and res["loss"].shape == (5,)
    for i, s in enumerate(states):
        loss, acc = _alone(name, shape, s, x, y, norm)
        assert res["loss"][i].item() == pytest.approx(loss, rel=1e-5, abs=1e-6)
        assert res["accuracy"][i].item() == pytest.approx(acc, abs=1e-12)
        assert res["error"][i].item() == pytest.approx(1 - acc, abs=1e-12)
    # grouping does not change a result
    whole = evaluate_states(hp, states, x, y, example_shape=shape, num_classes=5)
    torch.testing.assert_close(whole["loss"], res["loss"], rtol=1e-5, atol=1e-6)
    assert torch.equal(whole["accuracy"], res["accuracy"])


def test_batchnorm_recomputed_by_hand():
    """The first BN layer of a ResNet: running mean / var = average over batches of the batch mean / unbiased
    batch variance of the stem convolution's output, computed here directly with conv2d."""
    shape = (3, 6, 6)
    states = _states("resnet_8", shape, 2)
    g = torch.Generator().manual_seed(2)
    data = torch.randn(23, *shape, generator=g)
    pop = build_model("resnet_8", 2, shape, 5, "batchnorm", 0.25)
    for i, s in enumerate(states):
        pop.load_member(i, s)
    used = recompute_batchnorm(pop, data, batches=3, batch_size=7)
    assert used == 3 and not pop.training
    for i, s in enumerate(states):
        means, vars_ = [], []
        for t in range(3):
            z = F.conv2d(data[7 * t:7 * (t + 1)], s["conv.weight"], None, padding=1)
            means.append(z.mean(dim=(0, 2, 3)))
            vars_.append(z.var(dim=(0, 2, 3), unbiased=True))
        torch.testing.assert_close(pop.norm.running_mean[i], torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pop.norm.running_var[i], torch.stack(vars_).mean(0), rtol=1e-5, atol=1e-6)
    assert pop.norm.momentum == 0.1  # restored


def test_evaluate_states_recomputes_bn_without_touching_states():
    shape = (3, 6, 6)
    states = _states("resnet_8", shape, 3)
    before = [{k: v.clone() for k, v in s.items()} for s in states]
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, *shape, generator=g), torch.randint(0, 5, (20,), generator=g)
    bn = torch.randn(32, *shape, generator=g)
    hp = ModelHparams(model="resnet_8", width=0.25)
    res = evaluate_states(hp, states, x, y, example_shape=shape, num_classes=5, bn_data=bn, bn_batches=2,
                          bn_batch_size=16, max_population=2)
    for s, b in zip(states, before, strict=True):
        assert all(torch.equal(s[k], b[k]) for k in s)
    # the same as recomputing by hand on one network and evaluating it
    for i, s in enumerate(states):
        net = build_model("resnet_8", 1, shape, 5, "batchnorm", 0.25)
        net.load_member(0, s)
        recompute_batchnorm(net, bn, 2, 16)
        loss, acc = _alone("resnet_8", shape, net.member_state(0), x, y)
        assert res["loss"][i].item() == pytest.approx(loss, rel=1e-5)
        assert res["accuracy"][i].item() == pytest.approx(acc)
    # and the recomputation matters: the stored (random) statistics give another loss
    plain = evaluate_states(hp, states, x, y, example_shape=shape, num_classes=5)
    assert not torch.allclose(plain["loss"], res["loss"])


def test_bad_input():
    hp = ModelHparams(model="fc_4", width=1.0)
    x, y = torch.randn(3, 2), torch.zeros(3, dtype=torch.long)
    with pytest.raises(UserError, match="no states"):
        evaluate_states(hp, [], x, y, example_shape=(2,), num_classes=5)
    s = _states("fc_4", (2,), 1, width=1.0)
    with pytest.raises(UserError, match="--precision"):
        evaluate_states(hp, s, x, y, example_shape=(2,), num_classes=5, precision="fp8")


def test_one_by_one_equals_population_after_bn_recompute():
    """States evaluated one at a time after the population recomputed their BN statistics equal the grouped
    evaluation (the CUDA default for convnets), BN recomputation included."""
    states = _states("resnet_8", (3, 8, 8), 3)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 3, 8, 8, generator=g), torch.randint(5, (40,), generator=g)
    bn = torch.randn(64, 3, 8, 8, generator=g)
    kw = dict(example_shape=(3, 8, 8), num_classes=5, bn_data=bn, bn_batches=4, bn_batch_size=16)
    grouped = evaluate_states(ModelHparams(model="resnet_8", width=0.25), states, x, y, one_by_one=False, **kw)
    alone = evaluate_states(ModelHparams(model="resnet_8", width=0.25), states, x, y, one_by_one=True, **kw)
    assert torch.allclose(grouped["loss"], alone["loss"], atol=1e-6)
    assert torch.equal(grouped["accuracy"], alone["accuracy"])
    # and not the stored statistics: evaluation without recomputation differs
    stale = evaluate_states(ModelHparams(model="resnet_8", width=0.25), states, x, y, example_shape=(3, 8, 8),
                            num_classes=5, one_by_one=True)
    assert not torch.allclose(stale["loss"], alone["loss"], atol=1e-3)
