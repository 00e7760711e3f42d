"""Single-unit ablation: remove each hidden unit of a trained network, one at a time and with no retraining, and
measure the accuracy it costs (seed 003, Introduction: "when single components are removed from a network's
architecture ... the difference in validation accuracy can be measured"; the ablation of Morcos, Barrett,
Rabinowitz & Botvinick, "On the importance of single directions for generalization", ICLR 2018, which seed 000
cites).

A unit is a hidden neuron of a fully connected layer or a channel of a convolution: the axis that one hidden-unit
permutation of :func:`lth.analysis.align.permutation_spec` moves. Removing unit ``j`` zeroes index ``j`` along
every tensor axis that permutation acts on: the unit's incoming weights and bias, its BatchNorm scale, shift and
running statistics, and the next layer's weights that read it, so the unit computes nothing and nothing reads it
(Morcos et al. clamp the unit's activation to zero: the same network function for every unit whose output the
next layer reads only through those weights). Every ablated network is evaluated together as a population
(:func:`lth.engine.evaluate.evaluate_states`), with the stored BatchNorm statistics (no recomputation: no
retraining of any kind). The output layer's units (the classes) are not ablated.

Supported models: those weight matching supports (``fc_*``, ``conv2/4/6``, ``lenet5``, ``vgg_*``); a ResNet's
residual connections tie a stage's channels together (a :class:`UserError` names the supported ones).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import Tensor

from lth.analysis.align import PermSpec, permutation_spec
from lth.spec import ModelHparams

State = dict[str, Tensor]


def units(spec: PermSpec, state: State) -> dict[str, int]:
    """``{layer: number of units}`` for every hidden layer of ``spec`` (a permutation's name is its layer's)."""
    out = {}
    for name, [(key, axis), *_] in spec.perms.items():
        out[name] = spec.view(key, state[key]).shape[axis]
    return out


def ablate_unit(spec: PermSpec, state: State, layer: str, unit: int) -> State:
    """``state`` with unit ``unit`` of hidden layer ``layer`` removed: index ``unit`` zeroed along every axis the
    layer's permutation acts on (its incoming weights and bias, its norm's parameters and statistics, the next
    layer's weights that read it). Other tensors are shared with ``state``, not copied."""
    out = dict(state)
    for key, axis in spec.perms[layer]:
        t = state[key]
        v = spec.view(key, t.clone())
        v.select(axis, unit).zero_()
        out[key] = v.reshape(t.shape)
    return out


def unit_ablation(model: ModelHparams, state: State, x: Tensor, y: Tensor, *, example_shape: tuple[int, ...],
                  num_classes: int, device: str = "cpu", max_population: int = 64) -> pd.DataFrame:
    """Accuracy on ``(x, y)`` of ``state`` with each hidden unit removed in turn (see the module docstring).
    Columns: ``layer``, ``unit``, ``accuracy`` (with the unit removed), ``base_accuracy`` (nothing removed) and
    ``drop`` = ``base_accuracy - accuracy`` (a fraction; negative where removing the unit helps). Units that are
    already dead (every weight that reads them zero, e.g. pruned away) have a drop of exactly 0."""
    from lth.engine.evaluate import evaluate_states

    spec = permutation_spec(model, state)
    cells = [(layer, j) for layer, n in units(spec, state).items() for j in range(n)]
    states = [state] + [ablate_unit(spec, state, layer, j) for layer, j in cells]
    res = evaluate_states(model, states, x, y, example_shape=example_shape, num_classes=num_classes, device=device,
                          max_population=max_population)
    acc = res["accuracy"].tolist()
    rows = [{"layer": layer, "unit": j, "accuracy": a, "base_accuracy": acc[0], "drop": acc[0] - a}
            for (layer, j), a in zip(cells, acc[1:], strict=True)]
    return pd.DataFrame(rows, columns=["layer", "unit", "accuracy", "base_accuracy", "drop"])


def ablation_summary(df: pd.DataFrame, threshold: float = 0.01) -> pd.DataFrame:
    """Per layer of a :func:`unit_ablation` frame: ``units``, ``mean_drop``, ``max_drop``, the unit with the largest
    drop, and ``share_above`` (the fraction of units whose removal costs more than ``threshold``, 1 point by
    default)."""
    rows: list[dict[str, Any]] = []
    for layer, d in df.groupby("layer", sort=False):
        top = d.loc[d["drop"].idxmax()]
        rows.append({"layer": layer, "units": len(d), "mean_drop": float(d["drop"].mean()),
                     "max_drop": float(d["drop"].max()), "max_unit": int(top["unit"]),
                     "share_above": float((d["drop"] > threshold).mean())})
    return pd.DataFrame(rows, columns=["layer", "units", "mean_drop", "max_drop", "max_unit", "share_above"])


__all__ = ["ablate_unit", "ablation_summary", "unit_ablation", "units"]
