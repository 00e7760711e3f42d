"""Specs: frozen dataclasses of hyperparameters, their CLI flags, their printed form and their hash.

One walk over the fields gives all three (as open_lth's ``hparams.py`` does). Help text lives in each field's
``metadata`` so that it cannot drift away from the field. A run's name is a kind prefix plus the hash of its
sorted non-default fields, so adding a field with a default later keeps every existing hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lth.errors import UserError, ref
from lth.options import option
from lth.options import parse_value as parse
from lth.steps import Step


def help_field(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    """A dataclass field whose help text, choices and range ride in its metadata (:func:`lth.options.option`)."""
    return option(default, help, choices=choices, **kw)


@dataclass(frozen=True)
class DataHparams:
    """What to train on and how batches are drawn."""

    dataset: str = help_field("mnist", "dataset: mnist, fashion_mnist, cifar10, cifar100, digits, synthetic; read from "
                              "disk while training: imagenet, tiny_imagenet, imagefolder (--data-dir DIR with "
                              "DIR/train/<class>/, DIR/val/<class>/); or one registered in lth.data.DATASETS")
    batch_size: int = help_field(60, "examples per training step")
    augment: bool = help_field(False, "random crop (4-pixel padding) and horizontal flip (CIFAR); images read from "
                               "disk: the random-resized crop (ImageNet, imagefolder) or the crop of the S/16-padded "
                               "image (Tiny-ImageNet), with the flip")
    random_labels_fraction: float = help_field(0.0, "fraction of training labels replaced by random ones")
    subsample_fraction: float = help_field(1.0, "fraction of the training set kept")
    blur: bool = help_field(False, "blur images: downsample 4x, then upsample back")
    rotation_task: bool = help_field(False, "rotation task: image rotated by 90*n degrees, label n (training "
                                     "images: n drawn afresh at every presentation)")
    validation_size: int = help_field(0, "training examples held out as a validation split")
    data_seed: int = help_field(0, "seed for label randomisation, subsampling and the validation split")
    synthetic_shape: tuple[int, ...] = help_field((3, 32, 32), "synthetic dataset: shape of one example")
    synthetic_classes: int = help_field(10, "synthetic dataset: number of classes")
    synthetic_size: int = help_field(50000, "synthetic dataset: number of training examples")
    image_size: int = help_field(0, "image datasets read from disk (imagefolder, imagenet, tiny_imagenet): the side "
                                 "of the square crop in pixels (0: the dataset's, 224 or 64)", metavar="S")


@dataclass(frozen=True)
class ModelHparams:
    """The architecture and its initialisation."""

    model: str = help_field("lenet_300_100", "lenet_300_100, fc_N_M_..., conv2, conv4, conv6, lenet5, "
                            "resnet_D (D = 6n+2), vgg_11/13/16/19, imagenet_resnet_D / tiny_resnet_D / "
                            "cifar_resnet_D (D = 18, 34, 50, 101, 152), inception_v3, mobilenet_v1")
    init: str = help_field("kaiming_normal", "weight initialiser", choices=("kaiming_normal", "kaiming_uniform",
                                                                           "xavier_normal", "xavier_uniform"))
    norm: str = help_field("batchnorm", "normalisation of ResNets and VGGs",
                           choices=("batchnorm", "fixup", "groupnorm", "none", "weightnorm"))
    width: float = help_field(1.0, "width multiplier")


@dataclass(frozen=True)
class TrainHparams:
    """Optimiser, schedule, length, evaluation and seeds."""

    optimizer: str = help_field("sgd", "optimiser", choices=("sgd", "adam"))
    lr: float = help_field(0.1, "learning rate")
    momentum: float = help_field(0.0, "SGD momentum")
    nesterov: bool = help_field(False, "Nesterov momentum")
    weight_decay: float = help_field(0.0, "L2 weight decay")
    training_steps: Step = help_field(Step(1, "ep"), "length of training")
    milestones: tuple[Step, ...] = help_field((), "steps at which the learning rate is multiplied by gamma")
    gamma: float = help_field(0.1, "learning-rate factor at each milestone")
    warmup_steps: Step = help_field(Step(0, "it"), "linear learning-rate warmup from 0")
    final_lr: float | None = help_field(None, "learning rate at the end of training, reached by a linear decay from "
                                              "lr after the warmup (Inception-v3 in Frankle et al. 2020: 0.03 to "
                                              "0.005); default: no decay", metavar="LR")
    eval_every: Step = help_field(Step(1, "ep"), "evaluation interval")
    precision: str = help_field("fp32", "arithmetic precision (bf16: autocast)", choices=("fp32", "bf16"))
    init_seed: int | None = help_field(None, "initialisation seed (default: the replicate number)")
    order_seed: int | None = help_field(None, "data-order seed (default: the replicate number)")
    augment_seed: int | None = help_field(None, "augmentation seed (default: the replicate number)")


@dataclass(frozen=True)
class TrainSpec:
    """One training run: data, model and training hyperparameters."""

    data: DataHparams = field(default_factory=DataHparams)
    model: ModelHparams = field(default_factory=ModelHparams)
    train: TrainHparams = field(default_factory=TrainHparams)

    def validate(self) -> None:
        """Raise UserError on values outside what each field allows."""
        validate(self)


GROUPS: tuple[str, ...] = ("data", "model", "train")


# ---------------------------------------------------------------------------------------------- field walk
def hparam_fields(cls: type) -> list[tuple[str, dataclasses.Field, Any]]:
    """(name, field, resolved type) of a flat hparams dataclass."""
    hints = typing.get_type_hints(cls)
    return [(f.name, f, hints[f.name]) for f in dataclasses.fields(cls)]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def to_json_value(v: Any) -> Any:
    """A field value as JSON (steps as strings)."""
    if isinstance(v, Step):
        return str(v)
    if isinstance(v, list | tuple):
        return [to_json_value(x) for x in v]
    return v


def parse_value(tp: Any, raw: Any, name: str) -> Any:
    """Convert a CLI string (or a Python value) to the field's type; UserError names the field (its path, e.g.
    ``lr`` or ``pruning.fraction``) on failure (:func:`lth.options.parse_value`)."""
    return parse(tp, raw, name)


def replace_fields(spec: TrainSpec, overrides: dict[str, Any]) -> TrainSpec:
    """A copy of ``spec`` with flat field overrides (``{"lr": 0.01}``), each parsed to its type."""
    groups = {g: dict() for g in GROUPS}
    owner = {name: g for g in GROUPS for name, _, _ in hparam_fields(type(getattr(spec, g)))}
    for key, raw in overrides.items():
        if key not in owner:
            from lth.options import unknown_name

            raise unknown_name(key, sorted(owner), what="hyperparameter")
        g = owner[key]
        tp = dict((n, t) for n, _, t in hparam_fields(type(getattr(spec, g))))[key]
        groups[g][key] = parse_value(tp, raw, key)
    return TrainSpec(**{g: dataclasses.replace(getattr(spec, g), **groups[g]) for g in GROUPS})


def to_dict(spec: Any) -> dict[str, Any]:
    """Every field, grouped, as JSON values."""
    if dataclasses.is_dataclass(spec) and any(dataclasses.is_dataclass(getattr(spec, f.name))
                                              and not isinstance(getattr(spec, f.name), Step)
                                              for f in dataclasses.fields(spec)):
        return {f.name: to_dict(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    return {f.name: to_json_value(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Inverse of :func:`to_dict` (missing fields take their defaults)."""
    kwargs = {}
    for name, _f, tp in hparam_fields(cls):
        if name not in d:
            continue
        if dataclasses.is_dataclass(tp) and tp is not Step:
            kwargs[name] = from_dict(tp, d[name])
        else:
            kwargs[name] = parse_value(tp, d[name], name)
    return cls(**kwargs)


def non_default(spec: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``{"group.field": value}`` of the fields that differ from their dataclass default."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, Step):
            out.update(non_default(v, f"{prefix}{f.name}."))
        elif v != _default(f):
            out[f"{prefix}{f.name}"] = to_json_value(v)
    return out


def spec_hash(*parts: Any) -> str:
    """Hash of the sorted non-default fields of every part (dataclasses or plain dicts)."""
    items: dict[str, Any] = {}
    for i, p in enumerate(parts):
        flat = non_default(p) if dataclasses.is_dataclass(p) else p
        items.update({f"{i}:{k}": v for k, v in flat.items()})
    text = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.md5(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- validation
# Checks of names against the open registries, registered by the modules that own them (lth.data, lth.models),
# so this module imports neither: specs sit below data and models in the pipeline.
NAME_CHECKS: list[Callable[[TrainSpec], None]] = []


def validate(spec: TrainSpec) -> None:
    """Check every field against its choices and range; UserError names the first bad value."""
    for g in GROUPS:
        hp = getattr(spec, g)
        for name, f, _ in hparam_fields(type(hp)):
            choices = f.metadata.get("choices")
            v = getattr(hp, name)
            if choices and v not in choices:
                raise UserError(f"{ref(name)}: unknown value {v!r}; allowed: {', '.join(choices)}", value=v,
                                allowed=", ".join(choices))
    d, t, m = spec.data, spec.train, spec.model
    for check in NAME_CHECKS:  # names checked against the registries (they may grow): datasets, models
        check(spec)
    checks = [
        (d.batch_size >= 1, "batch_size", d.batch_size, "a whole number >= 1"),
        (t.lr > 0, "lr", t.lr, "a number > 0 (at 0 nothing trains)"),
        (0 <= t.momentum < 1, "momentum", t.momentum, "a number in [0, 1)"),
        (t.weight_decay >= 0, "weight_decay", t.weight_decay, "a number >= 0"),
        (t.gamma > 0, "gamma", t.gamma, "a number > 0"),
        (0 <= d.random_labels_fraction <= 1, "random_labels_fraction", d.random_labels_fraction, "a number in [0, 1]"),
        (0 < d.subsample_fraction <= 1, "subsample_fraction", d.subsample_fraction, "a number in (0, 1]"),
        (d.validation_size >= 0, "validation_size", d.validation_size, "a whole number >= 0"),
        (t.training_steps.count >= 1, "training_steps", str(t.training_steps), "at least 1it"),
        (t.eval_every.count >= 1, "eval_every", str(t.eval_every), "at least 1it"),
        (m.width > 0, "width", m.width, "a number > 0"),
        (t.final_lr is None or t.final_lr >= 0, "final_lr", t.final_lr, "a number >= 0"),
    ]
    for ok, name, value, allowed in checks:
        if not ok:
            raise UserError.bad(name, value, allowed)


def _named(field: str) -> str:
    """A field's name in an error's text: a path (``save_states``, ``pruning.fraction``) becomes a reference each
    face renders (``--save-states`` / ``save_states``); a literal (a CLI flag such as ``--save-states``, or words
    such as ``start step``) is kept as written."""
    return ref(field) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", field) else field


def training_end(steps: Step, total: int, named: str | None = None) -> str:
    """``--training-steps 2ep = 92it`` (or ``--training-steps 50it`` when it is already in iterations), as an
    error's template (:func:`lth.errors.ref`: ``training_steps 2ep = 92it`` in Python). ``named``: how the length
    was given when not as ``training_steps`` (``f"{ref('set')} training_steps=2ep"``)."""
    named = named or f"{ref('training_steps')} {steps}"
    return named if str(steps) == f"{total}it" else f"{named} = {total}it"


def past_end(field: str, value: Any, steps: Step, total: int, first: str = "0it", end_field: str = "training_steps",
             end_named: str | None = None) -> UserError:
    """The error for a step ``value`` of ``field`` after the end of training (``total`` iterations of ``steps``):
    what was given, where training ends, and the steps allowed (``first`` to the end). ``field``: the field's path
    (``save_states``: ``--save-states`` on the command line, ``save_states`` in Python), or a literal name kept as
    written (``--save-states``, ``start step``). ``end_field`` / ``end_named``: the field that sets the length
    (a path, a literal or a template) and how it was given, when not ``training_steps``."""
    allowed = f"a step from {first} to {total}it"
    return UserError(f"{_named(field)} {value}: after the end of training ({training_end(steps, total, end_named)}); "
                     f"allowed: {allowed} ({_named(end_field)})", value=value, allowed=allowed)


def validate_lengths(spec: TrainSpec, n_train: int, given: Collection[str] | None = None,
                     set_values: Mapping[str, str] | None = None) -> None:
    """Checks that need the training set's size ``n_train`` (after the validation split and subsampling): a batch
    that fits in it, and a warmup and milestones inside training. UserError naming the first bad value.

    ``given``: the fields the user set (``{"warmup_steps"}``); the warmup and milestones are checked only where
    given (None: always), since a preset's schedule under a shortened ``--training-steps`` (a quick look at
    ResNet-20 for 2ep) is meant: its later milestones simply never come.
    ``set_values``: fields given as ``--set KEY=VALUE`` (a branch retraining a ticket), ``{key: VALUE as typed}``:
    errors name them so (``--set milestones=5ep``) rather than as the flag the user never typed."""
    typed = dict(set_values or {})

    def named(key: str, value: Any, alone: bool = True) -> tuple[str, str]:  # (field, value) as the user typed them
        if key not in typed:
            return ref(key), str(value)
        return ref("set"), f"{key}={typed[key]}" + ("" if alone else f" ({value})")  # which of several it is

    bs = spec.data.batch_size
    if n_train < 1:
        d = spec.data
        if d.subsample_fraction == 1 and d.validation_size > 0:  # the split alone took every example
            n = n_train + d.validation_size
            allowed = f"a whole number from 0 to {n - 1} (fewer than the {n} training examples of {d.dataset})"
            raise UserError(f"{ref('validation_size')} {d.validation_size}: leaves no training examples; allowed: "
                            f"{allowed}", value=d.validation_size, allowed=allowed)
        size, frac = ref("validation_size"), ref("subsample_fraction")
        allowed = f"a larger {frac} or a smaller {size}"
        raise UserError(f"{frac} {d.subsample_fraction} with {size} {d.validation_size}: leaves no training examples "
                        f"of {d.dataset}; allowed: {allowed}", value=d.subsample_fraction, allowed=allowed)
    if bs > n_train:
        allowed = f"a whole number from 1 to {n_train}"
        raise UserError(f"{' '.join(named('batch_size', bs))}: larger than the training set ({n_train} examples); "
                        f"allowed: {allowed}", value=bs, allowed=allowed)
    t = spec.train
    spe = n_train // bs
    total = t.training_steps.iterations(spe)
    end = ({"end_field": f"{ref('set')} training_steps",
            "end_named": f"{ref('set')} training_steps={typed['training_steps']}"} if "training_steps" in typed else {})
    if (given is None or "warmup_steps" in given) and t.warmup_steps.iterations(spe) > total:
        raise past_end(*named("warmup_steps", t.warmup_steps), t.training_steps, total, **end)
    for m in t.milestones if given is None or "milestones" in given else ():
        if m.iterations(spe) > total:
            raise past_end(*named("milestones", m, len(t.milestones) == 1), t.training_steps, total, **end)
