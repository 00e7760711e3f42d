"""Verdicts on weights: R_p weight correlation, D_n histograms and frame potential.

States and masks are dicts keyed by parameter names (as stored in ``states/*.pt`` and ``mask.pt``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lth.analysis.telemetry import weight_telemetry
from lth.store import RunDir


def _layers(a: Mapping[str, Tensor], b: Mapping[str, Tensor], layers: Iterable[str] | None) -> list[str]:
    if layers is not None:
        return list(layers)
    return [k for k in a if k in b and a[k].is_floating_point() and a[k].dim() >= 2]


def weight_correlation(a: Mapping[str, Tensor], b: Mapping[str, Tensor], p: float,
                       layers: Iterable[str] | None = None) -> float:
    """R_p of Liu et al., "Lottery Ticket Preserves Weight Correlation: Is It Desirable or Not?" (ICML 2021,
    Section 3, "weight correlation indicator"):

        R_p(a, b) = sum_l card(T_p(a^l) & T_p(b^l)) / (p * sum_l N_l)

    T_p(a^l) is the set of positions of the top-p largest-magnitude weights of layer l (N_l weights) in state
    ``a``; lth takes k_l = floor(p * N_l) of them (the paper does not say how a fractional p * N_l is rounded; the
    floor keeps T_p within the top fraction p, so R_p <= 1). The denominator is the paper's ``p * sum_l N_l``
    exactly, so where some p * N_l is not an integer R_p of a state with itself is ``sum_l k_l / (p * sum_l
    N_l)`` < 1; where every p * N_l is an integer it is exactly 1. Two unrelated random states give about p
    (> p: positive correlation, < p: negative). ``layers`` defaults to the floating tensors of dimension >= 2
    present in both states (the weight matrices and kernels: the paper computes R_p "on the whole DNN", layer
    by layer)."""
    if not 0 < p <= 1:
        raise ValueError(f"p={p}: expected 0 < p <= 1")
    overlap = kept = n_total = 0
    for name in _layers(a, b, layers):
        x, y = a[name].detach().flatten().abs().double(), b[name].detach().flatten().abs().double()
        if x.numel() != y.numel():
            raise ValueError(f"{name}: {x.numel()} weights in one state, {y.numel()} in the other")
        n_total += x.numel()
        k = math.floor(p * x.numel() + 1e-9)  # 1e-9: 0.29 * 100 is 28.999999999999996
        kept += k
        if k == 0:
            continue
        top_a = torch.zeros(x.numel(), dtype=torch.bool)
        top_a[torch.topk(x, k, sorted=False).indices] = True
        top_b = torch.zeros(y.numel(), dtype=torch.bool)
        top_b[torch.topk(y, k, sorted=False).indices] = True
        overlap += int((top_a & top_b).sum())
    if n_total == 0:
        return float("nan")
    denominator = p * n_total
    if abs(denominator - kept) < 1e-9 * max(1.0, denominator):  # every p * N_l an integer: the same number, exact
        denominator = kept
    return overlap / denominator


def rp_curve(a: Mapping[str, Tensor], b: Mapping[str, Tensor], ps: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
             layers: Iterable[str] | None = None) -> pd.DataFrame:
    """:func:`weight_correlation` at each p: columns ``p`` and ``r_p``."""
    names = _layers(a, b, layers)
    return pd.DataFrame({"p": list(ps), "r_p": [weight_correlation(a, b, p, names) for p in ps]})


def dn_histograms(init_state: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, dict[str, np.ndarray]]:
    """Per masked layer, the values for the D_n histograms (Frankle et al.'s distribution of the ticket's
    initial weights): ``ticket`` = the initial weights the mask keeps that are nonzero, ``all`` = every initial
    weight of that layer (the initialisation distribution). Both as float64 numpy arrays."""
    out = {}
    for name, m in mask.items():
        w = init_state[name].detach().double().flatten()
        kept = w[m.flatten().bool()]
        out[name] = {"ticket": kept[kept != 0].numpy(), "all": w.numpy()}
    return out


def dn_values(init_state: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> np.ndarray:
    """theta_LT = nonzero(m * theta_0) over the *whole network* (mask-topology study, seed 004, section 2): the
    nonzero initial weights the mask keeps, every masked layer in the mask's order, as one float64 array. Its
    empirical distribution is the study's D_n, the pool :func:`lth.prune.sample_dn` (``pool="network"``) draws
    from, and the histogram of its Figure 5 (one per network, not per layer)."""
    parts = [init_state[name].detach().double().cpu().flatten()[m.flatten().bool().cpu()] for name, m in mask.items()]
    if not parts:
        return np.zeros(0)
    kept = torch.cat(parts)
    return kept[kept != 0].numpy()


def frame_potential(weight: Tensor) -> float:
    """Frame potential of a layer's rows: FP = sum_{i,j} <u_i, u_j>^2 with u_i = w_i / |w_i|, the rows of
    ``weight`` (one per neuron or filter, a conv kernel flattened) normalised to unit length; = ||U U^T||_F^2.

    Every (i, i) term is 1, so FP >= n for n nonzero rows; it equals n exactly for orthogonal rows and n^2 for
    rows all parallel. For n rows in d dimensions the minimum is max(n, n^2 / d) (a tight frame). All-zero rows
    (pruned-away neurons) have no direction and are left out."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    norms = w.norm(dim=1)
    u = w[norms > 0] / norms[norms > 0, None]
    return float(((u @ u.T) ** 2).sum())


def telemetry(states: Sequence[tuple[int, Mapping[str, Tensor]]], layers: Iterable[str]) -> list[dict[str, float]]:
    """Weight telemetry over training (Frankle, Schwab & Morcos 2020, "The early phase of neural network
    training"): for each ``(iteration, state)``, over the named layers' weights taken together, the mean |w|, the
    fraction of initially nonzero weights whose sign differs from the first state's, the L2 distance to the
    first and to the last state, and the cosine similarity to the first and to the last state (computed by
    :func:`lth.analysis.telemetry.weight_telemetry`, which the engine can run on a population's device
    tensors)."""
    names = list(layers)
    ordered = sorted(states, key=lambda x: x[0])
    if not ordered:
        return []

    def population(state: Mapping[str, Tensor]) -> list[Tensor]:  # one network as a population of one
        return [state[k].detach().double().unsqueeze(0) for k in names]

    first, last = population(ordered[0][1]), population(ordered[-1][1])
    keys = ("mean_abs_weight", "sign_changed_fraction", "l2_from_init", "l2_from_final", "cosine_to_init",
            "cosine_to_final")
    rows = []
    for it, state in ordered:
        t = weight_telemetry(population(state), first, last, dtype=torch.float64)
        rows.append({"iteration": it, **{k: float(t[k][0]) for k in keys}})
    return rows


def run_telemetry(path: Path) -> list[dict[str, Any]]:
    """The weight telemetry of the run at ``path``: the rows of its ``telemetry.csv`` (recorded by the engine,
    ``EngineOptions.telemetry_every``) when it has one, else :func:`telemetry` of its stored states over the
    conv and linear weights (tensors of dimension >= 2) when it holds at least three, else []."""
    store = RunDir(path)
    if store.has_telemetry():
        return pd.read_csv(store.telemetry_file).to_dict("records")
    index = store.state_iterations()
    if len(index) < 3:
        return []
    states = [(it, store.load_state(name)) for name, it in index.items()]
    layers = [k for k, v in states[0][1].items() if v.dim() >= 2]  # conv and linear weights
    return telemetry(states, layers)


def telemetry_frame(runs: pd.DataFrame, columns: Sequence[str] = ("path", "experiment", "replicate"),
                    recorded: bool = False) -> pd.DataFrame:
    """The weight telemetry of each run of ``runs`` (a runs frame's rows) as one frame: every row of its
    ``telemetry.csv`` (or, unless ``recorded``, of its stored states: :func:`lth.analysis.weights.run_telemetry`)
    beside the run's ``columns``; runs without telemetry add no row. Empty (no columns) when none has any."""
    frames = []
    for _, run in runs.iterrows():
        rows = run_telemetry(run["path"]) if not recorded or RunDir(run["path"]).has_telemetry() else []
        if rows:
            keep: dict[str, Any] = {c: run[c] for c in columns if c in run}
            frames.append(pd.DataFrame(rows).assign(**keep))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df[[*[c for c in columns if c in df], *[c for c in df.columns if c not in columns]]]
