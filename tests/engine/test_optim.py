"""Learning-rate schedules: warmup from 0, drops by gamma at milestones."""

from __future__ import annotations

import pytest

from lth.engine.optim import lr_schedule
from lth.spec import Step, TrainHparams


def test_schedule_drops_and_warmup() -> None:
    hp = TrainHparams(lr=0.1, milestones=(Step(10, "it"), Step(2, "ep")), gamma=0.5, warmup_steps=Step(4, "it"))
    lr = lr_schedule(hp, 30, steps_per_epoch=10).tolist()
    assert lr[0] == pytest.approx(0.025) and lr[3] == pytest.approx(0.1)  # (it+1)/4 warmup
    assert lr[9] == pytest.approx(0.1) and lr[10] == pytest.approx(0.05)
    assert lr[19] == pytest.approx(0.05) and lr[20] == pytest.approx(0.025) and lr[30] == pytest.approx(0.025)
    assert len(lr) == 31
