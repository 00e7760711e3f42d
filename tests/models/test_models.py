"""The model zoo: parameter counts, the population contract, per-member equivalence, initialisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from lth.errors import UserError
from lth.models import MODELS, build_model, model_names, resolve
from lth.models.layers import PopConv2d, PopLinear
from lth.models.resnet import groupnorm_groups


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    shape: tuple[int, ...]
    norm: str = "batchnorm"
    width: float = 0.25

    @property
    def id(self) -> str:
        return f"{self.name}-{self.norm}-w{self.width}"


# One or more small cases per registry family; test_cases_cover_registry fails if a family has none.
CASES = [
    Case("fc", "fc_300_100", (1, 28, 28)),
    Case("fc", "lenet_300_100", (1, 8, 8)),
    Case("fc", "fc_20", (5,), width=1.0),
    Case("conv2", "conv2", (3, 16, 16)),
    Case("conv4", "conv4", (3, 16, 16)),
    Case("conv6", "conv6", (3, 16, 16)),
    Case("lenet5", "lenet5", (1, 28, 28)),
    Case("lenet5", "lenet5", (3, 32, 32)),
    *(Case("resnet", "resnet_8", (3, 8, 8), norm=nm)
      for nm in ("batchnorm", "fixup", "groupnorm", "none", "weightnorm")),
    Case("resnet", "resnet20", (3, 8, 8), norm="fixup"),
    Case("resnet", "resnet_8_plain", (3, 8, 8)),
    Case("resnet", "resnet14_plain", (3, 8, 8), norm="weightnorm"),
    Case("vgg", "vgg_16", (3, 16, 16), width=0.125),
    Case("vgg", "vgg11", (3, 16, 16), norm="none", width=0.125),
    Case("tv_resnet", "cifar_resnet_18", (3, 8, 8), width=0.125),
    Case("tv_resnet", "imagenet_resnet_50", (3, 32, 32), width=0.0625),
    Case("inception_v3", "inception_v3", (3, 75, 75), width=0.0625),
    Case("mobilenet_v1", "mobilenet_v1", (3, 32, 32), width=0.125),  # 2x2 at the end: BN of 1x1 x 2 kills grads
]
IDS = [c.id for c in CASES]
CLASSES = 10


def test_cases_cover_registry() -> None:
    assert {c.family for c in CASES} == set(MODELS)
    for c in CASES:
        assert resolve(c.name)[0] == c.family


def _build(c: Case, n: int, seed: int = 0) -> torch.nn.Module:
    model = build_model(c.name, n, c.shape, CLASSES, norm=c.norm, width=c.width)
    for i in range(n):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(seed + i))
    return model


# -- parameter counts (full size; building without a forward is cheap)

@pytest.mark.parametrize(("name", "shape", "norm", "expected", "rel"), [
    ("lenet_300_100", (1, 28, 28), "batchnorm", 266_610, 0.0),
    ("conv2", (3, 32, 32), "batchnorm", 4.3e6, 0.02),
    ("conv4", (3, 32, 32), "batchnorm", 2.4e6, 0.02),
    # Frankle & Carbin's Table 1 says 1.7M, but the architecture it lists (64,64,P,128,128,P,256,256,P,
    # FC 256,256,10 on 3x32x32) has 1.15M conv + 1.11M FC parameters: the table's figure is inconsistent.
    ("conv6", (3, 32, 32), "batchnorm", 2_262_602, 0.0),
    ("lenet5", (1, 28, 28), "batchnorm", 44_426, 0.0),
    ("lenet5", (3, 32, 32), "batchnorm", 62_006, 0.0),
    ("resnet_20", (3, 32, 32), "batchnorm", 272_474, 0.0),  # open_lth's ResNet-20, exactly
    ("resnet_20", (3, 32, 32), "groupnorm", 272_474, 0.0),
    ("resnet_20", (3, 32, 32), "fixup", 0.27e6, 0.02),
    ("vgg_16", (3, 32, 32), "batchnorm", 14.7e6, 0.02),
    ("vgg_16", (3, 32, 32), "none", 14.7e6, 0.02),
])
def test_param_counts(name: str, shape: tuple[int, ...], norm: str, expected: float, rel: float) -> None:
    model = build_model(name, 1, shape, CLASSES, norm=norm)
    assert model.num_params() == pytest.approx(expected, rel=rel, abs=0)


def test_param_count_is_per_member() -> None:
    model = build_model("fc_300_100", 3, (1, 28, 28), CLASSES)
    assert model.num_params() == 266_610
    assert model.num_params(member_only=False) == 3 * 266_610


# -- the population contract, for every registry entry

@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_contract_and_training_step(c: Case) -> None:
    n, b = 2, 2
    model = _build(c, n)
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.shape[0] == n, name
    assert model.output_layer in model.prunable()
    assert dict(model.named_parameters())[model.output_layer].shape[1] == CLASSES

    # shared input [1, B, ...] and per-member input [N, B, ...]
    assert model(torch.randn(1, b, *c.shape)).shape == (n, b, CLASSES)

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    x, y = torch.randn(n, b, *c.shape), torch.randint(0, CLASSES, (n, b))
    for _ in range(3):  # Fixup's zero layers let gradients reach every weight only from the third step on
        opt.zero_grad()
        logits = model(x)
        assert logits.shape == (n, b, CLASSES)
        loss = F.cross_entropy(logits.reshape(n * b, CLASSES), y.reshape(-1))
        loss.backward()
        opt.step()
    after = dict(model.named_parameters())
    for k in model.prunable():
        for i in range(n):
            assert not torch.equal(before[k][i], after[k][i]), f"{k}[{i}] did not change"


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_prunable_is_exactly_conv_and_linear_weights(c: Case) -> None:
    model = build_model(c.name, 1, c.shape, CLASSES, norm=c.norm, width=c.width)
    layers = (PopLinear, PopConv2d)
    layer_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, layers)}
    # independently: conv weights are [N, out, in, k, k], linear weights [N, out, in]; every other parameter
    # (biases, norm affines, Fixup scalars) has at most 2 dims
    by_shape = {name for name, p in model.named_parameters() if p.dim() >= 3}
    assert set(model.prunable()) == layer_weights == by_shape
    assert len(model.prunable()) == len(set(model.prunable()))


@pytest.mark.parametrize(("name", "layers"), [
    ("fc_300_100", 3), ("conv2", 5), ("conv4", 7), ("conv6", 9), ("lenet5", 5),
    ("resnet_20", 1 + 18 + 2 + 1), ("resnet_8", 1 + 6 + 2 + 1), ("vgg_11", 9), ("vgg_16", 14), ("vgg_19", 17),
])
def test_number_of_prunable_layers(name: str, layers: int) -> None:
    shape = (1, 28, 28) if name.startswith("fc") else (3, 32, 32)
    model = build_model(name, 1, shape, CLASSES, width=0.125)
    assert len(model.prunable()) == layers


# -- population equivalence: N members == N separate networks

EQUIV = [
    Case("fc", "fc_300_100", (1, 8, 8), width=1.0),
    Case("conv2", "conv2", (3, 8, 8), width=0.125),
    Case("lenet5", "lenet5", (1, 16, 16), width=1.0),
    Case("resnet", "resnet_8", (3, 8, 8), norm="batchnorm", width=0.5),
    Case("resnet", "resnet_8", (3, 8, 8), norm="fixup", width=0.5),
    Case("resnet", "resnet_8_plain", (3, 8, 8), norm="weightnorm", width=0.5),
    Case("resnet", "resnet_8", (3, 8, 8), norm="groupnorm", width=0.5),
    Case("vgg", "vgg_11", (3, 16, 16), norm="batchnorm", width=0.125),
]


def _singles(c: Case, k: int) -> list[torch.nn.Module]:
    singles = []
    for s in range(k):
        m = _build(c, 1, seed=100 + s)
        g = torch.Generator().manual_seed(200 + s)
        # move every parameter off its init (Fixup's zeros, BN's ones) so nothing is trivial
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        singles.append(m)
    return singles


def _population(c: Case, singles: list[torch.nn.Module]) -> torch.nn.Module:
    pop = build_model(c.name, len(singles), c.shape, CLASSES, norm=c.norm, width=c.width)
    for i, s in enumerate(singles):
        pop.load_member(i, s.member_state(0))
    return pop


def _assert_states_equal(pop: torch.nn.Module, singles: list[torch.nn.Module], atol: float) -> None:
    for i, s in enumerate(singles):
        mine, theirs = pop.member_state(i), s.member_state(0)
        assert mine.keys() == theirs.keys()
        for k in mine:
            torch.testing.assert_close(mine[k], theirs[k], atol=atol, rtol=0,
                                       msg=lambda m, i=i, k=k: f"member {i} {k}: {m}")


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """``|actual - expected| <= tol * max(1, max|expected|)`` elementwise: float rounding of the largest entry
    is the noise floor when the population uses a different (grouped / batched) kernel than a single net."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=tol * max(1.0, expected.abs().max().item()),
                               msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("c", EQUIV, ids=[c.id for c in EQUIV])
@pytest.mark.parametrize("shared", [False, True], ids=["own-input", "shared-input"])
def test_population_equals_separate_networks(c: Case, shared: bool, dtype: torch.dtype) -> None:
    # float64 shows the computation is the same up to rounding (1e-10); float32 checks what a user sees:
    # logits to 1e-5, gradients (which accumulate the grouped kernels' different summation order) to 1e-4
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    grad_tol = 1e-10 if dtype == torch.float64 else 1e-4
    k, b = 3, 4
    singles = [s.to(dtype) for s in _singles(c, k)]
    pop = _population(c, singles).to(dtype)
    _assert_states_equal(pop, singles, atol=0)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1 if shared else k, b, *c.shape, generator=gen).to(dtype)
    y = torch.randint(0, CLASSES, (k, b), generator=gen)

    def member_input(i: int) -> torch.Tensor:
        return x[0:1] if shared else x[i : i + 1]

    # train mode: logits, then BatchNorm running statistics updated per member
    pop.train()
    for s in singles:
        s.train()
    out = pop(x)
    refs = [s(member_input(i)) for i, s in enumerate(singles)]
    for i in range(k):
        _close(out[i], refs[i][0], tol, f"train-mode logits of member {i}")
    _assert_states_equal(pop, singles, atol=tol)
    if c.norm == "batchnorm" and c.family in ("resnet", "vgg"):
        rm = [v for name, v in pop.named_buffers() if name.endswith("running_mean")]
        assert rm and all(not torch.equal(v, torch.zeros_like(v)) for v in rm)  # updated by the forward
        assert not torch.allclose(rm[0][0], rm[0][1])  # members' statistics are their own

    # gradients per member (the population loss is the sum of the members' losses)
    loss = sum(F.cross_entropy(out[i], y[i]) for i in range(k))
    loss.backward()
    for i, s in enumerate(singles):
        F.cross_entropy(refs[i][0], y[i]).backward()
        grads = dict(s.named_parameters())
        for name, p in pop.named_parameters():
            _close(p.grad[i], grads[name].grad[0], grad_tol, f"grad of member {i} {name}")

    # eval mode (uses the running statistics gathered above)
    pop.eval()
    for s in singles:
        s.eval()
    with torch.no_grad():
        out = pop(x)
        for i, s in enumerate(singles):
            _close(out[i], s(member_input(i))[0], tol, f"eval-mode logits of member {i}")


# -- initialisation

INIT_CASES = [
    Case("fc", "fc_300_100", (1, 8, 8)),
    Case("conv2", "conv2", (3, 8, 8)),
    Case("resnet", "resnet_8", (3, 8, 8), norm="batchnorm"),
    Case("resnet", "resnet_8", (3, 8, 8), norm="fixup"),
    Case("vgg", "vgg_11", (3, 16, 16), width=0.125),
]


@pytest.mark.parametrize("init", ["kaiming_normal", "xavier_uniform"])
@pytest.mark.parametrize("c", INIT_CASES, ids=[c.id for c in INIT_CASES])
def test_init_member(c: Case, init: str) -> None:
    model = build_model(c.name, 3, c.shape, CLASSES, norm=c.norm, width=c.width)

    def init_member(i: int, seed: int) -> None:
        model.init_member(i, init, torch.Generator().manual_seed(seed))

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    init_member(0, 1)
    init_member(1, 1)
    s0, s1 = model.member_state(0), model.member_state(1)
    assert same(s0, s1)  # same seed -> identical member
    s2_before = model.member_state(2)
    init_member(2, 2)
    s2 = model.member_state(2)
    assert not same(s0, s2)  # different seed -> different member
    assert not same(s2_before, s2)
    for k in model.prunable():
        assert not torch.equal(s0[k], s2[k]) or not s0[k].any(), k  # only Fixup's zero layers may coincide
    # initialising member 2 touched neither member 0 nor member 1
    assert same(model.member_state(0), s0) and same(model.member_state(1), s1)


def test_fixup_init() -> None:
    n = 2
    model = build_model("resnet_20", n, (3, 32, 32), CLASSES, norm="fixup")
    blocks = list(model.blocks)
    num_branches = len(blocks)
    assert num_branches == 9
    params = dict(model.named_parameters())
    for fresh in (True, False):  # as constructed, and after init_member
        if not fresh:
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_()  # make sure init_member really resets everything
            for i in range(n):
                model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
        for i in range(n):
            assert not model.fc.weight[i].any() and not model.fc.bias[i].any()
            for block in blocks:
                assert not block.conv2.weight[i].any()
                for s in (block.bias1a, block.bias1b, block.bias2a, block.bias2b):
                    assert s.weight[i].item() == 0.0
                assert block.scale.weight[i].item() == 1.0
            assert model.bias1.weight[i].item() == 0.0 and model.bias2.weight[i].item() == 0.0
    # scaled branch convs: kaiming std * L^(-1/2); shortcut 1x1 convs: plain kaiming std
    for i in range(n):
        for block in blocks:
            w = block.conv1.weight[i]
            expected = math.sqrt(2.0 / w[0].numel()) * num_branches ** -0.5
            assert w.std().item() == pytest.approx(expected, rel=0.06)
        shortcuts = [b.shortcut.weight[i] for b in blocks if b.shortcut is not None]
        assert len(shortcuts) == 2
        for w in shortcuts:
            assert w.std().item() == pytest.approx(math.sqrt(2.0 / w[0].numel()), rel=0.1)
        # pooled over all scaled convs the estimate is tight
        z = torch.cat([(b.conv1.weight[i] / math.sqrt(2.0 / b.conv1.weight[i][0].numel())).flatten()
                       for b in blocks])
        assert z.std().item() == pytest.approx(num_branches ** -0.5, rel=0.02)
    # the stem conv is not scaled
    w = params["conv.weight"][0]
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / w[0].numel()), rel=0.15)


def test_fixup_forward_starts_at_zero_logits() -> None:
    model = _build(Case("resnet", "resnet_8", (3, 8, 8), norm="fixup"), 2)
    assert not model(torch.randn(2, 3, 3, 8, 8)).any()


# -- names, widths, shapes, errors

def test_names_resolve() -> None:
    assert resolve("lenet_300_100") == resolve("fc_300_100") == ("fc", {"hidden": [300, 100]})
    assert resolve("fc_10_20_30") == ("fc", {"hidden": [10, 20, 30]})
    assert resolve("resnet_20") == resolve("resnet20") == ("resnet", {"depth": 20})
    assert resolve("vgg_16") == resolve("vgg16") == ("vgg", {"depth": 16})
    for name in model_names():
        resolve(name)


@pytest.mark.parametrize(("name", "fragment"), [
    ("fc", "hidden width"), ("fc_", "fc_"), ("fc_0", "at least 1"),
    ("resnet_21", "6n+2"), ("resnet_2", "6n+2"),
    ("vgg_15", "11, 13, 16, 19"), ("alexnet", "alexnet"), ("conv3", "conv3"), ("", "''"),
])
def test_bad_names(name: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        build_model(name, 1, (3, 32, 32), CLASSES)
    msg = str(info.value)
    assert "\n" not in msg and fragment in msg and repr(name) in msg and "resnet_<6n+2>" in msg


@pytest.mark.parametrize(("name", "shape", "norm", "width"), [
    ("vgg_16", (3, 8, 8), "batchnorm", 1.0),  # four pools need 16x16
    ("conv6", (3, 4, 4), "batchnorm", 1.0),
    ("lenet5", (1, 12, 12), "batchnorm", 1.0),
    ("conv2", (784,), "batchnorm", 1.0),  # not an image
    ("resnet_20", (3, 32), "batchnorm", 1.0),
    ("resnet_20", (3, 32, 32), "layernorm", 1.0),
    ("vgg_16", (3, 32, 32), "fixup", 1.0),
    ("conv2", (3, 32, 32), "groupnorm", 1.0),
    ("fc_300_100", (1, 28, 28), "batchnorm", 0.0),
])
def test_bad_shape_norm_or_width(name: str, shape: tuple[int, ...], norm: str, width: float) -> None:
    with pytest.raises(UserError) as info:
        build_model(name, 1, shape, CLASSES, norm=norm, width=width)
    assert "\n" not in str(info.value)


def test_width_multiplier() -> None:
    fc = build_model("fc_300_100", 1, (1, 28, 28), CLASSES, width=0.5)
    assert [layer.out_features for layer in fc.layers] == [150, 50, CLASSES]
    tiny = build_model("conv2", 1, (3, 32, 32), CLASSES, width=0.001)  # min 1
    assert [c.out_channels for c in tiny.convs] == [1, 1]
    assert [layer.out_features for layer in tiny.fc] == [1, 1, CLASSES]
    r = build_model("resnet_8", 1, (3, 32, 32), CLASSES, width=0.5)
    assert [b.conv2.out_channels for b in r.blocks] == [8, 16, 32]
    v = build_model("vgg_11", 1, (3, 32, 32), CLASSES, width=0.3)  # round(64 * 0.3) = 19
    assert v.convs[0].out_channels == 19 and v.fc.in_features == round(512 * 0.3)


def test_lenet5_flatten_follows_input() -> None:
    assert build_model("lenet5", 1, (1, 28, 28), CLASSES).fc[0].in_features == 16 * 4 * 4
    assert build_model("lenet5", 1, (3, 32, 32), CLASSES).fc[0].in_features == 16 * 5 * 5


def test_groupnorm_groups() -> None:
    assert [groupnorm_groups(c) for c in (1, 4, 16, 24, 32, 48, 64, 128)] == [1, 4, 16, 24, 32, 24, 32, 32]
    model = build_model("resnet_8", 1, (3, 8, 8), CLASSES, norm="groupnorm", width=0.75)  # 12/24/48 channels
    model(torch.randn(1, 2, 3, 8, 8))


def test_forward_rejects_wrong_input() -> None:
    model = build_model("conv2", 3, (3, 8, 8), CLASSES, width=0.125)
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(2, 2, 3, 8, 8))  # neither N nor 1 members
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(3, 2, 3, 16, 16))


def test_unknown_model_names_the_flag_and_the_registered_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # a newcomer's typo after `--plugin my_models.py`: the line names --model, the value and the models the plugin
    # registered (before, the registered ones were missing from "allowed")
    monkeypatch.setitem(MODELS, "small_mlp", MODELS["fc"])
    with pytest.raises(UserError) as e:
        resolve("small_mlpx")
    line = str(e.value)
    assert line.startswith("--model: ") and "'small_mlpx'" in line and "small_mlp" in line.split("allowed:")[1]
    assert "\n" not in line
    with pytest.raises(UserError, match="^--norm: unknown norm 'layernrom'"):
        build_model("fc_8", 1, (4,), 2, norm="layernrom")


@pytest.mark.parametrize("name,shape,norm,width", [("lenet_300_100", (1, 28, 28), "none", 1.0),
                                                   ("resnet_20", (3, 32, 32), "fixup", 0.5),
                                                   ("vgg_11", (3, 32, 32), "batchnorm", 0.25),
                                                   ("conv4", (3, 32, 32), "none", 1.5)])
def test_num_params_counts_what_build_model_builds(name: str, shape: tuple[int, ...], norm: str, width: float) -> None:
    from lth.models import num_params
    assert num_params(name, shape, 10, norm, width) == build_model(name, 1, shape, 10, norm, width).num_params()


def test_num_params_follows_a_name_registered_again_and_builds_on_cpu_when_meta_fails(monkeypatch) -> None:
    from lth.models import num_params

    class ReadsValue(torch.nn.Module):
        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.fc = torch.nn.Linear(4, hidden + int(self.scale.item()))  # .item() fails on the meta device

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    def family(hidden: int):
        def build(n, shape, k, *, norm, width):
            return MODELS["fc"](n, shape, k, hidden=[hidden], norm=norm, width=width)
        return build

    monkeypatch.setitem(MODELS, "counted", family(3))
    first = num_params("counted", (4,), 2)
    monkeypatch.setitem(MODELS, "counted", family(5))
    assert num_params("counted", (4,), 2) == first + 2 * (4 + 1 + 2)  # a cached count would be stale
    from lth.models import from_module
    monkeypatch.setitem(MODELS, "reads", from_module(lambda: ReadsValue(3)))
    assert num_params("reads", (4,), 4) == build_model("reads", 1, (4,), 4).num_params()
    with pytest.raises(UserError, match="no_such"):
        num_params("no_such_model", (4,), 2)


# -- ResNets without residual connections (Ma et al. 2021, Fig. 5) and weight normalisation (seed 000, Section 4)

def test_plain_resnet_has_no_shortcut_and_a_dead_block_cuts_the_signal() -> None:
    """Without residual connections every block is on the only path: zero one block's second conv (no norm, zero
    biases) and the output no longer depends on the input; with them, the identity path still carries it."""
    x = torch.randn(1, 4, 3, 8, 8)
    for name, depends in (("resnet_14", True), ("resnet_14_plain", False)):
        model = _build(Case("resnet", name, (3, 8, 8), norm="none"), 1)
        names = dict(model.named_parameters())
        assert any("shortcut" in k for k in names) == depends
        with torch.no_grad():
            model.blocks[1].conv2.weight.zero_()
            out = model(x)[0]
        assert (not torch.allclose(out, out[:1].expand_as(out))) == depends, name
    plain = build_model("resnet_20_plain", 1, (3, 32, 32), CLASSES)
    # ResNet-20 without its two 1x1 shortcut convs (and their BatchNorms): 272,474 - 2 * (16*32 + 2*32) - ...
    shortcuts = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert plain.num_params() == 272_474 - shortcuts
    assert resolve("resnet20_plain") == ("resnet", {"depth": 20, "residual": False})
    with pytest.raises(UserError, match="fixup.*residual"):
        build_model("resnet_8_plain", 1, (3, 8, 8), CLASSES, norm="fixup")


def test_weightnorm_starts_as_the_plain_network_and_ignores_the_direction_length() -> None:
    """w = g v / |v| with g = |v| at init: the same function as norm "none" from the same seed; scaling a unit's
    direction v changes nothing; a pruned (zero) v is a zero w; each unit's effective weight has norm g."""
    x = torch.randn(1, 4, 3, 8, 8)
    wn, plain = (_build(Case("resnet", "resnet_8", (3, 8, 8), norm=nm, width=0.5), 2) for nm in ("weightnorm", "none"))
    wn_state = {k: v for k, v in wn.state_dict().items() if not k.endswith("weight_g")}
    assert wn_state.keys() == plain.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, wn_state[k]), k
    torch.testing.assert_close(wn(x), plain(x), rtol=1e-5, atol=1e-6)
    conv = wn.blocks[0].conv1
    g = conv.weight_g.detach().clone()
    before = wn(x)
    with torch.no_grad():
        conv.weight.mul_(3.0)
        conv.weight[0, 2].zero_()
    torch.testing.assert_close(wn(x)[1], before[1], rtol=1e-5, atol=1e-6)
    w = conv.effective_weight().detach()
    assert torch.equal(w[0, 2], torch.zeros_like(w[0, 2]))
    norms = w.flatten(2).norm(dim=2)
    keep = torch.ones_like(norms, dtype=torch.bool)
    keep[0, 2] = False
    torch.testing.assert_close(norms[keep], g[keep])
    assert "blocks.0.conv1.weight_g" not in wn.prunable()
