"""Will it fit: parameter counts extrapolated exactly, and refusals that name the flag, the estimate and what
is available."""

from __future__ import annotations

import pytest
import torch

from lth.errors import UserError
from lth.executor import capacity
from lth.executor.capacity import check_capacity, check_member, count_params
from lth.models import build_model


@pytest.mark.parametrize(("model", "norm", "shape"), [("fc_64_32", "batchnorm", (1, 8, 8)),
                                                      ("lenet_300_100", "none", (1, 28, 28)),
                                                      ("conv2", "none", (3, 32, 32))])
@pytest.mark.parametrize("width", [5.0, 8.0])
def test_extrapolated_count_equals_the_built_network(model: str, norm: str, shape: tuple[int, ...],
                                                     width: float) -> None:
    built = build_model(model, 1, shape, 10, norm, width).num_params()
    assert count_params(model, norm, width, shape, 10) == built


def test_capacity_names_flag_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "host_memory_available", lambda: 10 * 1024 * 1024)
    check_capacity("--replicates", 10, 10)  # 80 KB to plan: fits
    with pytest.raises(UserError, match=r"--replicates 2000: 2000 runs would need about 16 MB of memory"):
        check_capacity("--replicates", 2000, 2000)


def test_member_that_cannot_train(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "host_memory_available", lambda: 1600)
    check_member("--width", 2, 100, torch.device("cpu"))  # 100 x 16 bytes: just fits
    with pytest.raises(UserError, match=r"--width 3: one network has 101 parameters"):
        check_member("--width", 3, 101, torch.device("cpu"))
