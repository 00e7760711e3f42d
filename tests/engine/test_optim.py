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


def test_linear_decay_to_final_lr() -> None:
    # Inception-v3 in Frankle et al. 2020: 0.03 linearly decayed to 0.005 over training (here 100 iterations)
    hp = TrainHparams(lr=0.03, final_lr=0.005, training_steps=Step(10, "ep"))
    lr = lr_schedule(hp, 100, steps_per_epoch=10).tolist()
    assert lr[0] == pytest.approx(0.03) and lr[100] == pytest.approx(0.005)
    assert lr[50] == pytest.approx(0.0175) and lr[99] == pytest.approx(0.03 - 0.025 * 0.99)
    assert all(a > b for a, b in zip(lr, lr[1:], strict=False))  # strictly falling, no steps
    # after a warmup the decay starts where the warmup ends; milestones still multiply by gamma
    hp = TrainHparams(lr=0.1, final_lr=0.0, warmup_steps=Step(10, "it"), training_steps=Step(110, "it"),
                      milestones=(Step(60, "it"),), gamma=0.5)
    lr = lr_schedule(hp, 110, steps_per_epoch=10).tolist()
    assert lr[4] == pytest.approx(0.05) and lr[10] == pytest.approx(0.1)
    assert lr[59] == pytest.approx(0.1 * 51 / 100) and lr[60] == pytest.approx(0.5 * 0.1 * 50 / 100)
    assert lr[110] == pytest.approx(0.0)
    # without final_lr the schedule is the step schedule, unchanged
    plain = TrainHparams(lr=0.1, milestones=(Step(5, "it"),))
    assert lr_schedule(plain, 10, 1).tolist() == [0.1] * 5 + [pytest.approx(0.01)] * 6


def test_final_lr_is_part_of_the_clock_and_validated() -> None:
    from lth.engine.optim import clock_key
    from lth.errors import UserError
    from lth.spec import TrainSpec

    a, b = TrainHparams(lr=0.1), TrainHparams(lr=0.1, final_lr=0.01)
    assert clock_key(a, 0, 10) != clock_key(b, 0, 10)  # members with and without the decay never share a clock
    with pytest.raises(UserError, match="final.lr: bad value -1.0"):
        TrainSpec(train=TrainHparams(final_lr=-1.0)).validate()
