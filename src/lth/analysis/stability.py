"""Linear mode connectivity and instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

Two networks ``W1``, ``W2`` (e.g. two copies of one network at step k trained on with different data orders)
are interpolated linearly; ``E(alpha)`` is the error of the network at ``alpha`` on the path. The paper's
*instability* (Sec. 2, "error barrier height") is the largest error on the path minus the mean of the two end
points' errors, ``sup_alpha E(alpha) - mean(E(W1), E(W2))``, evaluated at 30 evenly spaced values of alpha; a
network is *stable* when its instability is below 2% (0.02, errors as fractions). Sec. 4 (Fig. 9) calls a
subnetwork *matching* when its accuracy is within 0.2 points (0.002) of the dense network's.

Paths are evaluated with :func:`lth.engine.evaluate.evaluate_states`, all points of a path as one population.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lth.engine.evaluate import evaluate_states
from lth.errors import UserError, ref
from lth.spec import ModelHparams

State = dict[str, Tensor]
PerK = Mapping[Hashable, float | Sequence[float]]  # rewind point k -> one value or one per replicate
STABLE_THRESHOLD = 0.02  # Frankle et al. 2020, Sec. 2: stable when instability < 2%
MATCHING_TOLERANCE = 0.002  # Frankle et al. 2020, Sec. 4 / Fig. 9: matching when the accuracy drop < 0.2 points
PAPER_POINTS = 30  # Frankle et al. 2020, Sec. 2: 30 evenly spaced values of alpha
_EPS = 1e-12


def default_alphas(points: int = PAPER_POINTS) -> list[float]:
    """``points`` evenly spaced interpolation coefficients from 0 to 1, both ends included."""
    if points < 2:
        raise UserError(f"{ref('points')}: bad value {points}; allowed: an integer >= 2", value=points,
                        allowed="an integer >= 2")
    return torch.linspace(0.0, 1.0, points, dtype=torch.float64).tolist()


def interpolate(a: State, b: State, alphas: Sequence[float]) -> list[State]:
    """The states ``(1 - alpha) * a + alpha * b`` for each alpha (alpha 0 is ``a``, alpha 1 is ``b``, exactly).

    Every floating-point tensor is interpolated (``torch.lerp``; weights, biases and BatchNorm running
    statistics alike); integer and boolean tensors (e.g. ``num_batches_tracked``) are taken from ``a``. Both
    states must have the same keys and shapes."""
    if set(a) != set(b):
        raise ValueError(f"states differ in keys: only in a {sorted(set(a) - set(b))}, "
                         f"only in b {sorted(set(b) - set(a))}")
    for k in a:
        if a[k].shape != b[k].shape:
            raise ValueError(f"state tensor {k}: shape {tuple(a[k].shape)} in a, {tuple(b[k].shape)} in b")
    path = []
    for alpha in alphas:
        path.append({k: torch.lerp(v, b[k].to(v.device), float(alpha)) if v.is_floating_point() else v.clone()
                     for k, v in a.items()})
    return path


def error_barrier(errors: Sequence[float] | Tensor) -> float:
    """Instability (Frankle et al. 2020, Sec. 2): the largest value on the path minus the mean of its two end
    points, ``max(errors) - (errors[0] + errors[-1]) / 2``. ``errors`` runs from one end point to the other; the
    same formula on losses gives the loss barrier. Never negative; exactly 0 on a path of equal errors."""
    e = torch.as_tensor(errors, dtype=torch.float64).flatten()
    if e.numel() < 2:
        raise UserError(f"an error barrier needs a path of at least 2 points; got {e.numel()}")
    return float(e.max() - (e[0] + e[-1]) / 2)


@dataclass(frozen=True)
class PathResult:
    """Errors along an interpolation path and its barriers (errors and accuracies are fractions)."""

    alphas: list[float]
    loss: list[float]
    accuracy: list[float]
    error: list[float]
    instability: float  # error barrier height (Frankle et al. 2020, Sec. 2)
    loss_barrier: float  # the same formula on the losses

    def to_frame(self) -> pd.DataFrame:
        """One row per point of the path: alpha, loss, accuracy, error."""
        d = asdict(self)
        return pd.DataFrame({k: d[k] for k in ("alphas", "loss", "accuracy", "error")}).rename(
            columns={"alphas": "alpha"})


def instability(model: ModelHparams, a: State, b: State, x: Tensor, y: Tensor, *,
                alphas: Sequence[float] | None = None, **evaluate_kw: Any) -> PathResult:
    """Evaluate the linear path from ``a`` to ``b`` on the split ``(x, y)`` and return its errors and barriers.

    ``alphas`` defaults to the paper's 30 evenly spaced points; given, it must run from 0 to 1 (both ends
    included, so that the barrier's ``mean(E(W1), E(W2))`` is the two networks' own errors); ``evaluate_kw`` go to
    :func:`~lth.engine.evaluate.evaluate_states` (``example_shape`` and ``num_classes`` are required; pass
    ``bn_data`` to recompute BatchNorm statistics at every point of the path)."""
    alphas = default_alphas() if alphas is None else [float(v) for v in alphas]
    if len(alphas) < 2:
        raise UserError(f"{ref('alphas')}: need at least 2 points; got {len(alphas)}", value=alphas,
                        allowed="at least 2 points")
    if alphas[0] != 0.0 or alphas[-1] != 1.0:  # the barrier subtracts the mean of E(W1) and E(W2): the path's ends
        raise UserError(f"{ref('alphas')}: bad value {alphas[0]}..{alphas[-1]}; allowed: a path from 0 to 1 (its "
                        "ends are the two networks, whose mean error the barrier subtracts)", value=alphas,
                        allowed="a path from 0 to 1")
    res = evaluate_states(model, interpolate(a, b, alphas), x, y, **evaluate_kw)
    return PathResult(alphas=list(alphas), loss=res["loss"].tolist(), accuracy=res["accuracy"].tolist(),
                      error=res["error"].tolist(), instability=error_barrier(res["error"]),
                      loss_barrier=error_barrier(res["loss"]))


def _reduce(v: float | Sequence[float], how: str) -> float:
    if isinstance(v, int | float):
        return float(v)
    vals = [float(u) for u in v if u is not None and not math.isnan(float(u))]
    if not vals:
        return math.nan
    t = torch.tensor(vals, dtype=torch.float64)
    if how == "mean":
        return float(t.mean())
    if how == "median":  # the paper's Fig. 9 uses medians; quantile(0.5) averages the two middle values
        return float(t.quantile(0.5))
    raise UserError.bad("reduce", how, "mean, median")


def _sorted(d: Mapping[Hashable, Any]) -> list[Hashable]:
    return sorted(d, key=lambda k: (getattr(k, "unit", ""), getattr(k, "count", k)))


def is_stable(instability: float, threshold: float = STABLE_THRESHOLD) -> bool:
    """Frankle et al. 2020, Sec. 2: stable when the instability is below ``threshold`` (2%). An instability is a
    difference of error rates, whole examples over the split's size; one that lands on the threshold in exact
    arithmetic (2 of 100 examples) may come out of float64 a few ulps under it (0.019999999999999962), so the
    comparison leaves rounding out (1e-12): on the threshold is not below it."""
    return instability < threshold - _EPS


def first_stable(k_to_instability: PerK, threshold: float = STABLE_THRESHOLD,
                 reduce: str = "mean") -> Hashable | None:
    """The earliest k whose instability is below ``threshold`` (Frankle et al. 2020: stable when < 2%), or None.

    Values may be one instability or several (replicates), reduced by ``reduce`` (``mean``, or ``median`` as in
    the paper's Fig. 9). Keys are rewind points: iterations (ints) or :class:`lth.spec.Step` values of one unit.
    """
    for k in _sorted(k_to_instability):
        if is_stable(_reduce(k_to_instability[k], reduce), threshold):
            return k
    return None


def first_stable_and_matching(
    k_to_instability: PerK, k_to_accuracy: PerK,
    dense_accuracy: float, threshold: float = STABLE_THRESHOLD, tolerance: float = MATCHING_TOLERANCE,
    reduce: str = "mean",
) -> Hashable | None:
    """The earliest k that is both stable (instability < ``threshold``) and matching (accuracy at least
    ``dense_accuracy - tolerance``; default 0.002 = 0.2 points, Frankle et al. 2020, Fig. 9; the edge itself
    matches, as in :func:`lth.analysis.verdicts.matching`), or None. Only ks present in both maps count."""
    for k in _sorted(k_to_instability):
        if k not in k_to_accuracy:
            continue
        stable = is_stable(_reduce(k_to_instability[k], reduce), threshold)
        acc = _reduce(k_to_accuracy[k], reduce)
        if stable and acc >= dense_accuracy - tolerance - _EPS:
            return k
    return None


__all__ = ["MATCHING_TOLERANCE", "PAPER_POINTS", "PathResult", "STABLE_THRESHOLD", "default_alphas", "error_barrier",
           "first_stable", "first_stable_and_matching", "instability", "interpolate", "is_stable"]
