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
