"""Presets: the recipes the papers used, as plain spec values that the CLI prints and overrides.

Sources: Frankle & Carbin (ICLR 2019) Table 1 for LeNet-300-100 and Conv-2/4/6 (with their 5,000-example
validation split, on which the early-stopping iteration is chosen); Frankle et al. (ICML 2020, "Linear mode
connectivity and the lottery ticket hypothesis") Table 1 and open_lth for ResNet-20, VGG-16 and the LMC LeNet;
the mask-topology study (seed 004, section 4.1) for ``fc_dn`` / ``lenet5_dn``; LMC Table 1 for ResNet-50 and
Inception-v3 on ImageNet, and Ma et al. 2021 (seed 002, Table 2) for their Tiny-ImageNet, ImageNet-1K, CIFAR-100 and
CIFAR-10 networks. Each preset's ``note`` says which.
docs/fidelity.md lists what each preset decides where its paper leaves a choice open.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from lth.errors import UserError, ref
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec


@dataclass(frozen=True)
class Preset:
    """A named spec plus the pruning recipe the paper paired with it."""

    spec: TrainSpec
    note: str
    pruning: dict[str, object] = field(default_factory=dict)  # PruneHparams fields: used by `lth lottery`


def _s(n: int, unit: str = "it") -> Step:
    return Step(n, unit)


# Frankle & Carbin (2019, appendix): 5,000 training examples held out for validation (MNIST and CIFAR-10)
FC_VALIDATION = 5000


def _cifar(batch: int, augment: bool = True, validation_size: int = 0) -> DataHparams:
    return DataHparams(dataset="cifar10", batch_size=batch, augment=augment, validation_size=validation_size)


def _lmc_cifar(**train: object) -> TrainHparams:
    """Frankle et al. 2020, Table 1 (ResNet-20 / VGG-16 on CIFAR-10): SGD momentum 0.9, 63K iterations, x0.1 at
    32K and 48K; weight decay 1e-4 as open_lth. ``train`` overrides (the low and warmup variants)."""
    base = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, training_steps=_s(63000),
                milestones=(_s(32000), _s(48000)), gamma=0.1)
    base.update(train)
    return TrainHparams(**base)  # type: ignore[arg-type]


def _resnet20(**train: object) -> TrainSpec:
    return TrainSpec(_cifar(128), ModelHparams(model="resnet_20", init="kaiming_normal", norm="batchnorm"),
                     _lmc_cifar(**train))


def _vgg16(**train: object) -> TrainSpec:
    return TrainSpec(_cifar(128), ModelHparams(model="vgg_16", norm="batchnorm"), _lmc_cifar(**train))


def _dn(dataset: str, model: str, epochs: int) -> TrainSpec:
    """The mask-topology study (seed 004, section 4.1): Adam with weight decay 1e-4, batch 1024, Xavier init. The
    paper gives no learning rate: Adam's default 1e-3. Xavier as Glorot & Bengio propose it (uniform)."""
    return TrainSpec(DataHparams(dataset=dataset, batch_size=1024), ModelHparams(model=model, init="xavier_uniform"),
                     TrainHparams(optimizer="adam", lr=1e-3, weight_decay=1e-4, training_steps=_s(epochs, "ep")))


_LAYERWISE_FC = {"strategy": "layerwise", "fc_fraction": 0.2}  # output layer at half the fc rate (default)
# all convs, not the classifier; 20% of every surviving weight per level, as open_lth counts (Frankle et al. 2020,
# Table 1: densities 0.8^L)
_GLOBAL_CONV = {"strategy": "global", "fraction": 0.2, "ignore": ("fc.weight",), "count_ignored": True}
# seed 004, Algorithm 1 with s = 20: every layer, the output layer included, loses 20% of its survivors per round
_UNIFORM_20 = {"strategy": "layerwise", "conv_fraction": 0.2, "fc_fraction": 0.2, "output_fraction": 0.2}

# LMC Table 1's ImageNet rows: one-shot pruning to 30% ("Style: One-Shot"), global over every conv and linear weight
# as open_lth's ImageNet ResNets (models/imagenet_resnet.py: sparse_global, no layer ignored): level 1 is the ticket
_ONESHOT_30 = {"strategy": "global", "fraction": 0.7}
# open_lth's ImageNet pruning for IMP (20% of the surviving weights per level, every conv and linear weight)
_GLOBAL_ALL = {"strategy": "global", "fraction": 0.2}


def _lmc_imagenet(model: str, image_size: int = 0, **train: object) -> TrainSpec:
    """Frankle et al. 2020, Table 1 (ImageNet rows): batch 1024, SGD with momentum 0.9, weight decay 1e-4 (open_lth's
    ImageNet ResNet); ``image_size`` the crop side (0: the dataset's 224); ``train`` each row's length and
    schedule."""
    base: dict[str, object] = dict(optimizer="sgd", momentum=0.9, weight_decay=1e-4)
    base.update(train)
    return TrainSpec(DataHparams(dataset="imagenet", batch_size=1024, augment=True, image_size=image_size),
                     ModelHparams(model=model), TrainHparams(**base))  # type: ignore[arg-type]


def _ma(dataset: str, model: str, width: float = 1.0, epochs: int = 160, batch: int = 128) -> TrainSpec:
    """Ma et al. 2021 (seed 002): the network and dataset of one Table 2 column trained for 160 epochs (the seed:
    "we train the network using 160 epochs") at their larger learning rate 0.1 (Table 4's pretraining rates are 0.01
    and 0.1: ``--lr 0.01`` for the smaller); the seed is silent on the rest, so lth's CIFAR recipe: SGD with momentum
    0.9, weight decay 1e-4, batch 128, x0.1 at 50% and 75% of training (docs/fidelity.md)."""
    return TrainSpec(DataHparams(dataset=dataset, batch_size=batch, augment=True),
                     ModelHparams(model=model, width=width),
                     TrainHparams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                                  training_steps=_s(epochs, "ep"),
                                  milestones=(_s(epochs // 2, "ep"), _s(epochs * 3 // 4, "ep")), gamma=0.1))


PRESETS: dict[str, Preset] = {
    "lenet_300_100": Preset(
        TrainSpec(DataHparams(dataset="mnist", batch_size=60, validation_size=FC_VALIDATION),
                  ModelHparams(model="lenet_300_100", init="kaiming_normal"),
                  TrainHparams(optimizer="adam", lr=1.2e-3, training_steps=_s(50000))),
        "Frankle & Carbin 2019: LeNet-300-100 on MNIST, Adam 1.2e-3, batch 60, 50K iterations, 5K validation",
        _LAYERWISE_FC),
    "conv2": Preset(
        TrainSpec(_cifar(60, augment=False, validation_size=FC_VALIDATION), ModelHparams(model="conv2"),
                  TrainHparams(optimizer="adam", lr=2e-4, training_steps=_s(20000))),
        "Frankle & Carbin 2019: Conv-2 on CIFAR-10, Adam 2e-4, batch 60, 20K iterations, 5K validation",
        {"strategy": "layerwise", "conv_fraction": 0.1, "fc_fraction": 0.2}),
    "conv4": Preset(
        TrainSpec(_cifar(60, augment=False, validation_size=FC_VALIDATION), ModelHparams(model="conv4"),
                  TrainHparams(optimizer="adam", lr=3e-4, training_steps=_s(25000))),
        "Frankle & Carbin 2019: Conv-4 on CIFAR-10, Adam 3e-4, batch 60, 25K iterations, 5K validation",
        {"strategy": "layerwise", "conv_fraction": 0.1, "fc_fraction": 0.2}),
    "conv6": Preset(
        TrainSpec(_cifar(60, augment=False, validation_size=FC_VALIDATION), ModelHparams(model="conv6"),
                  TrainHparams(optimizer="adam", lr=3e-4, training_steps=_s(30000))),
        "Frankle & Carbin 2019: Conv-6 on CIFAR-10, Adam 3e-4, batch 60, 30K iterations, 5K validation",
        {"strategy": "layerwise", "conv_fraction": 0.15, "fc_fraction": 0.2}),
    "lenet5": Preset(
        TrainSpec(_cifar(60, augment=False), ModelHparams(model="lenet5"),
                  TrainHparams(optimizer="adam", lr=1e-3, training_steps=_s(30, "ep"))),
        "LeNet-5 on CIFAR-10 (mask-topology study), Adam 1e-3, batch 60, 30 epochs", _LAYERWISE_FC),
    "resnet20": Preset(_resnet20(), "Frankle et al. 2020: ResNet-20 on CIFAR-10, SGD 0.1 momentum 0.9, "
                       "wd 1e-4, batch 128, 63K iterations, x0.1 at 32K and 48K", _GLOBAL_CONV),
    "resnet20_low": Preset(_resnet20(lr=0.01), "ResNet-20 at the low learning rate 0.01", _GLOBAL_CONV),
    "resnet20_warmup": Preset(_resnet20(lr=0.03, warmup_steps=_s(30000)),
                              "ResNet-20, lr 0.03 with 30K iterations of linear warmup", _GLOBAL_CONV),
    "resnet20_fixup": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20", norm="fixup"), _resnet20().train),
        "ResNet-20 with Fixup instead of BatchNorm (Zhang et al. 2019), same recipe", _GLOBAL_CONV),
    "resnet20_groupnorm": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20", norm="groupnorm"), _resnet20().train),
        "ResNet-20 with GroupNorm instead of BatchNorm (Siswanto, Frankle & Carbin 2021), same recipe",
        _GLOBAL_CONV),
    "resnet20_nonorm": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20", norm="none"), _resnet20().train),
        "ResNet-20 without normalisation (Siswanto, Frankle & Carbin 2021), same recipe (lr 0.1 may diverge "
        "without normalisation, Bjorck et al. 2018: lower --lr)", _GLOBAL_CONV),
    "resnet20_weightnorm": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20", norm="weightnorm"), _resnet20().train),
        "ResNet-20 with weight normalisation instead of BatchNorm (Salimans & Kingma 2016; Siswanto, Frankle & "
        "Carbin 2021, Section 4), same recipe", _GLOBAL_CONV),
    "resnet20_plain": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20_plain", init="kaiming_normal"), _resnet20().train),
        "ResNet-20 without residual connections (Ma et al. 2021, Fig. 5: a ResNet-like network without them), "
        "the resnet20 recipe", _GLOBAL_CONV),
    "vgg16": Preset(_vgg16(), "Frankle et al. 2020: VGG-16 (BatchNorm) on CIFAR-10, SGD 0.1 momentum 0.9, wd 1e-4, "
                    "batch 128, 63K iterations, x0.1 at 32K and 48K", _GLOBAL_CONV),
    "vgg16_low": Preset(_vgg16(lr=0.01), "Frankle et al. 2020: VGG-16 at the low learning rate 0.01", _GLOBAL_CONV),
    "vgg16_warmup": Preset(_vgg16(lr=0.1, warmup_steps=_s(30000)),
                           "Frankle et al. 2020: VGG-16, lr 0.1 with 30K iterations of linear warmup", _GLOBAL_CONV),
    "lenet_300_100_lmc": Preset(
        TrainSpec(DataHparams(dataset="mnist", batch_size=60), ModelHparams(model="lenet_300_100"),
                  TrainHparams(optimizer="adam", lr=1.2e-3, training_steps=_s(24000))),
        "Frankle et al. 2020 (Table 1): LeNet-300-100 on MNIST, Adam 1.2e-3 constant, batch 60, 24K iterations; "
        "global pruning 20% per level, output layer kept (open_lth)",
        {"strategy": "global", "fraction": 0.2, "ignore": ("layers.2.weight",), "count_ignored": True}),
    "fc_dn": Preset(_dn("mnist", "lenet_300_100", 100),
                    "Mask-topology study (seed 004): FC-1 (784-300-100-10) on MNIST, Xavier, Adam 1e-3 wd 1e-4, "
                    "batch 1024, 100 epochs; 20% of every layer per round (6 rounds: 26.2%, 10: 10.7%)", _UNIFORM_20),
    "lenet5_dn": Preset(_dn("cifar10", "lenet5", 300),
                        "Mask-topology study (seed 004): LeNet-5 on CIFAR-10, Xavier, Adam 1e-3 wd 1e-4, batch 1024, "
                        "300 epochs; 20% of every layer per round (6 rounds: 26.2%, 10: 10.7%)", _UNIFORM_20),
    "resnet20_fc": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="resnet_20", init="kaiming_normal", norm="batchnorm"),
                  _lmc_cifar(training_steps=_s(30000), milestones=(_s(20000), _s(25000)))),
        "Frankle & Carbin 2019 (seed 001, Table 1's ResNet row: its 16, 3x[16,16], 3x[32,32], 3x[64,64] is "
        "ResNet-20): SGD momentum 0.9, batch 128, 30K iterations, lr 0.1 -> 0.01 -> 0.001 (drops at 20K and 25K: "
        "the seed gives no steps), wd 1e-4; global 20% of conv weights, fc 0%", _GLOBAL_CONV),
    "vgg19": Preset(
        TrainSpec(_cifar(64), ModelHparams(model="vgg_19", norm="batchnorm"),
                  TrainHparams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                               training_steps=_s(112000), milestones=(_s(56000), _s(84000)))),
        "Frankle & Carbin 2019: VGG-19 on CIFAR-10, SGD 0.1 momentum 0.9, batch 64, 112K iterations",
        _GLOBAL_CONV),
    "resnet50_imagenet": Preset(
        _lmc_imagenet("imagenet_resnet_50", lr=0.4, training_steps=_s(90, "ep"), warmup_steps=_s(5, "ep"),
                      milestones=(_s(30, "ep"), _s(60, "ep"), _s(80, "ep")), gamma=0.1),
        "Frankle et al. 2020 (Table 1): ResNet-50 on ImageNet, SGD 0.4 momentum 0.9, wd 1e-4, batch 1024, 90 epochs, "
        "5 warmup epochs, x0.1 at 30, 60, 80 epochs; one-shot pruning to 30% (level 1)", _ONESHOT_30),
    "inception_v3_imagenet": Preset(
        _lmc_imagenet("inception_v3", image_size=299, lr=0.03, final_lr=0.005, training_steps=_s(171, "ep")),
        "Frankle et al. 2020 (Table 1): Inception-v3 on ImageNet (299x299), SGD 0.03 momentum 0.9 linearly decayed "
        "to 0.005, wd 1e-4, batch 1024, 171 epochs; one-shot pruning to 30% (level 1)", _ONESHOT_30),
    "resnet18_tiny_imagenet": Preset(
        _ma("tiny_imagenet", "tiny_resnet_18"),
        "Ma et al. 2021 (Table 2): ResNet-18 on Tiny-ImageNet (64x64, 200 classes), SGD 0.1, 160 epochs; "
        "global IMP 20% per level", _GLOBAL_ALL),
    "resnet50_tiny_imagenet": Preset(
        _ma("tiny_imagenet", "tiny_resnet_50"),
        "Ma et al. 2021 (Table 2): ResNet-50 on Tiny-ImageNet (64x64, 200 classes), SGD 0.1, 160 epochs; "
        "global IMP 20% per level", _GLOBAL_ALL),
    "resnet18_imagenet": Preset(
        TrainSpec(DataHparams(dataset="imagenet", batch_size=256, augment=True),
                  ModelHparams(model="imagenet_resnet_18"),
                  TrainHparams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, training_steps=_s(90, "ep"),
                               milestones=(_s(30, "ep"), _s(60, "ep")), gamma=0.1)),
        "Ma et al. 2021 (Table 2): ResNet-18 on ImageNet-1K; the seed gives no recipe: torchvision's reference "
        "(SGD 0.1 momentum 0.9, wd 1e-4, batch 256, 90 epochs, x0.1 at 30 and 60); global IMP 20% per level",
        _GLOBAL_ALL),
    "resnet18_cifar100": Preset(
        _ma("cifar100", "cifar_resnet_18"),
        "Ma et al. 2021 (Table 2): ResNet-18 (3x3 stem, 11.22M) on CIFAR-100, SGD 0.1, 160 epochs; global IMP 20% of "
        "conv weights per level", _GLOBAL_CONV),
    "vgg16_cifar100": Preset(
        _ma("cifar100", "vgg_16"),
        "Ma et al. 2021 (Table 2): VGG-16 (BatchNorm) on CIFAR-100, SGD 0.1, 160 epochs; global IMP 20% of conv "
        "weights per level", _GLOBAL_CONV),
    "resnet32_cifar10": Preset(
        _ma("cifar10", "resnet_32", width=2.0),
        "Ma et al. 2021 (Table 2): ResNet-32 on CIFAR-10 at twice the width (32/64/128 channels: their 1.86M "
        "parameters), SGD 0.1, 160 epochs; global IMP 20% of conv weights per level", _GLOBAL_CONV),
    "mobilenet_v1_cifar10": Preset(
        _ma("cifar10", "mobilenet_v1"),
        "Ma et al. 2021 (Table 2): MobileNet-v1 (3.21M) on CIFAR-10, SGD 0.1, 160 epochs; global IMP 20% of conv "
        "weights per level", _GLOBAL_CONV),
    "digits_mlp": Preset(
        TrainSpec(DataHparams(dataset="digits", batch_size=32), ModelHparams(model="fc_64_32"),
                  TrainHparams(optimizer="adam", lr=3e-3, training_steps=_s(10, "ep"))),
        "demo: an MLP on scikit-learn's 8x8 digits, seconds on a laptop", _LAYERWISE_FC),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; UserError lists the allowed names otherwise."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"{ref('preset')} {name!r}: unknown preset{hint}; allowed: {', '.join(PRESETS)}", value=name,
                        allowed=", ".join(PRESETS))
    return PRESETS[name]
