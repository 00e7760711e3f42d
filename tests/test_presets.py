"""Presets carry their papers' values: F&C validation splits, the mask-topology study's rounds, LMC Table 1."""

from __future__ import annotations

import pytest
import torch

from lth.models import build_model
from lth.presets import PRESETS
from lth.prune import PruneHparams, density, full_mask, kinds_of, prune
from lth.spec import Step


@pytest.mark.parametrize("name", ["lenet_300_100", "conv2", "conv4", "conv6"])
def test_frankle_carbin_presets_hold_out_5000_validation_examples(name: str) -> None:
    assert PRESETS[name].spec.data.validation_size == 5000


@pytest.mark.parametrize(("name", "shape", "dataset", "epochs", "model"), [
    ("fc_dn", (1, 28, 28), "mnist", 100, "lenet_300_100"), ("lenet5_dn", (3, 32, 32), "cifar10", 300, "lenet5")])
def test_mask_topology_presets_reach_26_2_and_10_7_percent(name, shape, dataset, epochs, model) -> None:
    """Seed 004, section 4.1: Xavier, Adam with weight decay 1e-4, batch 1024; s = 20% per round of every layer,
    the output layer included, so 6 and 10 rounds keep 100 * 0.8^n = 26.2% and 10.7% (one decimal, as the paper)."""
    p = PRESETS[name]
    s = p.spec
    assert (s.data.dataset, s.model.model, s.data.batch_size) == (dataset, model, 1024)
    assert s.model.init.startswith("xavier") and s.train.optimizer == "adam" and s.train.weight_decay == 1e-4
    assert s.train.training_steps == Step(epochs, "ep") and s.train.milestones == ()
    hp = PruneHparams(**p.pruning)  # type: ignore[arg-type]
    net = build_model(s.model.model, 1, shape, 10)
    kinds = kinds_of(net)
    assert "output" in kinds.values() and "fc" in kinds.values()
    g = torch.Generator().manual_seed(0)
    weights = {k: torch.randn(net.get_parameter(k).shape[1:], generator=g) for k in kinds}
    mask = full_mask(weights, list(kinds))
    got = {}
    for level in range(1, 11):
        weights = {k: torch.randn(w.shape, generator=g) for k, w in weights.items()}  # "trained" weights
        mask = prune(weights, mask, hp, kinds)
        got[level] = density(mask)
        for k, m in mask.items():  # every layer, the output layer too, at 0.8^level up to per-round rounding
            assert abs(m.float().mean().item() - 0.8 ** level) < 0.01, (k, level)
    assert round(100 * got[6], 1) == 26.2 and round(100 * got[10], 1) == 10.7


def test_lmc_lenet_preset_follows_table_1() -> None:
    """Frankle et al. 2020, Table 1: LeNet on MNIST, 24K iterations, batch 60, Adam 12e-4, constant, no warmup."""
    p = PRESETS["lenet_300_100_lmc"]
    s = p.spec
    assert (s.data.dataset, s.model.model, s.data.batch_size) == ("mnist", "lenet_300_100", 60)
    assert (s.train.optimizer, s.train.lr, s.train.training_steps) == ("adam", 1.2e-3, Step(24000, "it"))
    assert s.train.milestones == () and s.train.warmup_steps.count == 0
    net = build_model("lenet_300_100", 1, (1, 28, 28), 10)
    assert p.pruning["ignore"] == (net.output_layer,)


@pytest.mark.parametrize(("name", "lr", "warmup"), [("vgg16", 0.1, 0), ("vgg16_low", 0.01, 0),
                                                    ("vgg16_warmup", 0.1, 30000), ("resnet20", 0.1, 0),
                                                    ("resnet20_low", 0.01, 0), ("resnet20_warmup", 0.03, 30000)])
def test_lmc_cifar_presets_follow_table_1(name: str, lr: float, warmup: int) -> None:
    """Frankle et al. 2020, Table 1: CIFAR-10, 63K iterations, batch 128, momentum, 10x drop at 32K and 48K,
    BatchNorm; Standard / Low / Warmup differ in the rate and the warmup only."""
    s = PRESETS[name].spec
    assert s.data.dataset == "cifar10" and s.data.batch_size == 128 and s.model.norm == "batchnorm"
    assert s.model.model == ("vgg_16" if name.startswith("vgg") else "resnet_20")
    t = s.train
    assert (t.optimizer, t.momentum, t.training_steps) == ("sgd", 0.9, Step(63000, "it"))
    assert t.milestones == (Step(32000, "it"), Step(48000, "it")) and t.gamma == 0.1
    assert t.lr == lr and t.warmup_steps == Step(warmup, "it")
    assert PRESETS[name].pruning["strategy"] == "global"


RESNET20_NORMS = {"resnet20": "batchnorm", "resnet20_fixup": "fixup", "resnet20_groupnorm": "groupnorm",
                  "resnet20_nonorm": "none", "resnet20_weightnorm": "weightnorm"}


def test_resnet20_normalisation_variants_share_one_recipe() -> None:
    """Siswanto, Frankle & Carbin: BatchNorm, Fixup, GroupNorm and no normalisation at equal recipes."""
    base = PRESETS["resnet20"]
    for name, norm in RESNET20_NORMS.items():
        p = PRESETS[name]
        assert p.spec.model.norm == norm and p.spec.model.model == "resnet_20"
        assert p.spec.data == base.spec.data and p.spec.train == base.spec.train and p.pruning == base.pruning


def test_fixup_rewinding_sweep_plans_every_rewind_step(tmp_path) -> None:
    from lth.lottery import Trunk
    from lth.lottery.plan import LotteryPlan
    from lth.prune import PruneHparams

    rewinds = [Step(k, "it") for k in (0, 100, 500, 1000, 2000)]
    p = PRESETS["resnet20_fixup"]
    trunks = [Trunk(p.spec, PruneHparams(**p.pruning), k, tmp_path, "resnet20_fixup") for k in rewinds]
    nodes = LotteryPlan(trunks, levels=2).nodes()
    assert len(nodes) == 5 * 3 and len({n.path for n in nodes}) == 15 and len({t.digest for t in trunks}) == 5
    assert {str(n.start_step) for n in nodes if n.meta["level"] > 0} == {str(k) for k in rewinds}
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_resnet20_plain_is_resnet20_without_residual_connections() -> None:
    """Ma et al. 2021, Fig. 5: the same recipe on a ResNet-like network without residual connections."""
    from lth.models import resolve

    base, plain = PRESETS["resnet20"], PRESETS["resnet20_plain"]
    assert resolve(plain.spec.model.model) == ("resnet", {"depth": 20, "residual": False})
    assert plain.spec.model.norm == base.spec.model.norm and plain.spec.model.init == base.spec.model.init
    assert plain.spec.data == base.spec.data and plain.spec.train == base.spec.train
    assert plain.pruning == base.pruning


@pytest.mark.parametrize("name", ["resnet20_groupnorm", "resnet20_nonorm", "resnet20_weightnorm"])
def test_normalisation_variants_run_a_rewinding_sweep(name: str, tmp_path) -> None:
    """(At lr 0.01: without normalisation ResNet-20 diverges at the recipe's 0.1, as seed 000 warns.)"""
    import json

    from conftest import lth

    code, out, err = lth("lottery", "--preset", name, "--levels", "1", "--rewind", "0it", "2it", "--dataset",
                         "synthetic", "--synthetic-shape", "3", "8", "8", "--synthetic-size", "64", "--batch-size",
                         "16", "--training-steps", "4it", "--lr", "0.01", "--root", str(tmp_path), "--device", "cpu",
                         "--json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert sorted((r["rewind"], r["level"]) for r in runs) == [("0it", 0), ("0it", 1), ("2it", 0), ("2it", 1)]
    assert all(r["status"] == "complete" for r in runs)
    spec = json.loads((tmp_path.glob("lottery_*/replicate_0/level_1/spec.json").__next__()).read_text())
    assert spec["model"]["norm"] == RESNET20_NORMS[name]


def test_unknown_preset_names_the_flag_and_the_closest_name() -> None:
    from lth.errors import UserError
    from lth.presets import get_preset

    with pytest.raises(UserError) as typo:
        get_preset("lenet_300_10")
    message = str(typo.value)
    assert message.startswith("--preset 'lenet_300_10': unknown preset (did you mean lenet_300_100?); allowed: ")
    assert "\n" not in message and "digits_mlp" in message
    with pytest.raises(UserError) as far:
        get_preset("zzz")
    assert "did you mean" not in str(far.value)


# ------------------------------------------------------------------ LMC's ImageNet rows and Ma et al.'s networks
def test_lmc_imagenet_presets_follow_table_1() -> None:
    """Frankle et al. 2020, Table 1: ResNet-50 (90 epochs, batch 1024, momentum, lr 0.4, 10x drops at 30/60/80, 5
    warmup epochs) and Inception-v3 (171 epochs, lr 0.03 linearly decayed to 0.005, no warmup), both one-shot pruned
    to 30%. The data set is the streamed ``imagenet``: only the spec's fields are checked, no data is read."""
    from lth.engine.optim import lr_schedule

    r50, inc = PRESETS["resnet50_imagenet"], PRESETS["inception_v3_imagenet"]
    for p, model in ((r50, "imagenet_resnet_50"), (inc, "inception_v3")):
        s = p.spec
        assert (s.data.dataset, s.data.batch_size, s.model.model) == ("imagenet", 1024, model)
        assert (s.train.optimizer, s.train.momentum, s.train.weight_decay) == ("sgd", 0.9, 1e-4)
        # one level of global pruning keeps 30% of every conv and linear weight: LMC's one-shot density
        hp = PruneHparams(**p.pruning)  # type: ignore[arg-type]
        assert hp.strategy == "global" and 1 - hp.fraction == pytest.approx(0.3) and hp.ignore == ()
    t = r50.spec.train
    assert (t.lr, t.training_steps, t.warmup_steps, t.gamma) == (0.4, Step(90, "ep"), Step(5, "ep"), 0.1)
    assert t.milestones == (Step(30, "ep"), Step(60, "ep"), Step(80, "ep")) and t.final_lr is None
    assert (r50.spec.data.image_size, inc.spec.data.image_size) == (0, 299)  # 224 (the dataset's) and 299
    t = inc.spec.train
    assert (t.lr, t.final_lr, t.training_steps, t.warmup_steps, t.milestones) == (
        0.03, 0.005, Step(171, "ep"), Step(0, "it"), ())
    lr = lr_schedule(t, 171 * 10, steps_per_epoch=10)  # 10 steps an epoch: the shape of the real schedule
    assert lr[0].item() == pytest.approx(0.03) and lr[-1].item() == pytest.approx(0.005)
    assert lr[855].item() == pytest.approx(0.0175)  # halfway


MA = {  # Ma et al. 2021, Table 2: preset -> (dataset, model, width, parameters of the table)
    "resnet18_tiny_imagenet": ("tiny_imagenet", "tiny_resnet_18", 1.0, 11.68e6),
    "resnet50_tiny_imagenet": ("tiny_imagenet", "tiny_resnet_50", 1.0, 25.56e6),
    "resnet18_imagenet": ("imagenet", "imagenet_resnet_18", 1.0, 11.68e6),
    "resnet18_cifar100": ("cifar100", "cifar_resnet_18", 1.0, 11.22e6),
    "vgg16_cifar100": ("cifar100", "vgg_16", 1.0, 14.72e6),
    "resnet32_cifar10": ("cifar10", "resnet_32", 2.0, 1.86e6),
    "mobilenet_v1_cifar10": ("cifar10", "mobilenet_v1", 1.0, 3.21e6),
}


@pytest.mark.parametrize("name", list(MA))
def test_ma_et_al_presets_name_the_tables_networks(name: str) -> None:
    from lth.models import resolve

    dataset, model, width, _ = MA[name]
    s = PRESETS[name].spec
    assert (s.data.dataset, s.model.model, s.model.width) == (dataset, model, width)
    resolve(s.model.model)
    assert s.train.optimizer == "sgd" and s.train.momentum == 0.9 and s.data.augment
    if dataset != "imagenet":  # the seed: 160 epochs
        assert s.train.training_steps == Step(160, "ep") and s.train.lr == 0.1
    hp = PruneHparams(**PRESETS[name].pruning)  # type: ignore[arg-type]
    assert hp.strategy == "global" and hp.fraction == 0.2  # 0.59 / 0.832 / 0.914 sparsity = 4 / 8 / 11 levels
    assert ("fc.weight" in hp.ignore) == dataset.startswith("cifar")


@pytest.mark.parametrize(("name", "shape", "classes"), [("resnet18_cifar100", (3, 32, 32), 100),
                                                        ("vgg16_cifar100", (3, 32, 32), 100),
                                                        ("resnet32_cifar10", (3, 32, 32), 10),
                                                        ("mobilenet_v1_cifar10", (3, 32, 32), 10)])
def test_ma_et_al_cifar_networks_have_the_tables_parameter_counts(name: str, shape, classes: int) -> None:
    """The CIFAR columns' counts (Table 2: 11.22M, 14.72M, 1.86M, 3.21M) from the networks the presets build;
    VGG-16 with 100 classes is 46K above the table's (its 10-class count)."""
    from lth.models import num_params
    from lth.models.mobilenet import mobilenet_v1
    from lth.models.torchvision_nets import resnet_module

    s = PRESETS[name].spec
    want = MA[name][3]
    if s.model.model in ("cifar_resnet_18", "mobilenet_v1"):  # plain modules: counted on the meta device
        with torch.device("meta"):
            m = resnet_module(18, "small", shape, classes) if "resnet" in name else mobilenet_v1(shape, classes)
        got = sum(p.numel() for p in m.parameters())
    else:
        got = num_params(s.model.model, shape, classes, s.model.norm, s.model.width)
    assert got == pytest.approx(want, rel=0.004)


@pytest.mark.parametrize("name", ["resnet18_cifar100", "mobilenet_v1_cifar10", "resnet32_cifar10"])
def test_ma_et_al_cifar_presets_ignore_a_layer_the_network_has(name: str) -> None:
    s = PRESETS[name].spec
    net = build_model(s.model.model, 1, (3, 32, 32), 10, s.model.norm, 0.0625)
    for layer in PRESETS[name].pruning["ignore"]:  # type: ignore[union-attr]
        assert layer in kinds_of(net) and kinds_of(net)[layer] == "output"


def test_ma_et_al_tiny_imagenet_preset_trains_on_the_tiny_imagenet_layout(tmp_path) -> None:
    """``resnet18_tiny_imagenet`` on Tiny-ImageNet's layout (JPEGs written here): 64x64 crops into the small-stem
    ResNet-18, the 10 classes of ``wnids.txt``."""
    import json

    from tests.conftest import lth
    from tests.data.image_files import write_tiny_imagenet

    write_tiny_imagenet(tmp_path / "data", count=40)
    code, out, err = lth("train", "--preset", "resnet18_tiny_imagenet", "--data-dir", str(tmp_path / "data"),
                         "--width", "0.0625", "--training-steps", "2it", "--batch-size", "8", "--root",
                         str(tmp_path / "runs"), "--device", "cpu", "--json")
    assert code == 0, err
    run = json.loads(out)["runs"][0]
    assert run["status"] == "complete" and 0 <= run["final_test_accuracy"] <= 1
    state = torch.load(run["states"]["final"], weights_only=True)
    assert state["conv1.weight"].shape[-2:] == (3, 3) and state["fc.weight"].shape[0] == 10


def test_frankle_carbin_resnet_preset_follows_seed_001_table_1() -> None:
    """Seed 001, Table 1's ResNet row: ResNet-20's layout (16, 3x[16,16], 3x[32,32], 3x[64,64]; 274K weights),
    30K iterations at batch 128, SGD momentum 0.9 at 0.1 -> 0.01 -> 0.001, conv 20% fc 0% globally."""
    from lth.engine.optim import lr_schedule

    p = PRESETS["resnet20_fc"]
    s = p.spec
    assert (s.data.dataset, s.data.batch_size, s.model.model) == ("cifar10", 128, "resnet_20")
    t = s.train
    assert (t.optimizer, t.momentum, t.training_steps) == ("sgd", 0.9, Step(30000, "it"))
    lr = lr_schedule(t, 30000, 390)
    assert sorted({round(float(v), 12) for v in lr}, reverse=True) == [0.1, 0.01, 0.001]  # the table's three rates
    assert float(lr[0]) == 0.1 and float(lr[-1]) == pytest.approx(0.001) and bool((lr[1:] <= lr[:-1]).all())
    assert p.pruning["strategy"] == "global" and p.pruning["fraction"] == 0.2
    net = build_model("resnet_20", 1, (3, 32, 32), 10)
    assert p.pruning["ignore"] == (net.output_layer,)  # fc 0%
    weights = sum(v.numel() for n, v in net.member_state(0).items() if n in kinds_of(net))
    assert abs(weights - 274_000) / 274_000 < 0.02  # the table's "All weights" 274K
