"""Tests of lth.data.datasets: file formats, normalisation, the seeded transforms and the error messages."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import lth.data.datasets as dsmod
from lth.data import DATASETS, Dataset, data_root, load_dataset
from lth.errors import UserError
from lth.spec import DataHparams

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def synth(**kw) -> DataHparams:
    base = dict(dataset="synthetic", synthetic_shape=[1, 4, 4], synthetic_size=1000, synthetic_classes=10)
    base.update(kw)
    return DataHparams(**base)


def row_index(x: torch.Tensor) -> dict[tuple[float, ...], int]:
    """Map each example's values to its position (synthetic examples are all distinct)."""
    d = {tuple(r): i for i, r in enumerate(x.flatten(1).tolist())}
    assert len(d) == len(x)
    return d


# ---------------------------------------------------------------------------------------------- real MNIST
@pytest.fixture(scope="module")
def mnist() -> Dataset:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST not found in {SHARED_DATA}")
    return load_dataset(DataHparams(dataset="mnist"), SHARED_DATA)


def test_real_mnist(mnist: Dataset) -> None:
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    assert mnist.train_x.dtype == torch.float32 and mnist.train_y.dtype == torch.int64
    assert mnist.example_shape == (1, 28, 28) and mnist.num_classes == 10
    assert mnist.val_x is None and mnist.val_y is None
    assert mnist.train_y.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert len(mnist.test_y) == 10000 and mnist.test_y.min() == 0 and mnist.test_y.max() == 9
    assert abs(mnist.train_x.mean().item()) < 0.01
    assert abs(mnist.train_x.std().item() - 1) < 0.01


def test_real_mnist_random_labels_uniform(mnist: Dataset) -> None:
    d = load_dataset(DataHparams(dataset="mnist", random_labels_fraction=1.0), SHARED_DATA)
    counts = d.train_y.bincount(minlength=10)
    assert len(counts) == 10 and counts.min() > 5600 and counts.max() < 6400
    assert torch.equal(d.train_x, mnist.train_x)
    # about 90% of labels differ from the real ones (a random label equals the real one 1 time in 10)
    assert 0.85 < (d.train_y != mnist.train_y).float().mean().item() < 0.95


# ---------------------------------------------------------------------------------------------- IDX files
def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist_like(folder: Path, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 2, 6], dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), arr)
    return arrays


@pytest.mark.parametrize("dataset, sub, gz", [
    ("mnist", "MNIST/raw", True),
    ("mnist", "MNIST/raw", False),
    ("mnist", "", False),  # flat: the data folder itself
    ("mnist", "", True),
    ("fashion_mnist", "FashionMNIST/raw", False),
    ("fashion_mnist", "fashion-mnist", True),  # Debian's flat layout
])
def test_idx_layouts(tmp_path: Path, dataset: str, sub: str, gz: bool) -> None:
    arrays = write_mnist_like(tmp_path / sub if sub else tmp_path, gz)
    d = load_dataset(DataHparams(dataset=dataset), tmp_path)
    mean, std = (0.1307, 0.3081) if dataset == "mnist" else (0.2860, 0.3530)
    expect_train = (torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255 - mean) / std
    expect_test = (torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255 - mean) / std
    assert d.train_x.shape == (5, 1, 28, 28) and d.test_x.shape == (3, 1, 28, 28)
    torch.testing.assert_close(d.train_x[:, 0], expect_train, rtol=0, atol=1e-6)
    torch.testing.assert_close(d.test_x[:, 0], expect_test, rtol=0, atol=1e-6)
    assert d.train_y.tolist() == [3, 1, 4, 1, 5] and d.test_y.tolist() == [9, 2, 6]
    assert d.train_y.dtype == torch.int64


def test_idx_plain_preferred_over_gz_and_torchvision_layout_first(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, gz=False, seed=1)  # flat copy: must lose to MNIST/raw
    arrays = write_mnist_like(tmp_path / "MNIST" / "raw", gz=True, seed=2)
    d = load_dataset(DataHparams(dataset="mnist"), tmp_path)
    expect = (torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(d.train_x[:, 0], expect, rtol=0, atol=1e-6)


def test_bad_idx_header(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04garbage")
    with pytest.raises(UserError, match="bad IDX file .*train-images-idx3-ubyte"):
        load_dataset(DataHparams(dataset="mnist"), tmp_path)


# ---------------------------------------------------------------------------------------------- CIFAR
def cifar_row(k: int, c: int, h: int, w: int) -> int:
    """A recognisable uint8 for pixel (c, h, w) of image k."""
    return (k * 7 + c * 50 + h * 3 + w * 5) % 256


def cifar_images(n: int, offset: int) -> np.ndarray:
    k, c, h, w = np.meshgrid(np.arange(offset, offset + n), np.arange(3), np.arange(32), np.arange(32),
                             indexing="ij")
    # CIFAR's row layout: 1024 red, then 1024 green, then 1024 blue, each row-major 32x32
    return cifar_row(k, c, h, w).astype(np.uint8).reshape(n, 3072)


def dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_cifar10(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    for b in range(5):
        dump(folder / f"data_batch_{b + 1}",
             {b"data": cifar_images(10, 10 * b), b"labels": [(10 * b + i) % 10 for i in range(10)]})
    dump(folder / "test_batch", {b"data": cifar_images(10, 50), b"labels": list(range(9, -1, -1))})
    d = load_dataset(DataHparams(dataset="cifar10"), tmp_path)
    assert d.train_x.shape == (50, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.num_classes == 10 and d.example_shape == (3, 32, 32)
    assert d.train_y.tolist() == [i % 10 for i in range(50)] and d.test_y.tolist() == list(range(9, -1, -1))
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    for k, c, h, w in [(0, 0, 0, 0), (13, 1, 5, 30), (49, 2, 31, 0), (27, 0, 17, 9)]:
        want = (cifar_row(k, c, h, w) / 255 - mean[c]) / std[c]
        assert d.train_x[k, c, h, w].item() == pytest.approx(want, abs=1e-5)
    want = (cifar_row(53, 2, 4, 11) / 255 - mean[2]) / std[2]
    assert d.test_x[3, 2, 4, 11].item() == pytest.approx(want, abs=1e-5)


def test_cifar100(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    fine = [(7 * i) % 100 for i in range(50)]
    dump(folder / "train", {b"data": cifar_images(50, 0), b"fine_labels": fine, b"coarse_labels": [0] * 50})
    dump(folder / "test", {b"data": cifar_images(10, 50), b"fine_labels": list(range(90, 100)),
                           b"coarse_labels": [1] * 10})
    d = load_dataset(DataHparams(dataset="cifar100"), tmp_path)
    assert d.train_x.shape == (50, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.num_classes == 100
    assert d.train_y.tolist() == fine and d.test_y.tolist() == list(range(90, 100))
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    for k, c, h, w in [(0, 0, 0, 0), (31, 1, 31, 31), (49, 2, 8, 16)]:
        want = (cifar_row(k, c, h, w) / 255 - mean[c]) / std[c]
        assert d.train_x[k, c, h, w].item() == pytest.approx(want, abs=1e-5)


# ---------------------------------------------------------------------------------------------- missing files
@pytest.mark.parametrize("dataset, expected_file, folder", [
    ("mnist", "train-images-idx3-ubyte", "MNIST/raw"),
    ("cifar10", "data_batch_1", "cifar-10-batches-py"),
    ("cifar100", "train", "cifar-100-python"),
])
def test_missing_files(tmp_path: Path, capfd: pytest.CaptureFixture[str], dataset: str, expected_file: str,
                       folder: str) -> None:
    root = tmp_path / "empty"
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset=dataset), root)
    msg = str(e.value)
    assert "\n" not in msg
    assert expected_file in msg and str(root / folder) in msg and "--data-dir" in msg
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # torchvision's failed download attempt prints nothing


def test_missing_fashion_mnist_names_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsmod, "fetch", lambda cls, root: None)
    with pytest.raises(UserError, match=r"fashion_mnist: files not found: expected t.*FashionMNIST/raw"):
        load_dataset(DataHparams(dataset="fashion_mnist"), tmp_path)


def test_unknown_dataset_and_bad_options() -> None:
    with pytest.raises(UserError, match="'imagenet_22k'; allowed: mnist, fashion_mnist"):
        load_dataset(DataHparams(dataset="imagenet_22k"))
    with pytest.raises(UserError, match="--validation-size: bad value 1000"):
        load_dataset(synth(validation_size=1000))
    with pytest.raises(UserError, match="--subsample-fraction"):
        load_dataset(synth(subsample_fraction=0.0))
    with pytest.raises(UserError, match="--random-labels-fraction"):
        load_dataset(synth(random_labels_fraction=1.5))
    with pytest.raises(UserError, match="--rotation-task: needs square"):
        load_dataset(synth(synthetic_shape=[1, 4, 6], rotation_task=True))


# ------------------------------------------------------------------------------------- digits, synthetic
def test_digits_deterministic() -> None:
    a = load_dataset(DataHparams(dataset="digits"))
    b = load_dataset(DataHparams(dataset="digits", data_seed=5))  # the split does not depend on data_seed
    assert a.train_x.shape == (1500, 1, 8, 8) and a.test_x.shape == (297, 1, 8, 8)
    assert a.num_classes == 10 and set(a.train_y.tolist()) == set(range(10))
    for x, y in [(a.train_x, b.train_x), (a.train_y, b.train_y), (a.test_x, b.test_x), (a.test_y, b.test_y)]:
        assert torch.equal(x, y)
    assert abs(a.train_x.mean().item()) < 1e-4 and abs(a.train_x.std().item() - 1) < 1e-3


def test_synthetic() -> None:
    hp = DataHparams(dataset="synthetic", synthetic_shape=[3, 8, 6], synthetic_size=250, synthetic_classes=7)
    d = load_dataset(hp)
    assert d.train_x.shape == (250, 3, 8, 6) and d.test_x.shape == (50, 3, 8, 6)
    assert d.example_shape == (3, 8, 6) and d.num_classes == 7
    assert d.train_y.min() >= 0 and d.train_y.max() == 6 and d.test_y.max() < 7
    assert torch.equal(load_dataset(hp).train_x, d.train_x)
    assert not torch.equal(load_dataset(replace(hp, data_seed=1)).train_x, d.train_x)
    with pytest.raises(UserError, match="--synthetic-shape"):
        load_dataset(replace(hp, synthetic_shape=[3, 0, 2]))


def test_registry_and_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(DATASETS) == {"mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "synthetic",
                             "imagefolder", "imagenet", "tiny_imagenet"}
    monkeypatch.setenv("LTH_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root(str(tmp_path / "flag")) == tmp_path / "flag"
    assert data_root(None) == tmp_path / "env"
    monkeypatch.delenv("LTH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root(None) == tmp_path / "home" / ".cache" / "lth"


def test_to_device() -> None:
    d = load_dataset(synth(validation_size=10), device="cpu").to("cpu")
    assert d.val_x is not None and d.val_x.device.type == "cpu" and d.train_x.device.type == "cpu"


# ---------------------------------------------------------------------------------------------- transforms
def test_validation_split() -> None:
    base = load_dataset(synth())
    d = load_dataset(synth(validation_size=150))
    assert d.val_x is not None and d.val_y is not None
    assert len(d.val_x) == len(d.val_y) == 150 and len(d.train_x) == len(d.train_y) == 850
    idx = row_index(base.train_x)
    val = {idx[tuple(r)] for r in d.val_x.flatten(1).tolist()}
    train = {idx[tuple(r)] for r in d.train_x.flatten(1).tolist()}
    assert not val & train and len(val | train) == 1000
    assert torch.equal(d.val_y, base.train_y[sorted(val)])
    assert torch.equal(d.test_x, base.test_x)  # the test set is untouched
    other = load_dataset(synth(validation_size=150, data_seed=1))
    assert not torch.equal(other.val_x, d.val_x)


def test_subsample_after_validation() -> None:
    base = load_dataset(synth())
    d = load_dataset(synth(validation_size=100, subsample_fraction=0.25))
    plain_val = load_dataset(synth(validation_size=100))
    assert len(d.train_x) == round(0.25 * 900) and len(d.val_x) == 100
    assert torch.equal(d.val_x, plain_val.val_x)  # subsampling does not move the validation split
    idx = row_index(base.train_x)
    kept = [idx[tuple(r)] for r in d.train_x.flatten(1).tolist()]
    val = {idx[tuple(r)] for r in d.val_x.flatten(1).tolist()}
    assert len(set(kept)) == len(kept) and not set(kept) & val
    assert torch.equal(d.train_y, base.train_y[kept])
    s1 = load_dataset(synth(subsample_fraction=0.3))
    s2 = load_dataset(synth(subsample_fraction=0.3, data_seed=9))
    assert len(s1.train_x) == 300 and not torch.equal(s1.train_x, s2.train_x)
    assert torch.equal(s1.train_x, load_dataset(synth(subsample_fraction=0.3)).train_x)


def test_random_labels_exact_count() -> None:
    # with a million classes a redrawn label never equals the old one here, so changed == drawn
    hp = synth(synthetic_classes=1_000_000)
    base = load_dataset(hp)
    d = load_dataset(replace(hp, random_labels_fraction=0.37))
    assert int((d.train_y != base.train_y).sum()) == 370
    assert torch.equal(d.train_x, base.train_x) and torch.equal(d.test_y, base.test_y)
    assert d.train_y.max() < 1_000_000 and d.train_y.min() >= 0


def test_random_labels_seeded() -> None:
    base = load_dataset(synth())
    a = load_dataset(synth(random_labels_fraction=0.3))
    b = load_dataset(synth(random_labels_fraction=0.3))
    c = load_dataset(synth(random_labels_fraction=0.3, data_seed=3))
    assert torch.equal(a.train_y, b.train_y) and not torch.equal(a.train_y, c.train_y)
    changed = int((a.train_y != base.train_y).sum())
    assert 200 < changed <= 300  # 300 drawn, about 1 in 10 redraws the same label


def test_blur_constant_on_blocks() -> None:
    hp = synth(synthetic_shape=[3, 12, 8], validation_size=20, synthetic_size=100)
    base, d = load_dataset(hp), load_dataset(replace(hp, blur=True))
    for x, orig in [(d.train_x, base.train_x), (d.val_x, base.val_x), (d.test_x, base.test_x)]:
        assert x.shape == orig.shape
        blocks = x.reshape(len(x), 3, 3, 4, 2, 4)
        assert torch.equal(blocks.amax(dim=(3, 5)), blocks.amin(dim=(3, 5)))  # constant on 4x4 blocks
        means = orig.reshape(len(x), 3, 3, 4, 2, 4).mean(dim=(3, 5))
        torch.testing.assert_close(blocks[:, :, :, 0, :, 0], means, atol=1e-5, rtol=0)
    # non-multiple-of-4 sizes keep their shape and get smoother
    hp = synth(synthetic_shape=[1, 10, 10])
    x, bx = load_dataset(hp).train_x, load_dataset(replace(hp, blur=True)).train_x
    assert bx.shape == x.shape

    def tv(t: torch.Tensor) -> float:
        return float(t.diff(dim=-1).abs().sum() + t.diff(dim=-2).abs().sum())

    assert tv(bx) < 0.5 * tv(x)


def test_blur_digits() -> None:
    d = load_dataset(DataHparams(dataset="digits", blur=True))
    assert d.train_x.shape == (1500, 1, 8, 8)
    blocks = d.test_x.reshape(297, 1, 2, 4, 2, 4)
    assert torch.equal(blocks.amax(dim=(3, 5)), blocks.amin(dim=(3, 5)))


def test_rotation_task() -> None:
    hp = synth(synthetic_shape=[2, 5, 5], validation_size=50, synthetic_size=400)
    base, d = load_dataset(hp), load_dataset(replace(hp, rotation_task=True))
    assert d.num_classes == 4
    for x, y, orig in [(d.train_x, d.train_y, base.train_x), (d.val_x, d.val_y, base.val_x),
                       (d.test_x, d.test_y, base.test_x)]:
        assert y is not None and orig is not None and x is not None
        assert set(y.tolist()) == {0, 1, 2, 3}
        for k in range(4):
            sel = y == k
            assert torch.equal(x[sel], torch.rot90(orig[sel], k, dims=(-2, -1)))
    # direction: one quarter turn counter-clockwise, the top-right pixel moves to the top-left
    i = int((d.train_y == 1).nonzero()[0])
    assert d.train_x[i, :, 0, 0].tolist() == base.train_x[i, :, 0, -1].tolist()
    assert d.train_x[i, :, -1, 0].tolist() == base.train_x[i, :, 0, 0].tolist()
    again = load_dataset(replace(hp, rotation_task=True))
    other = load_dataset(replace(hp, rotation_task=True, data_seed=4))
    assert torch.equal(again.train_y, d.train_y) and not torch.equal(other.train_y, d.train_y)
    assert not torch.equal(d.train_y, d.test_y[: len(d.train_y)])  # the test draw is its own stream


def test_rotation_task_digits_shapes() -> None:
    d = load_dataset(DataHparams(dataset="digits", rotation_task=True, blur=True))
    assert d.train_x.shape == (1500, 1, 8, 8) and d.num_classes == 4 and d.test_y.max() <= 3


# ---------------------------------------------------------------------------------------------- where data comes from
@pytest.fixture
def system_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake system-wide Fashion-MNIST (as Debian installs it) and an empty HOME; no downloads."""
    system = tmp_path / "usr-share-datasets"
    write_mnist_like(system / "fashion-mnist", gz=True, seed=4)
    monkeypatch.setitem(dsmod.FALLBACK_ROOTS, "fashion_mnist", (system,))
    monkeypatch.setattr(dsmod, "fetch", lambda cls, root: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LTH_DATA", raising=False)
    return system


def test_named_data_dir_is_never_replaced_by_a_fallback(system_copy: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset="fashion_mnist"), missing)
    assert f"--data-dir {missing}" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="--data-dir"):
        dsmod.data_source(DataHparams(dataset="fashion_mnist"), missing)


def test_lth_data_is_never_replaced_by_a_fallback(system_copy: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTH_DATA", str(tmp_path / "env"))
    with pytest.raises(UserError, match=r"\$LTH_DATA=.*env"):
        load_dataset(DataHparams(dataset="fashion_mnist"))


def test_fallback_used_only_without_a_named_folder_and_reported(system_copy: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d = load_dataset(DataHparams(dataset="fashion_mnist"))
    assert d.train_y.tolist() == [3, 1, 4, 1, 5]
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(system_copy) in err and "--data-dir" in err
    src = d.source
    assert src["origin"] == "fallback" and src["root"] == str(system_copy.resolve())
    folder = system_copy / "fashion-mnist"
    assert [f["path"] for f in src["files"]] == [str((folder / f"{n}.gz").resolve()) for n in dsmod._IDX_FILES]
    assert src["files"][0]["sha256"] == hashlib.sha256((folder / "train-images-idx3-ubyte.gz").read_bytes()
                                                       ).hexdigest()


def test_cli_data_dir_nonexistent_exits_2(system_copy: Path, tmp_path: Path) -> None:
    from tests.conftest import lth

    code, _, err = lth("train", "--preset", "digits_mlp", "--dataset", "fashion_mnist", "--data-dir",
                       str(tmp_path / "nonexistent"), "--training-steps", "1it", "--root", str(tmp_path / "runs"))
    assert code == 2 and "--data-dir" in err and "nonexistent" in err and str(system_copy) not in err


def test_data_source_files_and_checksum_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist_like(tmp_path / "MNIST" / "raw", gz=False)
    src = dsmod.data_source(DataHparams(dataset="mnist"), tmp_path)
    assert src["origin"] == "--data-dir" and src["root"] == str(tmp_path.resolve())
    first = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    assert src["files"][0] == {"path": str(first.resolve()), "bytes": first.stat().st_size,
                               "sha256": hashlib.sha256(first.read_bytes()).hexdigest()}
    assert load_dataset(DataHparams(dataset="mnist"), tmp_path).source == src
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, d: calls.append(f.name) or real(f, d))
    dsmod.data_source(DataHparams(dataset="mnist"), tmp_path)
    assert calls == []  # cached: same path, mtime and size
    write_idx(first, np.zeros((5, 28, 28), np.uint8))  # a new version of the file is hashed again
    os.utime(first, ns=(1, 1))
    again = dsmod.data_source(DataHparams(dataset="mnist"), tmp_path)
    assert calls == [str(first.resolve())]
    assert again["files"][0]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest() != src["files"][0]["sha256"]
    assert dsmod.data_source(DataHparams(dataset="synthetic"))["files"] == []
    digits = dsmod.data_source(DataHparams(dataset="digits"))
    assert digits["origin"] == "bundled" and digits["files"][0]["path"].endswith("digits.csv.gz")


@pytest.mark.parametrize("at", [10, 20])  # 10: invalid deflate block (zlib's "Error -3"); 20: CRC mismatch
def test_corrupt_gzip_names_the_file(tmp_path: Path, at: int) -> None:
    write_mnist_like(tmp_path, gz=True)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    data = bytearray(bad.read_bytes())  # whole, not truncated: one byte of the compressed body damaged
    data[at] = 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset="mnist"), tmp_path)
    msg = str(e.value)
    assert str(bad) in msg and "damaged" in msg and "again" in msg and "\n" not in msg


def test_a_data_dir_one_level_too_deep_names_the_folder_to_pass(tmp_path) -> None:
    """``--data-dir DATA/MNIST`` (the dataset's own folder, not the one holding it) says which folder to pass."""
    from lth.data.datasets import _IDX_FILES, locate
    from lth.errors import UserError

    raw = tmp_path / "DATA" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in _IDX_FILES:
        (raw / name).write_bytes(b"")
    assert locate("mnist", tmp_path / "DATA", download=False)[0] == tmp_path / "DATA"
    with pytest.raises(UserError, match=f"they are under {tmp_path / 'DATA'}: pass that folder"):
        locate("mnist", tmp_path / "DATA" / "MNIST", download=False)
    with pytest.raises(UserError) as e:
        locate("mnist", tmp_path / "elsewhere", download=False)
    assert "pass that folder" not in str(e.value)
