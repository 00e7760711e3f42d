"""Two-dimensional slices of the loss landscape: planes in weight space, grids on them, projected trajectories.

A :class:`Plane` is an origin state and two orthonormal directions ``u``, ``v`` over the flattened floating
tensors of a state dict (all of them by default, BatchNorm running statistics included; pass ``keys`` to span
fewer, the others are then the origin's). The state at coordinates ``(x, y)`` is ``origin + x u + y v``, and the
projection of a state ``s`` is ``(<s - origin, u>, <s - origin, v>)``; for a state in the plane that recovers its
coordinates exactly (up to float rounding). Coordinates are in the units of the weights (Euclidean distances).

- :func:`plane_through`: the plane through three states ``a``, ``b``, ``c`` with origin ``a``: ``u`` is
  ``b - a`` normalised and ``v`` is ``c - a`` with its ``u`` component removed, normalised (Gram-Schmidt, via a QR
  decomposition with positive diagonal). So ``a`` is at ``(0, 0)``, ``b`` at ``(|b - a|, 0)`` and ``c`` at
  ``(<c - a, u>, |c - a - <c - a, u> u|)``, with ``c`` above the axis.
- :func:`pca_plane`: the plane of the first two principal directions of a training trajectory ``s_0 .. s_T``
  (Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018, Sec. 7):
  PCA of the rows ``s_i - s_T`` (i < T), centred as in PCA, origin at the final state ``s_T``. This is the
  view of Ma et al.'s trajectory-on-contour figures (Figs. 4-5 of the sanity-check paper in the seeds).

Grids of states are evaluated as populations with :func:`lth.engine.evaluate.evaluate_states`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lth.errors import UserError, ref

State = dict[str, Tensor]


def _keys(state: State, keys: Sequence[str] | None) -> tuple[str, ...]:
    if keys is None:
        return tuple(k for k, v in state.items() if v.is_floating_point())
    bad = [k for k in keys if k not in state or not state[k].is_floating_point()]
    if bad:
        raise UserError(f"landscape keys: {bad} are not floating tensors of the state; allowed: "
                        f"{[k for k, v in state.items() if v.is_floating_point()]}")
    return tuple(keys)


def flatten(state: State, keys: Sequence[str]) -> Tensor:
    """The tensors ``keys`` of ``state`` as one float64 CPU vector."""
    return torch.cat([state[k].detach().double().cpu().flatten() for k in keys])


@dataclass(frozen=True)
class Plane:
    """An origin state and orthonormal flat directions ``u``, ``v`` over ``keys`` (see the module docstring)."""

    origin: State
    u: Tensor
    v: Tensor
    keys: tuple[str, ...]
    explained: tuple[float, float] | None = None  # PCA planes: fraction of variance along u and v

    def state(self, x: float, y: float) -> State:
        """The state at ``origin + x u + y v`` (each tensor in the origin's dtype and device)."""
        flat = flatten(self.origin, self.keys) + float(x) * self.u + float(y) * self.v
        out = {k: t.clone() for k, t in self.origin.items()}
        at = 0
        for k in self.keys:
            t = self.origin[k]
            out[k] = flat[at:at + t.numel()].view(t.shape).to(dtype=t.dtype, device=t.device)
            at += t.numel()
        return out

    def states(self, coords: Sequence[tuple[float, float]] | Tensor) -> list[State]:
        """:meth:`state` at each ``(x, y)``."""
        return [self.state(float(x), float(y)) for x, y in torch.as_tensor(coords, dtype=torch.float64).tolist()]

    def project(self, state: State) -> tuple[float, float]:
        """Coordinates ``(<s - origin, u>, <s - origin, v>)`` of ``state``."""
        d = flatten(state, self.keys) - flatten(self.origin, self.keys)
        return float(d @ self.u), float(d @ self.v)

    def project_all(self, states: Sequence[State]) -> Tensor:
        """``[len(states), 2]`` coordinates of a trajectory."""
        return torch.tensor([self.project(s) for s in states], dtype=torch.float64)


def plane_through(a: State, b: State, c: State, keys: Sequence[str] | None = None) -> Plane:
    """The plane through ``a``, ``b`` and ``c`` with origin ``a`` and orthonormalised directions ``b - a``,
    ``c - a`` (Gram-Schmidt; see the module docstring). :class:`UserError` if the three are collinear."""
    ks = _keys(a, keys)
    fa = flatten(a, ks)
    m = torch.stack([flatten(b, ks) - fa, flatten(c, ks) - fa], dim=1)
    q, r = torch.linalg.qr(m)
    diag = torch.diagonal(r)
    # collinear up to float32 rounding of the states: c - a has (almost) no component off b - a
    if not diag[0].abs() > 0 or not diag[1].abs() > 1e-5 * m[:, 1].norm():
        raise UserError("landscape: the three states are collinear (or equal); they span no plane")
    q = q * diag.sign()
    return Plane(origin={k: t.clone() for k, t in a.items()}, u=q[:, 0].contiguous(), v=q[:, 1].contiguous(),
                 keys=ks)


def pca_plane(trajectory: Sequence[State], keys: Sequence[str] | None = None) -> Plane:
    """The plane of the first two principal directions of ``trajectory`` (states in training order), origin
    at its last state (Li et al. 2018, Sec. 7): PCA (centred, by SVD) of the rows ``s_i - s_T``, i < T.
    ``explained`` holds the variance ratios of the two directions. Needs at least three states."""
    if len(trajectory) < 3:
        raise UserError(f"landscape: a PCA plane needs a trajectory of at least 3 states; got {len(trajectory)}")
    final = trajectory[-1]
    ks = _keys(final, keys)
    ff = flatten(final, ks)
    m = torch.stack([flatten(s, ks) - ff for s in trajectory[:-1]])
    m = m - m.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    if s.numel() < 2 or not s[1] > 0:
        raise UserError("landscape: the trajectory varies along fewer than two directions")
    var = s.pow(2)
    ratio = (var[:2] / var.sum()).tolist()
    return Plane(origin={k: t.clone() for k, t in final.items()}, u=vh[0].contiguous(), v=vh[1].contiguous(),
                 keys=ks, explained=(ratio[0], ratio[1]))


def grid_coordinates(xs: Sequence[float] | Tensor, ys: Sequence[float] | Tensor) -> Tensor:
    """``[len(ys), len(xs), 2]`` grid of ``(x, y)``; row ``i`` has ``y = ys[i]``, so values computed in the
    order of ``grid_coordinates(xs, ys).reshape(-1, 2)`` reshape to ``[len(ys), len(xs)]`` for ``contour``."""
    gx, gy = torch.meshgrid(torch.as_tensor(xs, dtype=torch.float64), torch.as_tensor(ys, dtype=torch.float64),
                            indexing="xy")
    return torch.stack([gx, gy], dim=-1)


def grid_states(plane: Plane, xs: Sequence[float] | Tensor, ys: Sequence[float] | Tensor) -> list[State]:
    """The states at every grid point, in row-major order of :func:`grid_coordinates` (``len(xs) * len(ys)``
    states held in memory at once: for large grids, call it on slices of ``ys``)."""
    return plane.states(grid_coordinates(xs, ys).reshape(-1, 2))


def span(points: Tensor | Sequence[tuple[float, float]], steps: int = 21, margin: float = 0.25
         ) -> tuple[Tensor, Tensor]:
    """Evenly spaced ``xs``, ``ys`` (``steps`` each) covering ``points`` ``[K, 2]`` with ``margin`` times their
    extent added on every side."""
    if steps < 2:
        raise UserError(f"{ref('steps')}: bad value {steps}; allowed: an integer >= 2", value=steps,
                        allowed="an integer >= 2")
    p = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 2)
    lo, hi = p.min(0).values, p.max(0).values
    ext = (hi - lo).clamp_min(1e-12)
    ext = torch.maximum(ext, ext.max() * 0.1)  # a flat set of points still gets some height
    lo, hi = lo - margin * ext, hi + margin * ext
    xs, ys = (torch.linspace(float(lo[i]), float(hi[i]), steps, dtype=torch.float64) for i in range(2))
    return xs, ys


__all__ = ["Plane", "flatten", "grid_coordinates", "grid_states", "pca_plane", "plane_through", "span"]
