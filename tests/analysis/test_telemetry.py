"""Weight telemetry on hand-made states with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from lth.analysis import telemetry


def test_telemetry_known_values() -> None:
    init = {"w": torch.tensor([[1.0, -2.0], [3.0, 0.0]]), "b": torch.tensor([5.0])}
    mid = {"w": torch.tensor([[-1.0, -2.0], [3.0, 1.0]]), "b": torch.tensor([5.0])}
    final = {"w": torch.tensor([[-1.0, 2.0], [3.0, 1.0]]), "b": torch.tensor([0.0])}
    rows = telemetry([(100, final), (0, init), (50, mid)], ["w"])  # order by iteration, not by argument order
    assert [r["iteration"] for r in rows] == [0, 50, 100]
    first, middle, last = rows
    assert first["sign_changed_fraction"] == 0 and first["l2_from_init"] == 0
    assert middle["sign_changed_fraction"] == pytest.approx(1 / 3)  # of the 3 initially nonzero weights
    assert last["sign_changed_fraction"] == pytest.approx(2 / 3)
    assert middle["l2_from_init"] == pytest.approx(math.sqrt(4 + 1))
    assert middle["l2_from_final"] == pytest.approx(4.0)
    assert last["l2_from_final"] == 0 and last["cosine_to_final"] == pytest.approx(1.0)
    assert first["mean_abs_weight"] == pytest.approx(6 / 4)
    assert first["cosine_to_final"] == pytest.approx((-1 - 4 + 9) / (math.sqrt(14) * math.sqrt(15)))
    assert telemetry([], ["w"]) == []
