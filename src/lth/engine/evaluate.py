"""Evaluate any list of single-network states of one architecture as one population.

Interpolation paths (instability analysis), loss-landscape grids and similar analyses produce many states of
one architecture that were never trained together. :func:`evaluate_states` loads each as a member of a
population model (``lth.models.build_model``), evaluates them all in one pass over the data (chunked when the
list is longer than ``max_population``) and returns each state's loss, accuracy and error.

BatchNorm. A network whose weights were interpolated (or moved along a landscape direction) has no running
statistics of its own: the interpolated running means and variances are not the statistics of the interpolated
network's activations, and evaluating with them overstates error barriers. With ``bn_data`` the running
statistics of every :class:`~lth.models.layers.PopBatchNorm2d` are recomputed before evaluation
(:func:`recompute_batchnorm`): reset to mean 0 / variance 1, then the cumulative average (``momentum=None`` in
``torch.nn.BatchNorm2d``) of the batch statistics over a fixed set of training batches, forward in train mode
without gradients. This is the "reset BN statistics" step of Ainsworth et al. (Git Re-Basin, ICLR 2023) and
Jordan et al. (REPAIR, ICLR 2023) for interpolated BN networks; the instability definition itself is Frankle,
Dziugaite, Roy & Carbin (ICML 2020, Sec. 2). Without ``bn_data`` the states' own running statistics are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lth.errors import UserError, ref
from lth.models import PopModel, build_model
from lth.models.layers import PopBatchNorm2d, PopConv2d, use_channels_last
from lth.spec import ModelHparams

PRECISIONS = ("fp32", "bf16")


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    if precision not in PRECISIONS:
        raise UserError.bad("precision", precision, ", ".join(PRECISIONS))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def default_chunk_budget(device: torch.device) -> int:
    """Input values per evaluation chunk (examples x members x values per example), as the training loop uses."""
    return 1 << (25 if device.type == "cuda" else 22)


def _batchnorms(model: PopModel) -> list[Any]:
    """``model``'s BatchNorm layers with running statistics: lth's own, and those a model lists in ``batchnorms()``
    (an own ``nn.Module`` on the vmap path, :class:`lth.models.from_module.StackedBatchNorm`)."""
    own = getattr(model, "batchnorms", None)
    return [m for m in model.modules() if isinstance(m, PopBatchNorm2d)] + (list(own()) if own else [])


def has_batchnorm(model: PopModel) -> bool:
    """Whether ``model`` has BatchNorm layers (running statistics)."""
    return bool(_batchnorms(model))


@torch.no_grad()
def recompute_batchnorm(model: PopModel, x: Tensor, batches: int, batch_size: int, precision: str = "fp32") -> int:
    """Recompute every member's BatchNorm running statistics on ``x`` (training inputs ``[M, *example]``).

    Running means are reset to 0 and variances to 1, then the model runs in train mode, without gradients, on
    the first ``batches`` consecutive batches of ``batch_size`` examples of ``x`` (fewer if ``x`` is shorter; a
    last partial batch is dropped unless it is the only one); every member sees the same batches. The running
    statistics become the plain average of the per-batch statistics (momentum ``1/t`` at the t-th batch, which
    is ``torch.nn.BatchNorm2d``'s cumulative average ``momentum=None``): the mean of the batch means and the
    mean of the unbiased batch variances. Returns the number of batches used; the model is left in eval mode.
    """
    norms = _batchnorms(model)
    if not norms:
        return 0
    if batches < 1 or batch_size < 1:
        raise UserError(f"{ref('bn_batches')} / {ref('bn_batch_size')}: bad value {batches} / {batch_size}; "
                        "allowed: positive integers", value=(batches, batch_size), allowed="positive integers")
    if x.shape[0] < 2:
        raise UserError(f"BatchNorm statistics need at least 2 training examples; got {x.shape[0]}")
    size = min(batch_size, x.shape[0])
    used = min(batches, x.shape[0] // size)
    device = next(model.parameters()).device
    saved = [m.momentum for m in norms]
    for m in norms:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
    model.train()
    try:
        with _autocast(device, precision):
            for t in range(used):
                for m in norms:
                    m.momentum = 1.0 / (t + 1)
                model(x[t * size:(t + 1) * size].to(device).unsqueeze(0))
    finally:
        for m, mom in zip(norms, saved, strict=True):
            m.momentum = mom
        model.eval()
    return used


@torch.no_grad()
def evaluate_population(model: PopModel, x: Tensor, y: Tensor, precision: str = "fp32",
                        chunk_budget: int | None = None) -> dict[str, Tensor]:
    """Mean cross-entropy loss, accuracy and error (= 1 - accuracy) of every member of ``model`` on ``(x, y)``.

    The model is evaluated in eval mode on chunks of examples shared by all members (at most ``chunk_budget``
    input values per chunk across the population). Returns CPU float64 tensors ``[N]`` under ``loss``,
    ``accuracy`` and ``error``; accuracies are fractions."""
    device = next(model.parameters()).device
    n = model.n
    if x.shape[0] == 0 or x.shape[0] != y.shape[0]:
        raise UserError(f"evaluation data: {x.shape[0]} inputs and {y.shape[0]} labels; need the same, at least 1")
    budget = chunk_budget or default_chunk_budget(device)
    chunk = max(1, min(x.shape[0], budget // max(1, n * x[0].numel())))
    loss = torch.zeros(n, dtype=torch.float64, device=device)
    correct = torch.zeros(n, dtype=torch.float64, device=device)
    model.eval()
    with _autocast(device, precision):
        for a in range(0, x.shape[0], chunk):
            xc, yc = x[a:a + chunk].to(device).unsqueeze(0), y[a:a + chunk].to(device)
            logits = model(xc).float()
            loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yc.repeat(n), reduction="none") \
                .view(n, -1).double().sum(1)
            correct += (logits.argmax(-1) == yc).double().sum(1)
    acc = (correct / x.shape[0]).cpu()
    return {"loss": (loss / x.shape[0]).cpu(), "accuracy": acc, "error": 1.0 - acc}


def evaluate_states(
    model: ModelHparams, states: Sequence[dict[str, Tensor]], x: Tensor, y: Tensor, *,
    example_shape: tuple[int, ...], num_classes: int, device: str | torch.device = "cpu",
    bn_data: Tensor | None = None, bn_batches: int = 30, bn_batch_size: int = 128, precision: str = "fp32",
    max_population: int = 64, chunk_budget: int | None = None, one_by_one: bool | None = None,
) -> dict[str, Tensor]:
    """Loss, accuracy and error of each single-network state in ``states`` on ``(x, y)``.

    ``model`` names the architecture (its ``model``, ``norm`` and ``width``; the initialiser is unused), and
    every state is a member state dict of it (``PopModel.member_state``), e.g. a stored state or an interpolated
    one. The states are loaded as members of populations of at most ``max_population`` and evaluated together;
    the result does not depend on how they are grouped. With ``bn_data`` (training inputs) and a model with
    BatchNorm, each member's running statistics are first recomputed on ``bn_batches`` batches of
    ``bn_batch_size`` of ``bn_data`` (:func:`recompute_batchnorm`; the states passed in are not changed).

    ``one_by_one``: after the BatchNorm statistics are recomputed (as one population), evaluate the states one at
    a time through a single network on large chunks of examples instead of as one grouped population (None: on
    CUDA for convnets, where cuDNN runs a plain convolution over many examples much faster than a grouped one;
    the numbers agree to float rounding). On CUDA convnets take channels-last inputs and weights, as in training.

    Returns CPU float64 tensors ``[len(states)]`` under ``loss`` (mean cross-entropy), ``accuracy`` (fraction)
    and ``error`` (1 - accuracy), in the order of ``states``.
    """
    if not states:
        raise UserError("evaluate_states: no states to evaluate")
    if max_population < 1:
        raise UserError(f"{ref('max_population')}: bad value {max_population}; allowed: a positive integer",
                        value=max_population, allowed="a positive integer")
    dev = torch.device(device)
    out: dict[str, list[Tensor]] = {"loss": [], "accuracy": [], "error": []}

    def build(n: int) -> PopModel:
        pop = build_model(model.model, n, tuple(example_shape), num_classes, model.norm, model.width).to(dev)
        if dev.type == "cuda":
            use_channels_last(pop)
        return pop

    single: PopModel | None = None
    for a in range(0, len(states), max_population):
        group = states[a:a + max_population]
        pop = build(len(group))
        for i, s in enumerate(group):
            pop.load_member(i, {k: v.to(dev) for k, v in s.items()})
        if bn_data is not None and has_batchnorm(pop):
            recompute_batchnorm(pop, bn_data, bn_batches, bn_batch_size, precision)
        alone = one_by_one if one_by_one is not None else (dev.type == "cuda" and has_conv(pop))
        if alone and len(group) > 1:
            if single is None:
                single = build(1)
            parts = []
            for i in range(len(group)):
                single.load_member(0, pop.member_state(i))
                parts.append(evaluate_population(single, x, y, precision, chunk_budget))
            res = {k: torch.cat([p[k] for p in parts]) for k in out}
        else:
            res = evaluate_population(pop, x, y, precision, chunk_budget)
        for k in out:
            out[k].append(res[k])
        del pop
    return {k: torch.cat(v) for k, v in out.items()}


def has_conv(model: PopModel) -> bool:
    """Whether ``model`` has convolutions."""
    return any(isinstance(m, PopConv2d) for m in model.modules())


__all__ = ["PRECISIONS", "default_chunk_budget", "evaluate_population", "evaluate_states", "has_batchnorm",
           "recompute_batchnorm"]
