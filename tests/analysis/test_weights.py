"""Weight verdicts against the papers' definitions, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lth.analysis.weights import dn_values, frame_potential
from lth.prune import sample_dn


def test_dn_values_is_the_whole_networks_theta_lt() -> None:
    """Seed 004, section 2: theta_LT = nonzero(m * theta_0) over the network: kept, nonzero, every layer."""
    init = {"a": torch.tensor([[1.0, -2.0], [0.0, 4.0]]), "b": torch.tensor([0.5, -0.25, 3.0]), "bias": torch.ones(2)}
    mask = {"a": torch.tensor([[True, False], [True, True]]), "b": torch.tensor([False, True, True])}
    np.testing.assert_array_equal(dn_values(init, mask), [1.0, 4.0, -0.25, 3.0])  # 0.0 kept but zero: left out
    assert dn_values(init, {}).size == 0


def test_sample_dn_draws_only_values_of_dn_values_and_reaches_every_one() -> None:
    """D_n is sampled "uniformly at random from theta_LT": the draws' support is dn_values, all of it."""
    init = {"a": torch.tensor([[1.0, -2.0], [0.0, 4.0]]), "b": torch.tensor([0.5, -0.25, 3.0])}
    mask = {"a": torch.tensor([[True, False], [True, True]]), "b": torch.tensor([False, True, True])}
    pool = set(dn_values(init, mask).tolist())
    seen: set[float] = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        drawn = sample_dn(init, mask, g)
        for k, m in mask.items():
            seen |= set(drawn[k][m].tolist())
            assert not drawn[k][~m].any()
    assert seen == pool


def test_frame_potential_of_a_hand_computed_frame() -> None:
    """FP = sum_ij <u_i, u_j>^2 over unit rows: rows (1,0), (1,1), (0,2) have cosines 1/sqrt2, 0, 1/sqrt2, so
    FP = 3 (diagonal) + 2 * (1/2 + 0 + 1/2) = 5; the tight-frame minimum for 3 rows in 2-d is 3^2 / 2 = 4.5."""
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    assert frame_potential(w) == pytest.approx(5.0)
    mercedes = torch.tensor([[1.0, 0.0], [-0.5, 3 ** 0.5 / 2], [-0.5, -(3 ** 0.5) / 2]])  # a tight frame
    assert frame_potential(mercedes) == pytest.approx(4.5)
