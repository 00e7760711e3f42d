"""torchvision's ResNets (three stems) and Inception-v3 as lth populations: the seeds' parameter counts, forward
shapes at each dataset's image size, what is prunable, widths and bad input."""

from __future__ import annotations

import pytest
import torch
import torchvision

from lth.errors import UserError
from lth.models import build_model, resolve
from lth.models.torchvision_nets import TorchvisionResNet, inception_module, resnet_module


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _shapes(m: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


@pytest.mark.parametrize(("depth", "tv"), [(18, torchvision.models.resnet18), (50, torchvision.models.resnet50),
                                           (101, torchvision.models.resnet101)])
def test_width_one_imagenet_stem_is_torchvisions_network(depth: int, tv) -> None:
    with torch.device("meta"):  # shapes only: full-size networks cost nothing
        mine, theirs = TorchvisionResNet(depth, 1000), tv(num_classes=1000)
        assert _shapes(mine) == _shapes(theirs)
        assert [type(m) for m in mine.modules()] == [TorchvisionResNet if type(m) is torchvision.models.ResNet
                                                     else type(m) for m in theirs.modules()]


@pytest.mark.parametrize(("make", "expected"), [
    # Frankle et al. 2020, Table 1: ResNet-50 25.5M (torchvision's count 25,557,032)
    (lambda: resnet_module(50, "imagenet", (3, 224, 224), 1000), 25_557_032),
    # Ma et al. 2021, Table 2: RN-18 on CIFAR-100 11.22M; RN-18 / RN-50 on Tiny-ImageNet and ImageNet 11.68M /
    # 25.56M (the table's figures are torchvision's 1000-class counts: 200 classes drop 513 x 800 weights, the
    # small stem's 3x3 first conv 3 x 64 x 40 more)
    (lambda: resnet_module(18, "small", (3, 32, 32), 100), 11_220_132),
    (lambda: resnet_module(18, "imagenet", (3, 224, 224), 1000), 11_689_512),
    (lambda: resnet_module(18, "small", (3, 64, 64), 200), 11_689_512 - 513 * 800 - 3 * 64 * 40),
    (lambda: resnet_module(50, "small", (3, 64, 64), 200), 25_557_032 - 2049 * 800 - 3 * 64 * 40),
    # Inception-v3 without the auxiliary head: torchvision's 27,161,264 less the head's 3,326,696 (the paper's
    # 27.1M counts the head)
    (lambda: inception_module((3, 299, 299), 1000), 23_834_568),
])
def test_parameter_counts(make, expected: int) -> None:
    with torch.device("meta"):
        assert _count(make()) == expected


def test_inception_counts_match_torchvision_without_and_with_the_aux_head() -> None:
    with torch.device("meta"):
        ours = _count(inception_module((3, 299, 299), 1000))
        assert ours == _count(torchvision.models.inception_v3(aux_logits=False, init_weights=False))
        assert round(_count(torchvision.models.inception_v3(aux_logits=True, init_weights=False)) / 1e6, 1) == 27.2


@pytest.mark.parametrize(("name", "shape", "width"), [
    ("tiny_resnet_18", (3, 64, 64), 0.0625),    # Tiny-ImageNet
    ("cifar_resnet_18", (3, 32, 32), 0.0625),   # CIFAR-100
    ("imagenet_resnet_50", (3, 64, 64), 0.0625),
])
def test_population_forward_shapes(name: str, shape: tuple[int, ...], width: float) -> None:
    model = build_model(name, 2, shape, 7, width=width)
    assert model.path == "fx"  # the fast path: grouped convolutions, not vmap
    assert model(torch.randn(1, 3, *shape)).shape == (2, 3, 7)
    assert model(torch.randn(2, 3, *shape)).shape == (2, 3, 7)


@pytest.mark.parametrize(("make", "side"), [
    (lambda: resnet_module(18, "imagenet", (3, 224, 224), 7, width=0.0625), 224),  # ImageNet crops
    (lambda: resnet_module(50, "imagenet", (3, 224, 224), 7, width=0.0625), 224),
    (lambda: resnet_module(50, "small", (3, 64, 64), 7, width=0.0625), 64),
    (lambda: inception_module((3, 299, 299), 7, width=0.0625), 299),              # Inception's 299x299
])
def test_forward_shapes_at_full_image_size(make, side: int) -> None:
    m = make().eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, side, side)).shape == (2, 7)


def test_small_stem_keeps_the_resolution_the_imagenet_stem_divides_by_four() -> None:
    feats: dict[str, tuple[int, ...]] = {}
    for stem in ("imagenet", "small"):
        m = resnet_module(18, stem, (3, 64, 64), 10, width=0.125)
        m.layer1.register_forward_hook(lambda _m, _i, out, stem=stem: feats.__setitem__(stem, tuple(out.shape)))
        m.eval()
        m(torch.randn(1, 3, 64, 64))
    assert feats["small"][-2:] == (64, 64) and feats["imagenet"][-2:] == (16, 16)
    small = resnet_module(18, "small", (3, 64, 64), 10)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)


@pytest.mark.parametrize(("name", "shape", "width", "layers"), [
    ("cifar_resnet_18", (3, 8, 8), 0.125, 1 + 16 + 3 + 1),    # stem, 8 blocks x 2, 3 shortcuts, fc
    ("imagenet_resnet_50", (3, 32, 32), 0.0625, 1 + 48 + 4 + 1),  # stem, 16 blocks x 3, 4 shortcuts, fc
    ("inception_v3", (3, 75, 75), 0.0625, 94 + 1),
])
def test_prunable_are_every_conv_and_linear_weight_first_conv_and_fc_included(name, shape, width, layers) -> None:
    model = build_model(name, 1, shape, 10, width=width)
    module = model.member_module(0)
    want = {f"{k}.weight" for k, m in module.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)}
    assert set(model.prunable()) == want and len(want) == layers
    assert model.output_layer == "fc.weight" and model.prunable_kinds()["fc.weight"] == "output"
    first = "conv1.weight" if "resnet" in name else "Conv2d_1a_3x3.conv.weight"
    assert model.prunable_kinds()[first] == "conv"
    assert not any(k.endswith("bias") or ".bn" in k for k in model.prunable())
    # a member's state is keyed by torchvision's own names and loads into the module
    module.load_state_dict(model.member_state(0))


def test_width_scales_every_stage_and_the_stem() -> None:
    m = resnet_module(50, "imagenet", (3, 224, 224), 10, width=0.25)
    assert m.conv1.out_channels == 16 and m.layer1[0].conv1.out_channels == 16
    assert m.layer4[-1].conv3.out_channels == 512 and m.fc.in_features == 512
    r18 = resnet_module(18, "small", (1, 28, 28), 10, width=0.5)  # one input channel
    assert r18.conv1.in_channels == 1 and r18.layer4[0].conv2.out_channels == 256 and r18.fc.in_features == 256
    inc = inception_module((3, 299, 299), 10, width=0.125)
    assert inc.Conv2d_1a_3x3.conv.in_channels == 3 and inc.Conv2d_1a_3x3.conv.out_channels == 4
    assert inc.fc.in_features == 256


def test_the_names_resolve_without_importing_torchvision() -> None:
    import subprocess
    import sys

    from lth.models import TV_RESNET_DEPTHS
    from lth.models.torchvision_nets import RESNET_LAYERS

    assert tuple(RESNET_LAYERS) == TV_RESNET_DEPTHS
    code = ("import sys, lth.models as m; m.resolve('imagenet_resnet_50'); m.resolve('inception_v3'); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # `import lth` and name checks stay free of torchvision
    assert resolve("imagenet_resnet_50") == ("tv_resnet", {"depth": 50, "stem": "imagenet"})
    assert resolve("tiny_resnet_18") == resolve("cifar_resnet18") == ("tv_resnet", {"depth": 18, "stem": "small"})
    assert resolve("inception_v3") == ("inception_v3", {})


@pytest.mark.parametrize(("name", "shape", "width", "fragment"), [
    ("imagenet_resnet_20", (3, 32, 32), 1.0, "18, 34, 50, 101, 152"),
    ("tv_resnet", (3, 32, 32), 1.0, "imagenet_resnet_50"),
    ("imagenet_resnet_18", (3, 16, 16), 1.0, "at least 32x32"),
    ("inception_v3", (3, 64, 64), 1.0, "at least 75x75"),
    ("inception_v3", (1, 299, 299), 1.0, "3-channel"),
    ("inception_v3", (3, 75, 75), 0.1, "multiples of 1/16"),
    ("cifar_resnet_18", (3, 32, 32), 1.0, "norm"),
])
def test_bad_input_is_one_line(name: str, shape: tuple[int, ...], width: float, fragment: str) -> None:
    norm = "groupnorm" if fragment == "norm" else "batchnorm"
    with pytest.raises(UserError) as e:
        build_model(name, 1, shape, 10, norm=norm, width=width)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "shape", "count", "layers"), [
    ("imagenet_resnet_50", (3, 224, 224), 25_557_032, 54),
    ("inception_v3", (3, 299, 299), 23_834_568, 95),
])
def test_planning_builds_full_size_networks_on_the_meta_device(name, shape, count: int, layers: int) -> None:
    """Studies plan with :func:`shape_model` (parameter counts, layer kinds): a module made a population builds
    there on the meta device (no values to check or draw), not as a full network on the CPU."""
    from lth.models import num_params, shape_model
    from lth.prune import kinds_of

    net = shape_model(name, shape, 1000)
    assert all(p.is_meta for p in net.parameters())
    assert net.num_params() == count == num_params(name, shape, 1000)
    assert len(kinds_of(net)) == layers and kinds_of(net)["fc.weight"] == "output"


@pytest.mark.parametrize(("name", "shape"), [("inception_v3", (3, 75, 75)), ("cifar_resnet_18", (3, 16, 16))])
def test_train_mode_population_computes_what_each_member_module_computes(name: str, shape) -> None:
    """Train mode (BatchNorm on batch statistics, per member): logits, gradients and running statistics of a
    population of 2 equal those of each member as a plain torchvision module (dropout off: its draws differ), in
    float64 (batch statistics of 4 examples at 1x1 magnify float32 rounding of the grouped kernels to 1e-3)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model(name, 2, shape, 5, width=0.0625)
    for i in range(2):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(10 + i))
    members = [model.member_module(i).double() for i in range(2)]
    model.double()
    x, y = torch.randn(2, 4, *shape, dtype=torch.float64), torch.randint(0, 5, (2, 4))
    for m in (model, *members):
        m.train()
        for d in m.modules():
            if isinstance(d, torch.nn.Dropout):
                d.eval()
    out = model(x)
    sum(F.cross_entropy(out[i], y[i]) for i in range(2)).backward()
    grads = dict(model.named_parameters())
    for i, m in enumerate(members):
        ref = m(x[i])
        F.cross_entropy(ref, y[i]).backward()
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-9)
        for k, p in m.named_parameters():
            torch.testing.assert_close(grads[k].grad[i], p.grad, rtol=1e-7, atol=1e-9, msg=k)
        for k, b in m.state_dict().items():
            if k.endswith(("running_mean", "running_var")):
                torch.testing.assert_close(model.state_dict()[k][i], b, rtol=0, atol=1e-9, msg=k)
