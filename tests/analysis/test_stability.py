"""Instability analysis: interpolation, the error barrier, paths evaluated as populations, stable / matching k."""

from __future__ import annotations

import pytest
import torch

from lth.analysis.stability import (
    default_alphas,
    error_barrier,
    first_stable,
    first_stable_and_matching,
    instability,
    interpolate,
)
from lth.engine.evaluate import evaluate_states
from lth.errors import UserError
from lth.models import build_model
from lth.spec import ModelHparams, Step

SHAPE = (4,)
HP = ModelHparams(model="fc_16_8", width=1.0)


def _two(seed: int = 0) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    pop = build_model(HP.model, 2, SHAPE, 3)
    return pop.member_state(0), pop.member_state(1)


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(n, *SHAPE, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_interpolate_hand_computed_and_exact_ends():
    a = {"w": torch.tensor([0.0, 1.0, -2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, -1.0, 2.0]), "n": torch.tensor(7)}
    path = interpolate(a, b, [0.0, 0.25, 1.0])
    assert torch.equal(path[0]["w"], a["w"]) and torch.equal(path[2]["w"], b["w"])
    assert torch.allclose(path[1]["w"], torch.tensor([1.0, 0.5, -1.0]))
    assert all(p["n"].item() == 3 for p in path)  # integer buffers from a
    with pytest.raises(ValueError, match="keys"):
        interpolate(a, {"w": b["w"]}, [0.5])


def test_error_barrier_definition():
    assert error_barrier([0.1, 0.3, 0.2, 0.1]) == pytest.approx(0.3 - 0.1)
    assert error_barrier([0.1, 0.05, 0.3]) == pytest.approx(0.3 - 0.2)
    assert error_barrier([0.2, 0.1, 0.1]) == pytest.approx(0.05)  # the larger end point is the max
    assert error_barrier(torch.tensor([0.4, 0.4, 0.4])) == 0.0
    with pytest.raises(UserError):
        error_barrier([0.1])
    assert len(default_alphas()) == 30 and default_alphas()[0] == 0.0 and default_alphas()[-1] == 1.0


def test_identical_states_have_zero_instability():
    a, _ = _two()
    x, y = _data()
    res = instability(HP, a, {k: v.clone() for k, v in a.items()}, x, y, example_shape=SHAPE, num_classes=3)
    assert res.instability == 0.0 and res.loss_barrier == 0.0
    assert len(res.error) == 30 and len(set(res.error)) == 1


def test_path_end_points_are_the_states_own_errors():
    a, b = _two(1)
    x, y = _data()
    res = instability(HP, a, b, x, y, alphas=default_alphas(7), example_shape=SHAPE, num_classes=3,
                      max_population=3)
    own = evaluate_states(HP, [a, b], x, y, example_shape=SHAPE, num_classes=3)
    assert res.error[0] == pytest.approx(own["error"][0].item(), abs=1e-12)
    assert res.error[-1] == pytest.approx(own["error"][1].item(), abs=1e-12)
    assert res.loss[0] == pytest.approx(own["loss"][0].item(), rel=1e-6)
    assert res.loss[-1] == pytest.approx(own["loss"][1].item(), rel=1e-6)
    assert res.instability == pytest.approx(max(res.error) - (res.error[0] + res.error[-1]) / 2)
    assert res.instability >= 0.0
    frame = res.to_frame()
    assert list(frame.columns) == ["alpha", "loss", "accuracy", "error"] and len(frame) == 7
    # a path that leaves out an end would subtract the wrong end-point mean (Frankle et al. 2020, Sec. 2)
    for bad in ([0.1, 0.5, 1.0], [0.0, 0.5, 0.9], [1.0, 0.5, 0.0]):
        with pytest.raises(UserError, match="--alphas"):
            instability(HP, a, b, x, y, alphas=bad, example_shape=SHAPE, num_classes=3)


def test_first_stable_and_matching():
    inst = {0: 0.30, 100: 0.05, 500: 0.01, 2000: 0.0}
    assert first_stable(inst) == 500
    assert first_stable(inst, threshold=0.1) == 100
    assert first_stable({0: 0.5}) is None
    # replicates: mean 0.025 is not stable, median of [0.0, 0.0, 0.075] is
    reps = {0: [0.3, 0.3, 0.3], 100: [0.0, 0.0, 0.075]}
    assert first_stable(reps) is None and first_stable(reps, reduce="median") == 100
    # Step keys sort by their count
    assert first_stable({Step(2000, "it"): 0.0, Step(500, "it"): 0.01, Step(100, "it"): 0.3}) == Step(500, "it")
    acc = {0: 0.90, 100: 0.90, 500: 0.897, 2000: 0.899}
    # 500 is stable but 0.3 points below dense 0.90; 2000 is within 0.2 points
    assert first_stable_and_matching(inst, acc, dense_accuracy=0.90) == 2000
    assert first_stable_and_matching(inst, acc, dense_accuracy=0.899) == 500  # 0.897 = 0.899 - 0.002: edge matches
    assert first_stable_and_matching(inst, {0: 0.5}, dense_accuracy=0.9) is None
    with pytest.raises(UserError, match="--reduce"):
        first_stable(reps, reduce="max")


def test_an_instability_on_the_threshold_is_not_stable_whatever_the_rounding() -> None:
    """2 of 100 test examples: an error barrier of exactly 0.02, which float64 computes a few ulps under it
    (0.03 - 0.01 = 0.019999999999999997 here; 0.019999999999999962 was seen in a stability run)."""
    from lth.analysis.stability import is_stable

    barrier = error_barrier([0.01, 0.03, 0.01])
    assert barrier != 0.02 and abs(barrier - 0.02) < 1e-15  # the rounding this guards against
    assert not is_stable(barrier) and not is_stable(0.019999999999999962) and not is_stable(0.02)
    assert is_stable(0.0199) and is_stable(0.0)
    assert first_stable({0: barrier, 100: 0.0199}) == 100
    assert first_stable_and_matching({0: barrier, 100: 0.0199}, {0: 0.9, 100: 0.9}, 0.9) == 100
