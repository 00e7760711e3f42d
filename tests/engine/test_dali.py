"""Decoding with NVIDIA DALI (lth.engine.dali; its CPU pipeline here, the same code as the GPU's but for the
decoder's device): the Pillow path's draws, pixels within rounding of Pillow's, deterministic and resumable
training, the decoder recorded, and a clear error where DALI is not installed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.engine import dali
from lth.engine.stream import StreamBatches, resolve_decoder
from lth.engine.train import EngineOptions, Job, train_population
from lth.errors import UserError
from lth.spec import DataHparams, Step
from tests.data.image_files import write_imagefolder, write_tiny_imagenet
from tests.engine.test_stream import SPEC, Killed, same_states

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is an optional extra: pip install 'lth[dali]'")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("img") / "digits", count=400, hw=(40, 48))


@pytest.mark.parametrize(("layout", "size"), [("imagefolder", 24), ("imagefolder", 56), ("tiny_imagenet", 64),
                                              ("tiny_imagenet", 48)])
def test_dali_applies_the_pillow_paths_draws_within_rounding(folder: Path, tmp_path: Path, layout: str,
                                                             size: int) -> None:
    # the random-resized crop (imagefolder) and the padded crop (Tiny-ImageNet), each with flips, and evaluation's
    # centre crop (a fractional box at 40x48): the same geometry, pixels within one level of Pillow's
    root = folder if layout == "imagefolder" else write_tiny_imagenet(tmp_path / "t", 120).parent
    images = load_dataset(DataHparams(dataset=layout, batch_size=8, image_size=size), data_dir=root).train_x
    dec = dali.DaliDecoder(images, 24, torch.device("cpu"))
    for seeds in ([None] * 24, list(range(100, 124))):
        items = list(zip(range(24), seeds, strict=True))
        dec.submit(items)
        got = dec.take()
        want = torch.stack([images.load(i, s) for i, s in items])
        assert got.shape == want.shape == (24, 3, size, size) and got.dtype == torch.uint8
        diff = (got.int() - want.int()).abs()
        assert diff.max() <= 1, (layout, size, seeds[0], diff.max())
        assert diff.float().mean() < 0.5
    flipped = [images.transform(True).geometry(*(48, 40) if layout == "imagefolder" else (64, 64), seed=s).flip
               for s in range(100, 124)]
    assert 0 < sum(flipped) < 24  # both kinds of draw were compared
    dec.close()


def test_members_and_positions_read_what_pillow_reads(folder: Path) -> None:
    # StreamBatches with DALI: the same batches as with Pillow workers (order, labels, groups), at any start
    data = load_dataset(dataclasses.replace(SPEC.data, augment=True, image_size=20), data_dir=folder)
    cpu = torch.device("cpu")
    pil = StreamBatches(3, data.train_x, data.train_y, 16, True, [5, 6, 5], [1, 1, 2], cpu, workers=0)
    dal = StreamBatches(3, data.train_x, data.train_y, 16, True, [5, 6, 5], [1, 1, 2], cpu, workers=1,
                        decoder="dali")
    assert dal.decoder == "dali" and pil.decoder == "pillow"
    for start in (0, 3):
        for b in (pil, dal):
            b.fill(1, [], [], start=start)
        for pos in range(start, start + 3):
            pil.prepare(pos)
            dal.prepare(pos)
            assert torch.equal(pil.y, dal.y)
            assert (pil.x - dal.x).abs().max() <= 1.01 / (255 * 0.224)  # one level, normalised
    with pytest.raises(RuntimeError, match="position"):
        dal.prepare(0)
    dal.close()


def test_training_with_dali_is_deterministic_resumable_and_recorded(folder: Path, tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, data=dataclasses.replace(SPEC.data, augment=True),
                               train=dataclasses.replace(SPEC.train, eval_every=Step(3, "it")))
    data = load_dataset(spec.data, data_dir=folder)
    spe = data.train_x.shape[0] // spec.data.batch_size
    kill_at = spe + 7

    def kill(event: str, info: dict) -> None:
        if event == "eval" and info["iteration"] >= kill_at:
            raise Killed

    opts = EngineOptions(device="cpu", checkpoint_every=None, loader_workers=1, decoder="dali")
    for name in ("whole", "again"):
        train_population([Job(spec, 0, tmp_path / name)], data, opts)
    same_states(tmp_path / "whole", tmp_path / "again")
    every = dataclasses.replace(opts, checkpoint_every=Step(2, "it"))
    broken = Job(spec, 0, tmp_path / "broken")
    with pytest.raises(Killed):
        train_population([broken], data, dataclasses.replace(every, callback=kill))
    train_population([broken], data, every)
    same_states(tmp_path / "whole", tmp_path / "broken")
    assert json.loads((tmp_path / "whole" / "spec.json").read_text())["image_decoder"] == "dali"
    train_population([Job(spec, 0, tmp_path / "pillow")], data, dataclasses.replace(opts, decoder="pillow"))
    assert json.loads((tmp_path / "pillow" / "spec.json").read_text())["image_decoder"] == "pillow"


def test_decoder_choice_and_a_missing_dali(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_decoder("auto", cpu) == "pillow" and resolve_decoder("auto", gpu) == "dali"
    assert resolve_decoder("dali", cpu) == "dali"
    with pytest.raises(UserError, match=r"--decoder: bad value 'jpeg'; allowed: auto, pillow, dali"):
        resolve_decoder("jpeg", cpu)
    monkeypatch.setattr(dali, "available", lambda: False)
    assert resolve_decoder("auto", gpu) == "pillow"
    with pytest.raises(UserError, match=r"--decoder: bad value 'dali' \(NVIDIA DALI is not installed\)"):
        resolve_decoder("dali", cpu)


def test_a_file_that_is_not_an_image_is_named(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    bad = sorted((copy / "train").rglob("*.jpg"))[0]
    bad.write_bytes(b"not a jpeg at all")
    images = load_dataset(DataHparams(dataset="imagefolder", batch_size=8, image_size=16), data_dir=copy).train_x
    i = [str(p) for p in images.paths].index(str(bad))
    dec = dali.DaliDecoder(images, 2, torch.device("cpu"))
    with pytest.raises(UserError, match=rf"image file {bad}: cannot be decoded"):
        dec.submit([(i, None), (0 if i else 1, None)])
    dec.close()


def test_ranks_decode_their_rows_of_the_global_batch(folder: Path) -> None:
    # a distributed run (--world-size 2): each rank's DALI pipeline decodes its half of every global batch
    data = load_dataset(dataclasses.replace(SPEC.data, augment=True, image_size=16), data_dir=folder)
    cpu = torch.device("cpu")

    def stream(shard: tuple[int, int]) -> StreamBatches:
        b = StreamBatches(2, data.train_x, data.train_y, 16, True, [5, 6], [1, 2], cpu, workers=1, shard=shard,
                          decoder="dali")
        b.fill(2, [], [], start=1)
        b.prepare(1)
        return b

    whole, r0, r1 = stream((0, 1)), stream((0, 2)), stream((1, 2))
    assert torch.equal(torch.cat([r0.x, r1.x], dim=1), whole.x)
    assert torch.equal(torch.cat([r0.y, r1.y], dim=1), whole.y)
    for b in (whole, r0, r1):
        b.close()
