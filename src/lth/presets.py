"""Presets: the recipes the papers used, as plain spec values that the CLI prints and overrides.

Sources: Frankle & Carbin (ICLR 2019) Table 1 for LeNet-300-100 and Conv-2/4/6; Frankle et al. (2020,
"Linear mode connectivity") and open_lth for ResNet-20 and VGG; each preset's ``note`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lth.errors import UserError
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec


@dataclass(frozen=True)
class Preset:
    """A named spec plus the pruning recipe the paper paired with it."""

    spec: TrainSpec
    note: str
    pruning: dict[str, object] = field(default_factory=dict)  # PruneHparams fields: used by `lth lottery`


def _s(n: int, unit: str = "it") -> Step:
    return Step(n, unit)


def _cifar(batch: int, augment: bool = True) -> DataHparams:
    return DataHparams(dataset="cifar10", batch_size=batch, augment=augment)


def _resnet20(**train: object) -> TrainSpec:
    base = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, training_steps=_s(63000),
                milestones=(_s(32000), _s(48000)), gamma=0.1)
    base.update(train)
    return TrainSpec(_cifar(128), ModelHparams(model="resnet_20", init="kaiming_normal", norm="batchnorm"),
                     TrainHparams(**base))  # type: ignore[arg-type]


_LAYERWISE_FC = {"strategy": "layerwise", "fc_fraction": 0.2}  # output layer at half the fc rate (default)
_GLOBAL_CONV = {"strategy": "global", "fraction": 0.2, "ignore": ("fc.weight",)}  # all convs, not the classifier

PRESETS: dict[str, Preset] = {
    "lenet_300_100": Preset(
        TrainSpec(DataHparams(dataset="mnist", batch_size=60), ModelHparams(model="lenet_300_100",
                  init="kaiming_normal"), TrainHparams(optimizer="adam", lr=1.2e-3, training_steps=_s(50000))),
        "Frankle & Carbin 2019: LeNet-300-100 on MNIST, Adam 1.2e-3, batch 60, 50K iterations", _LAYERWISE_FC),
    "conv2": Preset(
        TrainSpec(_cifar(60, augment=False), ModelHparams(model="conv2"),
                  TrainHparams(optimizer="adam", lr=2e-4, training_steps=_s(20000))),
        "Frankle & Carbin 2019: Conv-2 on CIFAR-10, Adam 2e-4, batch 60, 20K iterations",
        {"strategy": "layerwise", "conv_fraction": 0.1, "fc_fraction": 0.2}),
    "conv4": Preset(
        TrainSpec(_cifar(60, augment=False), ModelHparams(model="conv4"),
                  TrainHparams(optimizer="adam", lr=3e-4, training_steps=_s(25000))),
        "Frankle & Carbin 2019: Conv-4 on CIFAR-10, Adam 3e-4, batch 60, 25K iterations",
        {"strategy": "layerwise", "conv_fraction": 0.1, "fc_fraction": 0.2}),
    "conv6": Preset(
        TrainSpec(_cifar(60, augment=False), ModelHparams(model="conv6"),
                  TrainHparams(optimizer="adam", lr=3e-4, training_steps=_s(30000))),
        "Frankle & Carbin 2019: Conv-6 on CIFAR-10, Adam 3e-4, batch 60, 30K iterations",
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
    "vgg16": Preset(
        TrainSpec(_cifar(128), ModelHparams(model="vgg_16", norm="batchnorm"), _resnet20().train),
        "VGG-16 (BatchNorm) on CIFAR-10, SGD 0.1, 63K iterations (open_lth)", _GLOBAL_CONV),
    "vgg19": Preset(
        TrainSpec(_cifar(64), ModelHparams(model="vgg_19", norm="batchnorm"),
                  TrainHparams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                               training_steps=_s(112000), milestones=(_s(56000), _s(84000)))),
        "Frankle & Carbin 2019: VGG-19 on CIFAR-10, SGD 0.1 momentum 0.9, batch 64, 112K iterations",
        _GLOBAL_CONV),
    "digits_mlp": Preset(
        TrainSpec(DataHparams(dataset="digits", batch_size=32), ModelHparams(model="fc_64_32"),
                  TrainHparams(optimizer="adam", lr=3e-3, training_steps=_s(10, "ep"))),
        "demo: an MLP on scikit-learn's 8x8 digits, seconds on a laptop", _LAYERWISE_FC),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; UserError lists the allowed names otherwise."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]
