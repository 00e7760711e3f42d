"""Datasets as whole tensors: loading from local files, normalisation and the seeded training-set transforms.

Every dataset is held in memory as float32 images ``[n, C, H, W]`` and int64 labels. Loading reads the
usual files (IDX for MNIST / Fashion-MNIST, the python pickles for CIFAR) with numpy, so nothing is cached on
disk and no per-example Python runs. The transforms of :class:`~lth.spec.DataHparams` are then applied in a
fixed order, each from its own ``torch.Generator`` stream seeded by ``data_seed``:

1. ``validation_size``: a random held-out validation split of the training set;
2. ``subsample_fraction``: a random subset of what is left of the training set;
3. ``random_labels_fraction``: ``round(f * n)`` randomly chosen training labels redrawn uniformly at random
   (a redrawn label may equal the original one);
4. ``blur``: every image (train, val, test) average-pooled 4x and upsampled back with *nearest* interpolation,
   so that each output is constant on 4x4 blocks;
5. ``rotation_task``: every image (train, val, test) turned by ``n`` quarter turns, ``n`` uniform in
   {0, 1, 2, 3}, as ``torch.rot90(image, n, dims=(-2, -1))`` (counter-clockwise as displayed with row 0 at the
   top); the label becomes ``n`` and ``num_classes`` becomes 4.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lth.errors import UserError
from lth.spec import DataHparams

__all__ = ["DATASETS", "Dataset", "RawSplits", "data_root", "load_dataset"]


class RawSplits(NamedTuple):
    """What a dataset loader returns: normalised float32 images ``[n, C, H, W]`` and int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int


@dataclass
class Dataset:
    """A dataset in memory, after normalisation and every transform."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    val_x: Tensor | None
    val_y: Tensor | None
    num_classes: int

    @property
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)``."""
        return tuple(self.train_x.shape[1:])

    def to(self, device: str | torch.device) -> Dataset:
        """A copy with every tensor on ``device``."""

        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Dataset(self.name, self.train_x.to(device), self.train_y.to(device), self.test_x.to(device),
                       self.test_y.to(device), mv(self.val_x), mv(self.val_y), self.num_classes)


def data_root(data_dir: str | Path | None) -> Path:
    """The data folder: ``data_dir`` (``--data-dir``) if given, else ``$LTH_DATA``, else ``~/.cache/lth``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("LTH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lth"


# ---------------------------------------------------------------------------------------------- helpers
_HINT = "set --data-dir or $LTH_DATA"

# One random stream per use of data_seed, so that turning one transform on does not change another's draw.
_STREAM_SYNTHETIC, _STREAM_VALIDATION, _STREAM_SUBSAMPLE, _STREAM_LABELS = 1, 2, 3, 4
_STREAM_ROT_TRAIN, _STREAM_ROT_VAL, _STREAM_ROT_TEST = 5, 6, 7


def _generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one (data_seed, stream) pair; distinct pairs get distinct seeds."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) % (2**63))


def _normalise(x: np.ndarray | Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 ``[n, C, H, W]`` -> float32 in [0, 1] -> per-channel ``(x - mean) / std``."""
    t = torch.as_tensor(x).to(torch.float32).div_(255.0)
    c = t.shape[1]
    m = torch.tensor(mean, dtype=torch.float32).reshape(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).reshape(1, c, 1, 1)
    return t.sub_(m).div_(s)


def _try_torchvision_download(cls_name: str, root: Path) -> None:
    """Let torchvision try to download into ``root``; swallow every failure and everything it prints, and
    remove the empty folders a failed attempt leaves behind."""
    sink = io.StringIO()
    before = {p for p in root.rglob("*")} if root.exists() else set()
    root_existed = root.exists()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchvision.datasets as tvd

            getattr(tvd, cls_name)(str(root), train=True, download=True)
            getattr(tvd, cls_name)(str(root), train=False, download=True)
    except Exception:  # no network, bad mirror, bad checksum: all fall back to our one-line message
        pass
    created = sorted((p for p in root.rglob("*") if p not in before and p.is_dir()), reverse=True) \
        if root.exists() else []
    for d in [*created, *([] if root_existed else [root])]:
        with contextlib.suppress(OSError):
            d.rmdir()  # only empty folders go


# ---------------------------------------------------------------------------------------------- IDX (MNIST)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzipped if its name ends in ``.gz``): big-endian magic ``0 0 dtype ndim``, dims."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise UserError(f"bad gzip file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"bad IDX file {path}: header {raw[:4].hex()!r}, expected 0000 + dtype + ndim")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)) if ndim else ()
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = math.prod(dims)
    if len(raw) - offset < count * dtype.itemsize:
        need = count * dtype.itemsize
        raise UserError(f"bad IDX file {path}: {len(raw) - offset} data bytes, expected {need}")
    arr = np.frombuffer(raw, dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (plain preferred over ``.gz``), or None if any is missing."""
    found = []
    for name in _IDX_FILES:
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.is_file():
                found.append(cand)
                break
        else:
            return None
    return found


def _idx_loader(name: str, tv_class: str, subdirs: Callable[[Path], list[Path]],
                mean: float, std: float) -> Callable[[Path, DataHparams], RawSplits]:
    def load(root: Path, hp: DataHparams) -> RawSplits:
        files = next((f for d in subdirs(root) if (f := _find_idx(d)) is not None), None)
        if files is None:
            _try_torchvision_download(tv_class, root)
            files = next((f for d in subdirs(root) if (f := _find_idx(d)) is not None), None)
        if files is None:
            expected = ", ".join(f"{n}[.gz]" for n in _IDX_FILES)
            raise UserError(f"{name}: files not found: expected {expected} in {subdirs(root)[0]} ({_HINT})")
        tr_x, tr_y, te_x, te_y = (read_idx(f) for f in files)
        for imgs, labels, fx, fy in ((tr_x, tr_y, files[0], files[1]), (te_x, te_y, files[2], files[3])):
            if imgs.ndim != 3 or labels.ndim != 1 or len(imgs) != len(labels):
                raise UserError(f"{name}: {fx} has shape {imgs.shape} and {fy} has shape {labels.shape}, "
                                "expected [n, H, W] images and [n] labels")
        return RawSplits(_normalise(tr_x[:, None], (mean,), (std,)), torch.from_numpy(tr_y.astype(np.int64)),
                         _normalise(te_x[:, None], (mean,), (std,)), torch.from_numpy(te_y.astype(np.int64)),
                         10)

    load.__doc__ = f"{name}: IDX files, 1x28x28 images, normalised with mean {mean} and std {std}."
    return load


load_mnist = _idx_loader("mnist", "MNIST", lambda r: [r / "MNIST" / "raw", r / "mnist", r], 0.1307, 0.3081)
load_fashion_mnist = _idx_loader(
    "fashion_mnist", "FashionMNIST",
    lambda r: [r / "FashionMNIST" / "raw", r / "fashion-mnist", r / "fashion_mnist",
               Path("/usr/share/datasets/fashion-mnist")],
    0.2860, 0.3530)


# ---------------------------------------------------------------------------------------------- CIFAR
def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UserError(f"bad CIFAR pickle {path}: {e}") from None


def _cifar_batches(paths: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for p in paths:
        d = _unpickle(p)
        if b"data" not in d or label_key not in d:
            raise UserError(f"bad CIFAR pickle {p}: expected keys b'data' and {label_key!r}")
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar_loader(name: str, tv_class: str, folder: str, train: list[str], test: str, label_key: bytes,
                  num_classes: int, mean: tuple[float, float, float],
                  std: tuple[float, float, float]) -> Callable[[Path, DataHparams], RawSplits]:
    def load(root: Path, hp: DataHparams) -> RawSplits:
        d = root / folder
        names = [*train, test]
        if not all((d / n).is_file() for n in names):
            _try_torchvision_download(tv_class, root)
        if not all((d / n).is_file() for n in names):
            raise UserError(f"{name}: files not found: expected {', '.join(names)} in {d} ({_HINT})")
        tr_x, tr_y = _cifar_batches([d / n for n in train], label_key)
        te_x, te_y = _cifar_batches([d / test], label_key)
        return RawSplits(_normalise(tr_x, mean, std), torch.from_numpy(tr_y),
                         _normalise(te_x, mean, std), torch.from_numpy(te_y), num_classes)

    load.__doc__ = f"{name}: python pickles in <root>/{folder}, 3x32x32 images, mean {mean}, std {std}."
    return load


load_cifar10 = _cifar_loader("cifar10", "CIFAR10", "cifar-10-batches-py",
                             [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10,
                             (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
load_cifar100 = _cifar_loader("cifar100", "CIFAR100", "cifar-100-python", ["train"], "test", b"fine_labels",
                              100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


# ------------------------------------------------------------------------------------- digits, synthetic
DIGITS_TEST_SIZE = 297


def load_digits(root: Path, hp: DataHparams) -> RawSplits:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), as ``[n, 1, 8, 8]``.

    Split: ``numpy.random.default_rng(0).permutation(1797)``; the first 1500 are the training set and the
    last 297 the test set (independent of ``data_seed``). Images are divided by 16, then normalised with the
    mean and std of the training split.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = torch.from_numpy(np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]
    y = torch.from_numpy(np.asarray(d.target, dtype=np.int64))
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
    tr, te = perm[:-DIGITS_TEST_SIZE], perm[-DIGITS_TEST_SIZE:]
    mean, std = x[tr].mean(), x[tr].std()
    return RawSplits((x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te], 10)


def load_synthetic(root: Path, hp: DataHparams) -> RawSplits:
    """Standard-normal examples of ``synthetic_shape`` with uniform labels in ``range(synthetic_classes)``.

    ``synthetic_size`` training and ``synthetic_size // 5`` test examples from a generator seeded by
    ``data_seed``; not normalised. For throughput benchmarks only: there is nothing to learn.
    """
    shape = list(hp.synthetic_shape)
    if not shape or any(s < 1 for s in shape):
        raise UserError(f"--synthetic-shape: bad value {shape!r}, expected positive whole numbers, "
                        "e.g. 3,32,32")
    if hp.synthetic_classes < 1:
        raise UserError(f"--synthetic-classes: bad value {hp.synthetic_classes!r}, "
                        "expected a whole number >= 1")
    if hp.synthetic_size < 1:
        raise UserError(f"--synthetic-size: bad value {hp.synthetic_size!r}, expected a whole number >= 1")
    g = _generator(hp.data_seed, _STREAM_SYNTHETIC)
    n_train, n_test = hp.synthetic_size, hp.synthetic_size // 5
    k = hp.synthetic_classes
    train_x = torch.randn(n_train, *shape, generator=g)
    train_y = torch.randint(k, (n_train,), generator=g)
    test_x = torch.randn(n_test, *shape, generator=g)
    test_y = torch.randint(k, (n_test,), generator=g)
    return RawSplits(train_x, train_y, test_x, test_y, k)


DATASETS: dict[str, Callable[[Path, DataHparams], RawSplits]] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "digits": load_digits,
    "synthetic": load_synthetic,
}


# ---------------------------------------------------------------------------------------------- transforms
def _blur(x: Tensor) -> Tensor:
    """Average-pool 4x (area, rounding the small size up) and upsample back with nearest interpolation."""
    if x.ndim != 4:
        raise UserError(f"--blur: needs images [C, H, W], got examples of shape {tuple(x.shape[1:])}")
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(math.ceil(h / 4), math.ceil(w / 4)), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def _rotate(x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Each image turned ``n`` quarter turns (``torch.rot90(img, n, dims=(-2, -1))``); returns (images, n)."""
    n = torch.randint(4, (len(x),), generator=g)
    out = torch.empty_like(x)
    for k in range(4):
        idx = (n == k).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = torch.rot90(x[idx], k, dims=(-2, -1))
    return out, n


def load_dataset(hp: DataHparams, data_dir: str | Path | None = None,
                 device: str | torch.device = "cpu") -> Dataset:
    """Load ``hp.dataset`` from ``data_root(data_dir)``, apply the transforms of ``hp``, move to ``device``.

    Raises UserError (one line) for an unknown dataset, missing or malformed files, and out-of-range options.
    """
    if hp.dataset not in DATASETS:
        raise UserError(f"--dataset: unknown value {hp.dataset!r}; allowed: {', '.join(DATASETS)}")
    if not 0 <= hp.random_labels_fraction <= 1:
        raise UserError(f"--random-labels-fraction: bad value {hp.random_labels_fraction!r}, "
                        "expected a number in [0, 1]")
    if not 0 < hp.subsample_fraction <= 1:
        raise UserError(f"--subsample-fraction: bad value {hp.subsample_fraction!r}, "
                        "expected a number in (0, 1]")
    if hp.validation_size < 0:
        raise UserError(f"--validation-size: bad value {hp.validation_size!r}, expected a whole number >= 0")

    raw = DATASETS[hp.dataset](data_root(data_dir), hp)
    train_x, train_y, test_x, test_y, num_classes = raw
    val_x: Tensor | None = None
    val_y: Tensor | None = None
    seed = hp.data_seed

    # 1. validation split
    if hp.validation_size > 0:
        n = len(train_x)
        if hp.validation_size >= n:
            raise UserError(f"--validation-size: bad value {hp.validation_size}, expected fewer than the {n} "
                            f"training examples of {hp.dataset}")
        perm = torch.randperm(n, generator=_generator(seed, _STREAM_VALIDATION))
        v_idx = perm[:hp.validation_size].sort().values
        t_idx = perm[hp.validation_size:].sort().values
        val_x, val_y = train_x[v_idx], train_y[v_idx]
        train_x, train_y = train_x[t_idx], train_y[t_idx]

    # 2. subsample
    if hp.subsample_fraction < 1:
        n = len(train_x)
        k = round(hp.subsample_fraction * n)
        if k < 1:
            raise UserError(f"--subsample-fraction: bad value {hp.subsample_fraction!r}, "
                            f"keeps none of the {n} training examples")
        keep = torch.randperm(n, generator=_generator(seed, _STREAM_SUBSAMPLE))[:k].sort().values
        train_x, train_y = train_x[keep], train_y[keep]

    # 3. random labels
    if hp.random_labels_fraction > 0:
        n = len(train_y)
        k = round(hp.random_labels_fraction * n)
        g = _generator(seed, _STREAM_LABELS)
        pos = torch.randperm(n, generator=g)[:k]
        train_y = train_y.clone()
        train_y[pos] = torch.randint(num_classes, (k,), generator=g)

    # 4. blur
    if hp.blur:
        train_x, test_x = _blur(train_x), _blur(test_x)
        val_x = None if val_x is None else _blur(val_x)

    # 5. rotation task
    if hp.rotation_task:
        if train_x.ndim != 4 or train_x.shape[-1] != train_x.shape[-2]:
            raise UserError(f"--rotation-task: needs square images [C, H, H], got examples of shape "
                            f"{tuple(train_x.shape[1:])}")
        train_x, train_y = _rotate(train_x, _generator(seed, _STREAM_ROT_TRAIN))
        test_x, test_y = _rotate(test_x, _generator(seed, _STREAM_ROT_TEST))
        if val_x is not None:
            val_x, val_y = _rotate(val_x, _generator(seed, _STREAM_ROT_VAL))
        num_classes = 4

    ds = Dataset(hp.dataset, train_x.contiguous(), train_y, test_x.contiguous(), test_y,
                 None if val_x is None else val_x.contiguous(), val_y, num_classes)
    return ds if torch.device(device) == torch.device("cpu") else ds.to(device)
