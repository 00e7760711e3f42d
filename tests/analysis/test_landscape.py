"""Landscape planes: three states project to their own coordinates, grid states are the hand-computed sums."""

from __future__ import annotations

import pytest
import torch

from lth.analysis.landscape import flatten, grid_coordinates, grid_states, pca_plane, plane_through, span
from lth.engine.evaluate import evaluate_states
from lth.errors import UserError
from lth.models import build_model
from lth.spec import ModelHparams

HP = ModelHparams(model="fc_6_5", width=1.0)
SHAPE = (3,)


def _states(k: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    pop = build_model(HP.model, k, SHAPE, 2)
    return [pop.member_state(i) for i in range(k)]


def test_three_states_project_to_their_coordinates():
    a, b, c = _states(3)
    plane = plane_through(a, b, c)
    assert float(plane.u @ plane.u) == pytest.approx(1.0) and float(plane.v @ plane.v) == pytest.approx(1.0)
    assert float(plane.u @ plane.v) == pytest.approx(0.0, abs=1e-12)
    fa, fb, fc = (flatten(s, plane.keys) for s in (a, b, c))
    ab, ac = fb - fa, fc - fa
    cu = float(ac @ ab) / float(ab.norm())  # hand-computed Gram-Schmidt coordinates of c
    cv = float((ac - cu * ab / ab.norm()).norm())
    assert plane.project(a) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert plane.project(b) == pytest.approx((float(ab.norm()), 0.0), abs=1e-9)
    assert plane.project(c) == pytest.approx((cu, cv), abs=1e-9)
    # and the states at those coordinates are the three states again
    for s, (x, y) in ((a, (0.0, 0.0)), (b, plane.project(b)), (c, plane.project(c))):
        back = plane.state(x, y)
        assert all(torch.allclose(back[k], s[k], atol=1e-6) for k in s)


def test_grid_state_is_the_hand_computed_combination():
    a, b, c = _states(3, seed=1)
    plane = plane_through(a, b, c)
    xs, ys = [-0.5, 0.0, 1.0], [0.25, 2.0]
    coords = grid_coordinates(xs, ys)
    assert coords.shape == (2, 3, 2) and coords[1, 0].tolist() == [-0.5, 2.0]
    states = grid_states(plane, xs, ys)
    assert len(states) == 6
    fa, fb, fc = (flatten(s, plane.keys) for s in (a, b, c))
    u = (fb - fa) / (fb - fa).norm()
    w = (fc - fa) - ((fc - fa) @ u) * u
    v = w / w.norm()
    want = fa + (-0.5) * u + 2.0 * v  # row 1 (y = 2.0), column 0 (x = -0.5)
    torch.testing.assert_close(flatten(states[3], plane.keys), want, rtol=0, atol=1e-6)
    # grid states are evaluated as one population, in the grid's order
    x, y = torch.randn(11, *SHAPE), torch.randint(0, 2, (11,))
    err = evaluate_states(HP, states, x, y, example_shape=SHAPE, num_classes=2)["error"]
    assert err.reshape(len(ys), len(xs)).shape == (2, 3)


def test_pca_plane_of_a_planar_trajectory():
    """A trajectory inside a known plane: the PCA plane contains it (projections reproduce every state)."""
    a, b, c = _states(3, seed=2)
    ref = plane_through(a, b, c)
    coords = [(3.0 - t, 0.5 * t * t - t) for t in range(6)]  # curved, so two principal directions are needed
    traj = ref.states(coords)
    plane = pca_plane(traj)
    assert plane.explained is not None and sum(plane.explained) == pytest.approx(1.0)
    assert plane.project(traj[-1]) == (0.0, 0.0)
    assert float(plane.u @ plane.v) == pytest.approx(0.0, abs=1e-9)
    for s, (px, py) in zip(traj, plane.project_all(traj).tolist(), strict=True):
        back = plane.state(px, py)
        assert all(torch.allclose(back[k], s[k], atol=1e-5) for k in s)
    # distances between trajectory points are preserved by the projection
    p = plane.project_all(traj)
    q = torch.tensor(coords, dtype=torch.float64)
    torch.testing.assert_close(torch.cdist(p, p), torch.cdist(q, q), rtol=1e-5, atol=1e-5)


def test_span_and_bad_input():
    xs, ys = span([(0.0, 0.0), (2.0, 0.0), (1.0, 1.0)], steps=5, margin=0.5)
    assert xs[0] == -1.0 and xs[-1] == 3.0 and ys[0] == -0.5 and ys[-1] == 1.5 and len(xs) == 5
    a, b, _ = _states(3)
    with pytest.raises(UserError, match="collinear"):
        plane_through(a, b, {k: 2 * b[k] - a[k] for k in a})
    with pytest.raises(UserError, match="at least 3"):
        pca_plane([a, b])
