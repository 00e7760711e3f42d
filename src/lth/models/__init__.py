"""The model zoo: one registry of families and a builder that resolves a model name.

Names: ``fc_<h1>[_<h2>...]`` (``lenet_300_100`` = ``fc_300_100``), ``conv2``, ``conv4``, ``conv6``,
``lenet5``, ``resnet_<D>`` / ``resnet<D>`` with D = 6n+2 (``resnet_<D>_plain``: without residual connections),
``vgg_<11|13|16|19>`` / ``vgg<D>``; torchvision's ``imagenet_resnet_<D>`` and the small-image stem
``tiny_resnet_<D>`` / ``cifar_resnet_<D>`` (D in 18, 34, 50, 101, 152), ``inception_v3``, and ``mobilenet_v1``
(:mod:`lth.models.torchvision_nets`, :mod:`lth.models.mobilenet`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lth.errors import UserError, ref
from lth.models.base import PopModel
from lth.models.conv import LeNet5, conv_net, scale_width
from lth.models.fc import FC
from lth.models.from_module import from_module
from lth.models.mobilenet import mobilenet_v1
from lth.models.resnet import RESNET_NORMS, ResNet
from lth.models.vgg import VGG, VGG_CFGS, VGG_NORMS

NAME_FORMS = ("fc_<h1>[_<h2>...] (e.g. fc_300_100 = lenet_300_100), conv2, conv4, conv6, lenet5, "
              "resnet_<6n+2>[_plain] (e.g. resnet_20, resnet_20_plain), vgg_<11|13|16|19>, "
              "imagenet_resnet_<18|34|50|101|152>, tiny_resnet_<D>, cifar_resnet_<D>, inception_v3, mobilenet_v1")
NORMS = ("batchnorm", "fixup", "groupnorm", "none", "weightnorm")
# Families without normalisation layers accept the default and "none" and ignore them.
_PLAIN_NORMS = ("batchnorm", "none")


def _plain(family: str, norm: str) -> None:
    if norm not in _PLAIN_NORMS:
        raise UserError(f"model {family} has no normalisation layers; norm {norm!r} is not supported "
                        f"(allowed: {', '.join(_PLAIN_NORMS)})")


def _fc(n: int, example_shape: tuple[int, ...], num_classes: int, *, hidden: list[int],
        norm: str = "batchnorm", width: float = 1.0) -> PopModel:
    _plain("fc", norm)
    shape = tuple(int(s) for s in example_shape)
    if not shape or min(shape) < 1:
        raise UserError(f"model fc needs a non-empty example shape; got {shape}")
    return FC(n, shape, num_classes, [scale_width(h, width) for h in hidden])


def _conv(family: str) -> Callable[..., PopModel]:
    def build(n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str = "batchnorm",
              width: float = 1.0) -> PopModel:
        _plain(family, norm)
        return conv_net(family, n, example_shape, num_classes, width)
    build.__name__ = f"_{family}"
    return build


def _lenet5(n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str = "batchnorm",
            width: float = 1.0) -> PopModel:
    _plain("lenet5", norm)
    return LeNet5(n, example_shape, num_classes, width)


def _resnet(n: int, example_shape: tuple[int, ...], num_classes: int, *, depth: int,
            norm: str = "batchnorm", width: float = 1.0, residual: bool = True) -> PopModel:
    return ResNet(n, example_shape, num_classes, depth, norm=norm, width=width, residual=residual)


def _vgg(n: int, example_shape: tuple[int, ...], num_classes: int, *, depth: int,
         norm: str = "batchnorm", width: float = 1.0) -> PopModel:
    return VGG(n, example_shape, num_classes, depth, norm=norm, width=width)


# torchvision's networks (lth.models.torchvision_nets), imported when first built: `import lth` stays free of
# torchvision. Depths of imagenet_/tiny_/cifar_resnet_<D>, and each name prefix's stem.
TV_RESNET_DEPTHS = (18, 34, 50, 101, 152)
TV_RESNET_STEMS = {"imagenet": "imagenet", "tiny": "small", "cifar": "small"}


def _tv_resnet(n: int, example_shape: tuple[int, ...], num_classes: int, *, depth: int, stem: str,
               norm: str = "batchnorm", width: float = 1.0) -> PopModel:
    from lth.models.torchvision_nets import build_resnet

    return build_resnet(n, example_shape, num_classes, depth=depth, stem=stem, norm=norm, width=width)


def _inception_v3(n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str = "batchnorm",
                  width: float = 1.0) -> PopModel:
    from lth.models.torchvision_nets import build_inception_v3

    return build_inception_v3(n, example_shape, num_classes, norm=norm, width=width)


# family -> builder(n, example_shape, num_classes, *, norm, width, **family parameters from the name)
MODELS: dict[str, Callable[..., PopModel]] = {
    "fc": _fc,
    "conv2": _conv("conv2"),
    "conv4": _conv("conv4"),
    "conv6": _conv("conv6"),
    "lenet5": _lenet5,
    "resnet": _resnet,
    "vgg": _vgg,
    "tv_resnet": _tv_resnet,  # imagenet_resnet_<D>, tiny_resnet_<D>, cifar_resnet_<D> (torchvision's ResNets)
    "inception_v3": _inception_v3,
    "mobilenet_v1": from_module(mobilenet_v1, init="spec", output="fc", name="mobilenet_v1"),
}


_BUILTIN = frozenset(MODELS)


def _bad(name: str, why: str = "") -> UserError:
    """The one-line error for a ``--model`` value that is not a model: the name forms and every registered model."""
    own = sorted(set(MODELS) - _BUILTIN)
    allowed = NAME_FORMS + (f", or a registered model: {', '.join(own)}" if own else "")
    return UserError(f"{ref('model')}: unknown model {name!r}{': ' + why if why else ''}; allowed: {allowed}",
                     value=name, allowed=allowed)


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """``name`` -> (registry family, family parameters); :class:`UserError` for a name that is not a model."""
    key = str(name).strip().lower()
    if key == "lenet_300_100":
        return "fc", {"hidden": [300, 100]}
    if key in ("conv2", "conv4", "conv6", "lenet5"):
        return key, {}
    if key == "fc":
        raise _bad(name, "fc needs at least one hidden width, e.g. fc_300_100")
    if m := re.fullmatch(r"fc((?:_\d+)+)", key):
        hidden = [int(h) for h in m.group(1).split("_")[1:]]
        if min(hidden) < 1:
            raise _bad(name, "hidden widths must be at least 1")
        return "fc", {"hidden": hidden}
    if m := re.fullmatch(r"resnet_?(\d+)(_plain)?", key):
        depth = int(m.group(1))
        if depth < 8 or (depth - 2) % 6:
            raise _bad(name, f"ResNet depth must be 6n+2 (8, 14, 20, 32, 56, 110, ...), got {depth}")
        return "resnet", {"depth": depth, **({"residual": False} if m.group(2) else {})}
    if m := re.fullmatch(r"vgg_?(\d+)", key):
        depth = int(m.group(1))
        if depth not in VGG_CFGS:
            raise _bad(name, f"VGG depth must be one of {', '.join(map(str, VGG_CFGS))}, got {depth}")
        return "vgg", {"depth": depth}
    if m := re.fullmatch(r"(imagenet|tiny|cifar)_resnet_?(\d+)", key):
        depth = int(m.group(2))
        if depth not in TV_RESNET_DEPTHS:
            raise _bad(name, f"{m.group(1)}_resnet depth must be one of {', '.join(map(str, TV_RESNET_DEPTHS))}, "
                             f"got {depth}")
        return "tv_resnet", {"depth": depth, "stem": TV_RESNET_STEMS[m.group(1)]}
    if key == "tv_resnet":
        raise _bad(name, "name a depth and a stem, e.g. imagenet_resnet_50")
    if key in MODELS:  # a family registered by the user, built without name parameters
        return key, {}
    raise _bad(name)


def build_model(name: str, n: int, example_shape: tuple[int, ...], num_classes: int, norm: str = "batchnorm",
                width: float = 1.0) -> PopModel:
    """Build a population of ``n`` networks named ``name`` for inputs of ``example_shape`` (one example,
    e.g. ``(3, 32, 32)``) and ``num_classes`` outputs. ``norm`` applies to resnet (batchnorm, fixup,
    groupnorm, none, weightnorm) and vgg (batchnorm, none); the other families have no normalisation layers. ``width``
    multiplies every hidden width (rounded, at least 1)."""
    family, params = resolve(name)
    if norm not in NORMS:
        raise UserError(f"{ref('norm')}: unknown norm {norm!r}; allowed: {', '.join(NORMS)}", value=norm,
                        allowed=", ".join(NORMS))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"population size must be a positive integer; got {n!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer; got {num_classes!r}")
    if not width > 0:
        raise UserError(f"width multiplier must be positive; got {width!r}")
    return MODELS[family](n, tuple(example_shape), num_classes, norm=norm, width=width, **params)


def shape_model(name: str, example_shape: tuple[int, ...], num_classes: int, norm: str = "batchnorm",
                width: float = 1.0) -> PopModel:
    """One network ``name`` for planning (parameter counts, layer kinds, operation counts): built on the meta
    device (shapes only: no memory, no initialisation); a family that cannot be built there (a module that reads a
    tensor's value) is built on the CPU, whose error, if any, says what is wrong."""
    try:
        with torch.device("meta"):
            return build_model(name, 1, tuple(example_shape), num_classes, norm, width)
    except Exception:  # noqa: BLE001
        return build_model(name, 1, tuple(example_shape), num_classes, norm, width)


def num_params(name: str, example_shape: tuple[int, ...], num_classes: int, norm: str = "batchnorm",
               width: float = 1.0) -> int:
    """The parameter count of one network ``name`` (as :func:`build_model` builds it), from :func:`shape_model`
    and cached per builder, so planning code (a width search, a capacity check) may ask often."""
    family, _ = resolve(name)
    return _num_params(MODELS[family], name, tuple(example_shape), num_classes, norm, width)


@functools.lru_cache(maxsize=4096)
def _num_params(builder: Callable[..., PopModel], name: str, example_shape: tuple[int, ...], num_classes: int,
                norm: str, width: float) -> int:
    del builder  # part of the cache key only: a name registered again builds another network
    return shape_model(name, example_shape, num_classes, norm, width).num_params()


def register_module(name: str, factory: Callable[..., nn.Module], **opts: Any) -> Callable[..., PopModel]:
    """Register a plain ``torch.nn.Module`` under ``name`` so every command accepts ``--model NAME``: the
    factory is converted by :func:`lth.models.from_module.from_module` (``opts``: ``include``, ``exclude``,
    ``output``, ``init``, ``path``). Returns the registered builder; :class:`UserError` for a name that a
    built-in model already answers to."""
    key = str(name).strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", key):
        raise UserError(f"model name: bad value {name!r}; allowed: letters, digits, '_', '-', '.'")
    try:
        family, _ = resolve(key)
    except UserError:
        family = ""
    if family in _BUILTIN:
        raise UserError(f"model name: bad value {name!r}: it names the built-in model family {family!r}")
    builder = from_module(factory, name=key, **opts)
    MODELS[key] = builder
    return builder


def model_names() -> list[str]:
    """Example model names for help text (every one builds)."""
    return ["lenet_300_100", "fc_300_100", "fc_1000_1000", "conv2", "conv4", "conv6", "lenet5",
            "resnet_20", "resnet_20_plain", "resnet_56", "resnet_110", "vgg_11", "vgg_13", "vgg_16", "vgg_19",
            "imagenet_resnet_18", "imagenet_resnet_50", "tiny_resnet_18", "cifar_resnet_18", "inception_v3",
            "mobilenet_v1"]


__all__ = ["MODELS", "NORMS", "NAME_FORMS", "PopModel", "build_model", "from_module", "model_names", "num_params",
           "shape_model",
           "register_module", "resolve",
           "RESNET_NORMS", "VGG_NORMS"]


def _check_model(spec: Any) -> None:
    resolve(spec.model.model)  # the model name must resolve before anything is written


def _register() -> None:
    from lth.spec import NAME_CHECKS

    if _check_model not in NAME_CHECKS:
        NAME_CHECKS.append(_check_model)


_register()
