"""Training on images read from disk (StreamBatches): the same numbers as the in-memory path on the same decoded
pixels and order, shared decoding for members with one order, and a run killed mid-epoch resumes bit-identical."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lth.data import Dataset, load_dataset
from lth.data.images import FileImages
from lth.engine.stream import StreamBatches
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir
from tests.data.image_files import write_imagefolder

SPEC = TrainSpec(DataHparams(dataset="imagefolder", batch_size=32, image_size=12), ModelHparams(model="fc_32"),
                 TrainHparams(lr=0.05, momentum=0.9, training_steps=Step(2, "ep"), eval_every=Step(1, "ep")))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("img") / "digits", count=400)


def final(run: Path) -> dict[str, torch.Tensor]:
    return RunDir(run).load_tensors("states/final.pt")


def same_states(a: Path, b: Path) -> None:
    fa, fb = final(a), final(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k


def test_streamed_equals_in_memory_on_the_same_pixels_and_order(folder: Path, tmp_path: Path) -> None:
    lazy = load_dataset(SPEC.data, data_dir=folder)
    assert isinstance(lazy.train_x, FileImages)
    mem = Dataset(lazy.name, lazy.train_x.to("cpu"), lazy.train_y, lazy.test_x.to("cpu"), lazy.test_y, None, None,
                  lazy.num_classes, lazy.source)
    jobs = [Job(SPEC, r, tmp_path / kind / f"r{r}") for kind in ("mem", "disk") for r in (0, 1)]
    opts = EngineOptions(device="cpu", checkpoint_every=None, loader_workers=2)
    train_population(jobs[:2], mem, opts)
    train_population(jobs[2:], lazy, opts)
    for r in (0, 1):
        same_states(tmp_path / "mem" / f"r{r}", tmp_path / "disk" / f"r{r}")
        assert RunDir(tmp_path / "mem" / f"r{r}").read_metrics() == RunDir(tmp_path / "disk" / f"r{r}").read_metrics()
    acc = RunDir(tmp_path / "disk" / "r0").done["final_test_accuracy"]
    assert acc > 0.5  # it learns the digits


def test_members_with_one_order_share_decoded_images(folder: Path) -> None:
    data = load_dataset(dataclasses.replace(SPEC.data, augment=True), data_dir=folder)
    cpu = torch.device("cpu")
    same = StreamBatches(3, data.train_x, data.train_y, 16, True, [5, 5, 5], [1, 1, 1], cpu, workers=0)
    other = StreamBatches(3, data.train_x, data.train_y, 16, True, [5, 6, 5], [1, 1, 2], cpu, workers=0)
    assert same.decoded_per_step == 16 and other.decoded_per_step == 48
    for b in (same, other):
        b.fill(0, [], [])
        b.prepare(0)
    assert torch.equal(same.x[0], same.x[1]) and torch.equal(same.x[0], other.x[0])
    assert not torch.equal(other.x[0], other.x[1]) and not torch.equal(other.x[0], other.x[2])
    assert torch.equal(other.y[0], other.y[2])  # one order, two augmentations: the same labels


class Killed(Exception):
    pass


def test_killed_mid_epoch_and_resumed_is_bit_identical(folder: Path, tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, data=dataclasses.replace(SPEC.data, augment=True),
                               train=dataclasses.replace(SPEC.train, eval_every=Step(3, "it")))
    data = load_dataset(spec.data, data_dir=folder)
    spe = data.train_x.shape[0] // spec.data.batch_size
    kill_at = spe + 7  # in the middle of the second epoch, after a checkpoint at spe + 4

    def kill(event: str, info: dict) -> None:
        if event == "eval" and info["iteration"] >= kill_at:
            raise Killed

    whole = Job(spec, 0, tmp_path / "whole")
    train_population([whole], data, EngineOptions(device="cpu", checkpoint_every=None, loader_workers=2))
    broken = Job(spec, 0, tmp_path / "broken")
    every = EngineOptions(device="cpu", checkpoint_every=Step(2, "it"), loader_workers=2)
    with pytest.raises(Killed):
        train_population([broken], data, dataclasses.replace(every, callback=kill))
    ckpt = torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=True)
    assert 0 < ckpt["iteration"] % spe and ckpt["iteration"] > spe  # resumes in the middle of an epoch
    train_population([broken], data, every)
    same_states(tmp_path / "whole", tmp_path / "broken")
    assert RunDir(tmp_path / "whole").read_metrics() == RunDir(tmp_path / "broken").read_metrics()
