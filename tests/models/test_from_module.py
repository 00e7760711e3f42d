"""Bring your own network: a plain nn.Module trains as a population through the engine and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import lth
from torch import Tensor, nn

from lth.data import load_dataset
from lth.engine.batches import EpochBatches
from lth.engine.train import EngineOptions, Job, train_population
from lth.errors import UserError
from lth.models import MODELS, build_model, register_module
from lth.models.from_module import from_module
from lth.plugins import load_plugins
from lth.prune import kinds_of
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))


class SmallCNN(nn.Module):
    """Conv-BN-ReLU, a residual add, pooling and a classifier under user-chosen names."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.res = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)
        h = F.relu(h + self.res(h))
        h = F.max_pool2d(h, 2)
        return self.head(h.view(h.size(0), -1))


class WithLayerNorm(nn.Module):
    """LayerNorm has no population layer: the vmap path runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.out = nn.Linear(64, 16), nn.LayerNorm(16), nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu(self.norm(self.fc1(x.flatten(1)))))


class Frozen(nn.Module):
    """A frozen first layer (``requires_grad=False``): kept in every state, never trained, never pruned."""

    def __init__(self) -> None:
        super().__init__()
        self.f, self.o = nn.Linear(64, 16), nn.Linear(16, 10)
        self.f.weight.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.o(F.relu(self.f(x.flatten(1))))


class Tied(nn.Module):
    """Weight tying: one Parameter used by two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)
        self.b.weight = self.a.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.o(F.relu(self.b(F.relu(self.a(x.flatten(1))))))


def _spec(model: str, steps: int = 24, **data) -> TrainSpec:
    return TrainSpec(DataHparams(dataset="digits", batch_size=16, **data), ModelHparams(model=model),
                     TrainHparams(optimizer="sgd", lr=0.1, training_steps=Step(steps, "it"),
                                  eval_every=Step(steps, "it")))


def _plain_sgd(module: nn.Module, data, spec: TrainSpec, order_seed: int, steps: int) -> nn.Module:
    """The module trained alone with an ordinary PyTorch loop on the member's batches."""
    n_train, bs = data.train_x.shape[0], spec.data.batch_size
    spe = n_train // bs
    batches = EpochBatches(1, n_train, bs, False, (0, 0), torch.device("cpu"))
    opt = torch.optim.SGD(module.parameters(), lr=spec.train.lr)
    module.train()
    for t in range(steps):
        if t % spe == 0:
            batches.fill(t // spe, [order_seed], [order_seed])
        xb, yb = batches.batch(data.train_x, data.train_y, t % spe)
        opt.zero_grad()
        F.cross_entropy(module(xb[0]), yb[0]).backward()
        opt.step()
    return module


@pytest.mark.parametrize(("factory", "path"), [(mlp, "fx"), (SmallCNN, "fx"), (SmallCNN, "vmap"), (Frozen, "fx"),
                                              (Frozen, "vmap"), (Tied, "vmap")])
def test_population_of_4_trains_like_the_module_alone(factory, path: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "own", from_module(factory, path=path))
    spec = _spec("own")
    data = load_dataset(spec.data)
    jobs = [Job(spec, r, tmp_path / f"r{r}") for r in range(4)]
    train_population(jobs, data, EngineOptions(device="cpu", checkpoint_every=None))
    assert build_model("own", 4, data.example_shape, 10).path == path
    for r in range(4):
        store = RunDir(tmp_path / f"r{r}")
        init, final = (store.load_tensors(Path(store.states()[k])) for k in ("init", "final"))
        alone = factory()
        alone.load_state_dict(init)  # the user's names, loaded strictly
        _plain_sgd(alone, data, spec, r, 24)
        for k, v in alone.state_dict().items():
            assert torch.allclose(final[k].to(v.dtype), v, atol=1e-4), (r, k)
    finals = [RunDir(tmp_path / f"r{r}").load_tensors(Path(RunDir(tmp_path / f"r{r}").states()["final"]))
              for r in range(2)]
    if factory is Frozen:  # trained alone, a frozen weight stays put: so it did here (it was trained before)
        init0 = RunDir(tmp_path / "r0").load_tensors(Path(RunDir(tmp_path / "r0").states()["init"]))
        assert torch.equal(finals[0]["f.weight"], init0["f.weight"])
    if factory is Tied:  # still one tensor under both names (the fx rewrite untied them; vmap could not run it)
        assert torch.equal(finals[0]["a.weight"], finals[0]["b.weight"])
    if factory is SmallCNN:  # per-member BatchNorm statistics: each member's own, and they differ
        assert not torch.allclose(finals[0]["features.1.running_mean"], finals[1]["features.1.running_mean"])
        assert int(finals[0]["features.1.num_batches_tracked"]) == 24


def test_masks_keep_zeros_at_the_users_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "own", from_module(SmallCNN))
    spec = _spec("own", steps=10)
    data = load_dataset(spec.data)
    g = torch.Generator().manual_seed(0)
    mask = {"features.0.weight": torch.rand(4, 1, 3, 3, generator=g) < 0.5,
            "head.weight": torch.rand(10, 64, generator=g) < 0.3}
    jobs = [Job(spec, 0, tmp_path / "a", mask=mask), Job(spec, 1, tmp_path / "b")]
    train_population(jobs, data, EngineOptions(device="cpu", checkpoint_every=None))
    store = RunDir(tmp_path / "a")
    final = store.load_tensors(Path(store.states()["final"]))
    for k, m in mask.items():
        assert (final[k][~m] == 0).all() and (final[k][m] != 0).all(), k
    other = RunDir(tmp_path / "b").load_tensors(Path(RunDir(tmp_path / "b").states()["final"]))
    assert (other["head.weight"] != 0).all()  # the unmasked member is untouched by the other's mask


def test_prunable_names_kinds_and_the_output_layer() -> None:
    model = from_module(SmallCNN, exclude=["res"])(2, (1, 8, 8), 10)
    assert model.prunable() == ["features.0.weight", "head.weight"]
    assert kinds_of(model) == {"features.0.weight": "conv", "head.weight": "output"}
    conv1d = nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 5), nn.ReLU(), nn.Linear(5, 4))
    m1 = from_module(lambda: conv1d, name="c1d")(2, (1, 8), 4)
    assert kinds_of(m1) == {"0.weight": "conv", "3.weight": "fc", "5.weight": "output"}
    with pytest.raises(UserError, match="output layer"):  # the logits are not a layer's result: must be named
        from_module(lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()))(1, (4,), 3)
    assert from_module(lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()), output="0")(1, (4,), 3).output_layer \
        == "0.weight"
    with pytest.raises(UserError, match="exclude: bad value 'nope'"):
        from_module(SmallCNN, exclude=["nope"])(1, (1, 8, 8), 10)


def test_frozen_and_tied_weights_are_pruned_once_or_not_at_all() -> None:
    frozen = from_module(Frozen)(2, (1, 8, 8), 10)
    assert frozen.prunable() == ["o.weight"] and "f.weight" not in dict(frozen.named_parameters())
    assert "f.weight" in frozen.state_dict()
    tied = from_module(Tied)(2, (1, 8, 8), 10)
    assert tied.path == "vmap" and "'b.weight' is tied to 'a.weight'" in tied.fallback_reason
    assert tied.prunable() == ["a.weight", "o.weight"]  # the shared tensor once, under its first name
    assert tied.get_parameter("a.weight") is tied.get_parameter("b.weight")
    state = tied.member_state(1)  # a perturbation rewrites the first name only: the tied weight follows it
    state["a.weight"] = torch.full_like(state["a.weight"], 7.0)
    tied.load_member(1, state)
    assert bool((tied.get_parameter("b.weight")[1] == 7.0).all()) and not bool((tied.a.weight[0] == 7.0).all())


class _Needs(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.f = nn.Linear(64, hidden)


@pytest.mark.parametrize(("call", "named"), [
    (lambda: from_module(_Needs(4)), ["factory", "_Needs(", "a callable that returns a fresh nn.Module"]),
    (lambda: from_module("resnet18"), ["factory", "'resnet18'", "callable"]),
    (lambda: from_module(mlp, include=3), ["include", "3", "glob pattern"]),
    (lambda: from_module(mlp, exclude=[1]), ["exclude", "[1]", "glob pattern"]),
    (lambda: from_module(mlp, output=3), ["output", "3", "layer name"]),
    (lambda: from_module(_Needs)(1, (1, 8, 8), 10), ["model _Needs", "TypeError", "'hidden'", "functools.partial"]),
    (lambda: from_module(lambda: 1 / 0, name="z")(1, (1, 8, 8), 10), ["model z", "ZeroDivisionError"]),
])
def test_wrong_arguments_are_one_line_user_errors(call, named) -> None:
    with pytest.raises(UserError) as e:
        call()
    line = str(e.value)
    assert "\n" not in line
    for word in named:
        assert word in line, line


def test_unsupported_layers_fall_back_or_are_named() -> None:
    model = from_module(WithLayerNorm)(3, (1, 8, 8), 10)
    assert model.path == "vmap" and "'norm'" in model.fallback_reason and "LayerNorm" in model.fallback_reason
    with pytest.raises(UserError, match="'norm' \\(LayerNorm\\)"):
        from_module(WithLayerNorm, path="fx")(1, (1, 8, 8), 10)

    class Bad(nn.Module):  # data-dependent control flow and a .item(): neither fx nor vmap can run it
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.gate = nn.Linear(4, 3), nn.Linear(4, 1)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x) * (2.0 if self.gate(x).sum().item() > 0 else 1.0)

    with pytest.raises(UserError, match="Bad.*population"):
        from_module(Bad, output="fc")(2, (4,), 3)
    with pytest.raises(UserError, match=r"logits \[batch, 7\]"):
        from_module(mlp)(1, (1, 8, 8), 7)


def test_module_initialisation_depends_only_on_the_members_seed() -> None:
    a = from_module(SmallCNN)(3, (1, 8, 8), 10)
    b = from_module(SmallCNN)(1, (1, 8, 8), 10)
    a.init_member(2, "kaiming_normal", torch.Generator().manual_seed(7))
    b.init_member(0, "kaiming_normal", torch.Generator().manual_seed(7))
    sa, sb = a.member_state(2), b.member_state(0)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    a.init_member(1, "kaiming_normal", torch.Generator().manual_seed(8))
    assert not torch.equal(a.member_state(1)["head.weight"], sa["head.weight"])
    # nn.Linear's own default is uniform in +-1/sqrt(fan_in); lth's xavier_normal is not bounded so
    bound = 64 ** -0.5
    assert a.member_state(2)["head.weight"].abs().max() <= bound
    x = from_module(SmallCNN, init="spec")(1, (1, 8, 8), 10)
    x.init_member(0, "kaiming_normal", torch.Generator().manual_seed(0))
    assert x.member_state(0)["head.weight"].abs().max() > bound and (x.member_state(0)["res.bias"] == 0).all()


def resnet18_32() -> nn.Module:
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def test_lottery_and_branch_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "mymlp", MODELS.get("mymlp"))
    register_module("mymlp", mlp)
    trunk = ["--preset", "digits_mlp", "--model", "mymlp", "--training-steps", "20it", "--rewind", "5it",
             "--root", str(tmp_path)]
    code, out, err = lth("lottery", "--levels", "1", *trunk, "--json")
    assert code == 0, err
    code, out, err = lth("branch", "reinit", "--levels", "1", *trunk, "--json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert 0 < run["density"] < 1


def test_resnet18_trains_through_lottery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "r18", MODELS.get("r18"))
    register_module("r18", resnet18_32)
    assert build_model("r18", 1, (3, 32, 32), 10).path == "fx"
    args = ["--preset", "digits_mlp", "--dataset", "synthetic", "--synthetic-size", "16", "--batch-size", "8",
            "--model", "r18", "--training-steps", "2it", "--root", str(tmp_path)]
    code, out, err = lth("lottery", *args, "--levels", "1", "--json")
    assert code == 0, err
    masks = list(tmp_path.rglob("mask.pt"))
    assert masks and "layer4.1.conv2.weight" in torch.load(masks[0])
    code, out, err = lth("branch", "reinit", *args, "--levels", "1", "--json")  # and a branch off its ticket
    assert code == 0, err
    (rec,) = json.loads(out)["runs"]
    ticket = torch.load(masks[0], weights_only=True)
    mask = torch.load(rec["mask"], weights_only=True)
    assert rec["status"] == "complete" and all(torch.equal(mask[k], ticket[k]) for k in ticket)


def test_register_module_and_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="built-in"):
        register_module("resnet_20", mlp)
    plugin = tmp_path / "my_models.py"
    plugin.write_text("from torch import nn\nfrom lth.models import register_module\n"
                      "register_module('plugged', lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))\n")
    monkeypatch.setitem(MODELS, "plugged", None)
    load_plugins([str(plugin)])
    assert MODELS["plugged"] is not None and build_model("plugged", 2, (1, 8, 8), 10).prunable() == ["1.weight"]
    with pytest.raises(UserError, match="--plugin: bad value 'no_such_plugin_mod'"):
        load_plugins(["no_such_plugin_mod"])
    assert load_plugins(["json"])[0] is json


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("path", ["fx", "vmap"])
def test_cuda_graph_training_equals_eager(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "own", from_module(SmallCNN, path=path))
    spec = _spec("own", steps=12)
    data = load_dataset(spec.data, None, torch.device("cuda"))
    finals = {}
    for graph in ("auto", "off"):
        jobs = [Job(spec, r, tmp_path / graph / f"r{r}") for r in range(2)]
        train_population(jobs, data, EngineOptions(device="cuda", cuda_graph=graph, checkpoint_every=None))
        store = RunDir(tmp_path / graph / "r1")
        finals[graph] = store.load_tensors(Path(store.states()["final"]))
    for k, v in finals["off"].items():
        assert torch.allclose(finals["auto"][k].float(), v.float(), atol=1e-4), k


class WithBatchNorm1d(nn.Module):
    """BatchNorm1d has no population layer: the vmap path runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.f, self.bn, self.o = nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.o(F.relu(self.bn(self.f(x.flatten(1)))))


def test_vmap_batchnorm_statistics_are_recomputed_for_interpolated_states() -> None:
    """Error barriers evaluate interpolated states with BatchNorm statistics recomputed on training batches (the
    cumulative average, torch's ``momentum=None``); a vmap-path BatchNorm1d was skipped (its stale statistics
    used)."""
    from lth.engine.evaluate import has_batchnorm, recompute_batchnorm

    model = from_module(WithBatchNorm1d)(2, (1, 8, 8), 10)
    assert model.path == "vmap" and has_batchnorm(model)
    alone = WithBatchNorm1d()
    with torch.no_grad():
        alone.bn.running_mean.fill_(5.0)  # stale statistics, as an interpolated state has
    model.load_member(0, alone.state_dict())
    x = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert recompute_batchnorm(model, x, batches=3, batch_size=4) == 3
    alone.bn.reset_running_stats()
    alone.bn.momentum = None  # torch's cumulative average over the same three batches
    alone.train()
    with torch.no_grad():
        for t in range(3):
            alone(x[4 * t:4 * t + 4])
    got = model.member_state(0)
    assert torch.allclose(got["bn.running_mean"], alone.bn.running_mean, atol=1e-6)
    assert torch.allclose(got["bn.running_var"], alone.bn.running_var, atol=1e-5)
    assert model.batchnorms()[0].momentum == 0.1  # restored


class Branches(nn.Module):
    """Two convolution branches concatenated along channels (Inception's pattern), then along features."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 3, 1), nn.Conv2d(1, 2, 3, padding=1)
        self.mix = nn.Conv2d(5, 4, 3, padding=1)
        self.head = nn.Linear(4 + 5, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.cat([self.a(x), F.relu(self.b(x))], 1)
        pooled = torch.cat((self.mix(h).mean((2, 3)), h.mean((2, 3))), dim=-1)
        return self.head(pooled)


class CatBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.fc(x)
        return torch.cat([y, y], 0)[: x.shape[0]]


def test_concatenation_of_activations_takes_the_fx_path_and_computes_what_the_module_computes() -> None:
    torch.manual_seed(0)
    model = from_module(Branches)(3, (1, 6, 6), 10)
    assert model.path == "fx", model.fallback_reason
    x = torch.randn(3, 5, 1, 6, 6)
    out = model(x)
    for i in range(3):
        member = model.member_module(i).eval()
        model.eval()
        torch.testing.assert_close(model(x)[i], member(x[i]), rtol=1e-4, atol=1e-5)
        model.train()
    assert out.shape == (3, 5, 10)
    # a concatenation along the batch has no population form: the general path takes the module
    assert from_module(CatBatch, output="fc")(2, (4,), 3).path == "vmap"
