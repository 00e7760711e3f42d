"""The pretraining tasks of Frankle, Schwab & Morcos 2020 (Section 5) as data transforms: self-supervised rotation,
blurred images, random labels, and rotation of blurred images."""

from __future__ import annotations

import pytest
import torch

from lth.data import load_dataset
from lth.engine.batches import EpochBatches
from lth.errors import UserError
from lth.spec import DataHparams


def synth(**kw) -> DataHparams:
    base = dict(dataset="synthetic", synthetic_shape=(3, 8, 8), synthetic_size=400, synthetic_classes=10)
    base.update(kw)
    return DataHparams(**base)


def reference_blur(x: torch.Tensor) -> torch.Tensor:
    """Mean over each 4x4 block, each block then filled with its mean (H and W divisible by 4)."""
    n, c, h, w = x.shape
    small = x.reshape(n, c, h // 4, 4, w // 4, 4).mean((3, 5))
    return small.repeat_interleave(4, 2).repeat_interleave(4, 3)


def test_rotation_is_exact_rot90_labelled_by_quarter_turns() -> None:
    plain = load_dataset(synth(validation_size=40))
    rot = load_dataset(synth(validation_size=40, rotation_task=True))
    assert rot.num_classes == 4
    for xs, ys, orig in ((rot.train_x, rot.train_y, plain.train_x), (rot.test_x, rot.test_y, plain.test_x),
                         (rot.val_x, rot.val_y, plain.val_x)):
        assert set(ys.tolist()) <= {0, 1, 2, 3}
        for i in range(len(xs)):
            assert torch.equal(xs[i], torch.rot90(orig[i], int(ys[i]), dims=(-2, -1)))
    counts = torch.bincount(rot.train_y, minlength=4)
    assert counts.min() > 60  # 360 examples, about 90 per rotation
    # the same seed gives the same rotations
    again = load_dataset(synth(validation_size=40, rotation_task=True))
    assert torch.equal(again.train_y, rot.train_y) and torch.equal(again.train_x, rot.train_x)
    with pytest.raises(UserError, match="--rotation-task"):
        load_dataset(synth(synthetic_shape=(1, 8, 4), rotation_task=True))


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 12, 16)])
def test_blur_is_4x_down_and_up_sampling(shape: tuple[int, ...]) -> None:
    plain = load_dataset(synth(synthetic_shape=shape))
    blur = load_dataset(synth(synthetic_shape=shape, blur=True))
    for b, p in ((blur.train_x, plain.train_x), (blur.test_x, plain.test_x)):
        n, c, h, w = b.shape
        blocks = b.reshape(n, c, h // 4, 4, w // 4, 4)
        assert torch.equal(blocks.amax((3, 5)), blocks.amin((3, 5)))  # constant on every 4x4 block
        torch.testing.assert_close(b, reference_blur(p), rtol=1e-6, atol=1e-6)
    assert torch.equal(blur.train_y, plain.train_y)


def test_blur_digits() -> None:
    plain = load_dataset(DataHparams(dataset="digits"))
    blur = load_dataset(DataHparams(dataset="digits", blur=True))
    torch.testing.assert_close(blur.train_x, reference_blur(plain.train_x), rtol=1e-6, atol=1e-6)


def test_random_labels_are_fixed() -> None:
    hp = synth(synthetic_size=2000, random_labels_fraction=1.0, data_seed=3)
    a, b = load_dataset(hp), load_dataset(hp)
    assert torch.equal(a.train_y, b.train_y)  # two loads: the same labels
    assert not torch.equal(load_dataset(synth(synthetic_size=2000, random_labels_fraction=1.0,
                                              data_seed=4)).train_y, a.train_y)
    plain = load_dataset(synth(synthetic_size=2000, data_seed=3))
    assert torch.equal(a.train_x, plain.train_x) and torch.equal(a.test_y, plain.test_y)  # only train labels
    changed = float((a.train_y != plain.train_y).double().mean())
    assert changed == pytest.approx(0.9, abs=0.03)  # a redrawn label equals the old one 1 time in 10
    # across epochs: each example is seen with the same label in every epoch
    batches = EpochBatches(1, len(a.train_y), 50, False, (8, 8), torch.device("cpu"))
    seen: dict[int, int] = {}
    for epoch in range(2):
        batches.fill(epoch, [7], [0])
        for pos in range(batches.steps_per_epoch):
            _, yb = batches.batch(a.train_x, a.train_y, pos)
            for idx, label in zip(batches.order[0, pos * 50:(pos + 1) * 50].tolist(), yb[0].tolist(), strict=True):
                assert seen.setdefault(idx, label) == label
    assert len(seen) == 2000


def test_rotation_of_blurred_images() -> None:
    plain = load_dataset(synth())
    both = load_dataset(synth(blur=True, rotation_task=True))
    rot = load_dataset(synth(rotation_task=True))
    assert both.num_classes == 4 and torch.equal(both.train_y, rot.train_y)  # the same rotations
    blurred = reference_blur(plain.train_x)
    for i in range(len(both.train_x)):
        torch.testing.assert_close(both.train_x[i], torch.rot90(blurred[i], int(both.train_y[i]), dims=(-2, -1)),
                                   rtol=1e-6, atol=1e-6)
    blocks = both.train_x.reshape(-1, 3, 2, 4, 2, 4)
    assert torch.equal(blocks.amax((3, 5)), blocks.amin((3, 5)))


def test_rotations_are_drawn_afresh_at_every_presentation() -> None:
    """Frankle, Schwab & Morcos 2020, Section 5: each training example is randomly rotated by 90n degrees and the
    network predicts n. The batches turn each example (stored turned by its load-time n) by a fresh count at every
    presentation: what the step sees is rot90(original, label), and one example is seen at several rotations."""
    plain = load_dataset(synth(synthetic_size=200))
    rot = load_dataset(synth(synthetic_size=200, rotation_task=True))
    batches = EpochBatches(2, len(rot.train_y), 50, False, (8, 8), torch.device("cpu"), rotate=True)
    seen: dict[int, set[int]] = {}
    for epoch in range(4):
        batches.fill(epoch, [7, 8], [0, 1])
        for pos in range(batches.steps_per_epoch):
            xb, yb = batches.batch(rot.train_x, rot.train_y, pos)
            idx = batches.order[0, pos * 50:(pos + 1) * 50]
            for j, i in enumerate(idx.tolist()):
                assert torch.equal(xb[0, j], torch.rot90(plain.train_x[i], int(yb[0, j]), dims=(-2, -1)))
                seen.setdefault(i, set()).add(int(yb[0, j]))
    assert sum(len(v) > 1 for v in seen.values()) > 0.9 * len(seen)  # 4 presentations: almost all seen turned twice
    counts = torch.bincount(torch.tensor([n for v in seen.values() for n in v]), minlength=4)
    assert counts.min() > 0.15 * counts.sum()  # every turn count drawn
    # reproducible from (augment seed, epoch), and members draw apart
    batches.fill(1, [7, 8], [0, 1])
    again = batches.turns.clone()
    batches.fill(1, [7, 8], [0, 1])
    assert torch.equal(again, batches.turns) and not torch.equal(again[0], again[1])
    # off: the labels are the load-time ones
    fixed = EpochBatches(1, len(rot.train_y), 50, False, (8, 8), torch.device("cpu"))
    fixed.fill(0, [7], [0])
    _, yb = fixed.batch(rot.train_x, rot.train_y, 0)
    assert torch.equal(yb[0], rot.train_y[fixed.order[0, :50]])
