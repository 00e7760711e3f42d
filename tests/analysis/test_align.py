"""Weight matching: a randomly permuted copy of a network is recovered exactly and has no barrier."""

from __future__ import annotations

import pytest
import torch

from lth.analysis.align import align, apply_permutation, permutation_spec, weight_matching
from lth.analysis.stability import instability
from lth.errors import UserError
from lth.models import build_model
from lth.spec import ModelHparams

CASES = [
    ("fc_20_12", (1, 4, 4), "none", 1.0),
    ("lenet_300_100", (1, 5, 5), "none", 0.1),
    ("conv2", (3, 8, 8), "none", 0.125),  # flatten of 8 channels x 4 x 4
    ("conv4", (3, 8, 8), "none", 0.125),
    ("lenet5", (1, 20, 20), "none", 1.0),  # flatten of 16 channels x 2 x 2
    ("vgg_11", (3, 16, 16), "batchnorm", 0.0625),
]


def _net(name, shape, norm, width, seed):
    torch.manual_seed(seed)
    pop = build_model(name, 1, shape, 4, norm, width)
    for m in pop.modules():  # non-trivial biases and BN statistics, so that misplaced ones would show
        if getattr(m, "bias", None) is not None:
            m.bias.data.normal_()
        if hasattr(m, "running_mean"):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return pop.member_state(0)


def _logits(name, shape, norm, width, state, x):
    net = build_model(name, 1, shape, 4, norm, width)
    net.load_member(0, state)
    net.eval()
    with torch.no_grad():
        return net(x.unsqueeze(0))[0]


@pytest.mark.parametrize("name,shape,norm,width", CASES, ids=[c[0] for c in CASES])
def test_permuted_copy_is_recovered(name, shape, norm, width):
    a = _net(name, shape, norm, width, 0)
    spec = permutation_spec(name, a)
    g = torch.Generator().manual_seed(1)
    sizes = {p: spec.view(k, a[k]).shape[ax] for p, [(k, ax), *_] in spec.perms.items()}
    perms = {p: torch.randperm(n, generator=g) for p, n in sizes.items()}
    assert all(not torch.equal(q, torch.arange(q.numel())) for q in perms.values())
    b = apply_permutation(spec, a, perms)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(9, *shape, generator=g)
    base = _logits(name, shape, norm, width, a, x)
    # a permutation of the hidden units leaves the function unchanged (this checks the flatten order)
    torch.testing.assert_close(_logits(name, shape, norm, width, b, x), base, rtol=1e-5, atol=1e-5)
    found, aligned = weight_matching(name, a, b)
    assert all(torch.equal(aligned[k], a[k]) for k in a)  # weights recovered exactly
    torch.testing.assert_close(_logits(name, shape, norm, width, aligned, x), base, rtol=1e-5, atol=1e-5)
    y = torch.randint(0, 4, (9,), generator=g)
    hp = ModelHparams(model=name, norm=norm, width=width)
    res = instability(hp, a, aligned, x, y, alphas=[0.0, 0.5, 1.0], example_shape=shape, num_classes=4)
    assert res.instability == 0.0


def test_masks_follow_the_weights():
    a = _net("fc_20_12", (6,), "none", 1.0, 3)
    spec = permutation_spec("fc_20_12", a)
    mask = {k: a[k] > 0 for k in ("layers.0.weight", "layers.1.weight")}
    perms = {"layers.0": torch.randperm(20), "layers.1": torch.randperm(12)}
    b, mb = apply_permutation(spec, a, perms), apply_permutation(spec, mask, perms)
    assert all(torch.equal(mb[k], b[k] > 0) for k in mb)


def test_independent_networks_align_closer():
    a, b = _net("fc_20_12", (6,), "none", 1.0, 4), _net("fc_20_12", (6,), "none", 1.0, 5)
    aligned = align("fc_20_12", a, b)
    dist = lambda s: sum(float((a[k] - s[k]).pow(2).sum()) for k in a)  # noqa: E731
    assert dist(aligned) < dist(b)
    x = torch.randn(7, 6)
    torch.testing.assert_close(_logits("fc_20_12", (6,), "none", 1.0, aligned, x),
                               _logits("fc_20_12", (6,), "none", 1.0, b, x), rtol=1e-5, atol=1e-5)


def test_resnet_refused_by_name():
    a = build_model("resnet_8", 1, (3, 8, 8), 4, "batchnorm", 0.25).member_state(0)
    with pytest.raises(UserError, match="resnet_8.*residual.*allowed"):
        weight_matching("resnet_8", a, a)
