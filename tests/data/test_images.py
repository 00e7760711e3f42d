"""Image datasets on disk: the three layouts, the lazy tensor, the transforms, and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.data.images import FileImages, Transform, decode, read_layout
from lth.errors import UserError
from lth.spec import DataHparams
from tests.data.image_files import digit_images, held_out, wnid, write_imagefolder, write_imagenet, write_tiny_imagenet


def test_imagefolder_layout_reads_classes_and_labels(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", count=60)
    lay = read_layout("imagefolder", root)
    _, y = digit_images(60)
    assert lay.classes == [f"c{c}" for c in range(10)]
    n_eval = sum(held_out(y, 5))
    assert len(lay.train.paths) == 60 - n_eval and len(lay.eval.paths) == n_eval
    for p, label in zip(lay.train.paths + lay.eval.paths, lay.train.labels + lay.eval.labels, strict=True):
        i = int(Path(p).stem)
        assert lay.classes[label] == f"c{y[i]}"


def test_imagefolder_test_split_is_accepted(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", count=40, eval_name="test")
    assert read_layout("imagefolder", root).eval_name == "test"


def test_tiny_imagenet_val_labels_come_from_the_annotations(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path, count=80)
    ds = load_dataset(DataHparams(dataset="tiny_imagenet"), data_dir=tmp_path)
    _, y = digit_images(80)
    lay = read_layout("tiny_imagenet", tmp_path)
    assert ds.num_classes == 10 and ds.test_x.shape == (sum(held_out(y, 4)), 3, 64, 64)
    for p, label in zip(lay.eval.paths, ds.test_y.tolist(), strict=True):
        i = int(Path(p).stem.split("_")[1])
        assert lay.classes[label] == wnid(int(y[i]))


@pytest.mark.parametrize("flat", [False, True])
def test_imagenet_val_as_folders_or_flat_with_devkit(tmp_path: Path, flat: bool) -> None:
    write_imagenet(tmp_path, count=60, flat_val=flat)
    lay = read_layout("imagenet", tmp_path)
    _, y = digit_images(60)
    assert len(lay.eval.paths) == sum(held_out(y, 4))
    for p, label in zip(lay.eval.paths, lay.eval.labels, strict=True):
        i = int(Path(p).stem.split("_")[-1])
        assert lay.classes[label] == wnid(int(y[i]))


def test_lazy_images_decode_what_the_transform_gives(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", count=30)
    ds = load_dataset(DataHparams(dataset="imagefolder", image_size=16, validation_size=4), data_dir=root)
    assert isinstance(ds.train_x, FileImages) and isinstance(ds.val_x, FileImages)
    n_train = 30 - sum(held_out(digit_images(30)[1], 5)) - 4
    assert ds.train_x.shape == (n_train, 3, 16, 16) and ds.val_x.shape[0] == 4
    sub = ds.train_x[torch.tensor([3, 1])]
    assert isinstance(sub, FileImages) and len(sub) == 2
    x = sub.to("cpu")
    assert x.dtype == torch.float32 and x.shape == (2, 3, 16, 16)
    raw = Transform("eval", 16)(decode(str(ds.train_x.paths[3])))
    assert torch.equal(x[0], ds.train_x.normalise(raw))
    assert torch.equal(ds.train_x[1:2].to("cpu")[0], x[1])
    assert ds.to("cpu").train_x is ds.train_x  # moving a dataset never decodes it


def test_random_transforms_are_seeded_per_example(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.fromarray(digit_images(1, (40, 48))[0][0].permute(1, 2, 0).numpy())
    for kind in ("rrc", "crop"):
        t = Transform(kind, 32)
        a, b, c = t(img, 7), t(img, 7), t(img, 8)
        assert a.shape == (3, 32, 32) and torch.equal(a, b)
        assert not torch.equal(a, c) or not torch.equal(t(img, 9), a)


def test_non_image_files_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_imagefolder(tmp_path / "f", count=30)
    (root / "train" / "c1" / "notes.txt").write_text("not an image")
    lay = read_layout("imagefolder", root)
    assert all(not p.endswith(".txt") for p in lay.train.paths) and len(lay.skipped) == 1
    assert "skipped 1 file(s) that are not images" in capsys.readouterr().err


def test_a_test_folder_beside_val_is_said_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    root = write_imagefolder(tmp_path / "f", count=30)
    shutil.copytree(root / "val", root / "test")
    lay = read_layout("imagefolder", root)
    assert lay.eval_name == "val"
    assert f"evaluating on {root.resolve() / 'val'}; {root.resolve() / 'test'} is not read" in capsys.readouterr().err


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", count=30)
    bad = root / "train" / "c2" / "zz_bad.jpg"
    bad.write_bytes(b"\xff\xd8 this is no jpeg")
    ds = load_dataset(DataHparams(dataset="imagefolder", image_size=16), data_dir=root)
    i = list(ds.train_x.paths).index(str(bad))
    with pytest.raises(UserError, match=r"image file .*zz_bad\.jpg: cannot be decoded"):
        ds.train_x[i:i + 1].to("cpu")


@pytest.mark.parametrize("case, match", [
    ("empty_class", r"class folder .*c3 holds no image files"),
    ("val_classes", r"class folders of .*val differ from the classes of the training split \(no folder for c4\)"),
    ("no_val", r"no evaluation split in"),
    ("no_folder", r"folder not found"),
])
def test_bad_image_folders(tmp_path: Path, case: str, match: str) -> None:
    root = write_imagefolder(tmp_path / "f", count=40)
    if case == "empty_class":
        for f in (root / "train" / "c3").iterdir():
            f.unlink()
    elif case == "val_classes":
        for f in (root / "val" / "c4").iterdir():
            f.unlink()
        (root / "val" / "c4").rmdir()
    elif case == "no_val":
        import shutil

        shutil.rmtree(root / "val")
    else:
        root = tmp_path / "nowhere"
    with pytest.raises(UserError, match=match):
        load_dataset(DataHparams(dataset="imagefolder"), data_dir=root)


def test_tiny_annotation_naming_an_unknown_class(tmp_path: Path) -> None:
    r = write_tiny_imagenet(tmp_path, count=40)
    ann = r / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split("\t")[1], "n77777777")
    ann.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"val_annotations.txt line 3: class 'n77777777' is not in wnids.txt"):
        load_dataset(DataHparams(dataset="tiny_imagenet"), data_dir=tmp_path)


def test_tiny_wnids_naming_a_class_without_a_training_folder(tmp_path: Path) -> None:
    r = write_tiny_imagenet(tmp_path, count=40)
    (r / "wnids.txt").write_text((r / "wnids.txt").read_text().rstrip("\n") + "\nn09999998\n")
    with pytest.raises(UserError, match=r"class folders of .*train differ from the classes of .*wnids.txt \(no "
                                        r"folder for n09999998\); allowed: one folder per class of .*wnids.txt"):
        load_dataset(DataHparams(dataset="tiny_imagenet"), data_dir=tmp_path)


def test_imagenet_flat_val_without_devkit(tmp_path: Path) -> None:
    import shutil

    r = write_imagenet(tmp_path, count=40, flat_val=True)
    shutil.rmtree(r / "ILSVRC2012_devkit_t12")
    with pytest.raises(UserError, match=r"no devkit"):
        load_dataset(DataHparams(dataset="imagenet"), data_dir=tmp_path)


def test_options_that_need_pixels_in_memory_are_refused(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", count=20)
    with pytest.raises(UserError, match=r"not available for images read from disk"):
        load_dataset(DataHparams(dataset="imagefolder", blur=True), data_dir=root)
    with pytest.raises(UserError, match=r"image-size: bad value 32"):
        load_dataset(DataHparams(dataset="digits", image_size=32))
