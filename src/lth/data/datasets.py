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

Where the files come from (:func:`locate`): the folder named by ``--data-dir``, else the one named by
``$LTH_DATA``; a named folder is the only place looked in (files missing there are a one-line error naming the
flag and the folder). Missing files are downloaded (:mod:`lth.data.download`, said on stderr) only into lth's cache,
``$LTH_DATA`` or ``~/.cache/lth``, never into a folder named with ``--data-dir``. Only when no folder is
named is ``~/.cache/lth`` used, and then, for a dataset with an entry in :data:`FALLBACK_ROOTS`, a system-wide
copy (Debian's ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST) is read when ``~/.cache/lth`` lacks
it; that is said on stderr and recorded. :func:`data_source` gives the files actually read with their sha256
checksums, which :func:`load_dataset` also puts in :attr:`Dataset.source` (for the run's ``spec.json``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lth.data.download import TINY_IMAGENET, DownloadFailed, cache_root, fetch
from lth.data.images import DEFAULT_SIZE, IMAGE_DATASETS, image_splits, is_lazy, layout_source, tiny_present
from lth.errors import UserError, ref
from lth.spec import DataHparams

__all__ = ["DATASETS", "DATA_FILES", "FALLBACK_ROOTS", "DataFiles", "Dataset", "RawSplits", "data_root",
           "data_source", "load_dataset", "locate"]


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
    source: dict = field(default_factory=dict)  # what data_source() says: the files read and their sha256

    @property
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)``."""
        return tuple(self.train_x.shape[1:])

    def to(self, device: str | torch.device) -> Dataset:
        """A copy with every tensor on ``device``."""

        def mv(t: Tensor | None) -> Tensor | None:
            return t if t is None or is_lazy(t) else t.to(device)  # images on disk stay there

        return Dataset(self.name, mv(self.train_x), self.train_y.to(device), mv(self.test_x),
                       self.test_y.to(device), mv(self.val_x), mv(self.val_y), self.num_classes, self.source)


def data_root(data_dir: str | Path | None) -> Path:
    """The data folder: ``data_dir`` (``--data-dir``) if given, else ``$LTH_DATA``, else ``~/.cache/lth``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("LTH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lth"


# ---------------------------------------------------------------------------------------------- helpers
_HINT = f"set {ref('data_dir')} or $LTH_DATA"  # inside an error's template (a field reference)

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
        except (OSError, EOFError, zlib.error) as e:  # zlib.error: corrupt (not truncated) compressed data
            raise UserError(f"damaged file {path}: not a readable gzip file ({e}); download it again or replace "
                            "it") from None
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


def _idx_files(subdirs: Callable[[Path], list[Path]]) -> Callable[[Path], list[Path] | None]:
    """The four IDX files in the first of ``subdirs(root)`` that holds them all."""
    return lambda root: next((f for d in subdirs(root) if (f := _find_idx(d)) is not None), None)


def _idx_loader(name: str, tv_class: str, subdirs: Callable[[Path], list[Path]],
                mean: float, std: float) -> Callable[[Path, DataHparams], RawSplits]:
    def load(root: Path, hp: DataHparams) -> RawSplits:
        files = next((f for d in subdirs(root) if (f := _find_idx(d)) is not None), None)
        if files is None:  # (locate, called first, downloads where it may)
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


def _mnist_dirs(r: Path) -> list[Path]:
    return [r / "MNIST" / "raw", r / "mnist", r]


def _fashion_dirs(r: Path) -> list[Path]:
    return [r / "FashionMNIST" / "raw", r / "fashion-mnist", r / "fashion_mnist"]


load_mnist = _idx_loader("mnist", "MNIST", _mnist_dirs, 0.1307, 0.3081)
load_fashion_mnist = _idx_loader("fashion_mnist", "FashionMNIST", _fashion_dirs, 0.2860, 0.3530)


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
        if not all((d / n).is_file() for n in names):  # (locate, called first, downloads where it may)
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
        raise UserError(f"{ref('synthetic_shape')}: bad value {shape!r}, expected positive whole numbers, "
                        "e.g. 3,32,32", value=shape, allowed="positive whole numbers")
    if hp.synthetic_classes < 1:
        raise UserError(f"{ref('synthetic_classes')}: bad value {hp.synthetic_classes!r}, "
                        "expected a whole number >= 1", value=hp.synthetic_classes, allowed="a whole number >= 1")
    if hp.synthetic_size < 1:
        raise UserError(f"{ref('synthetic_size')}: bad value {hp.synthetic_size!r}, expected a whole number >= 1",
                        value=hp.synthetic_size, allowed="a whole number >= 1")
    g = _generator(hp.data_seed, _STREAM_SYNTHETIC)
    n_train, n_test = hp.synthetic_size, hp.synthetic_size // 5
    k = hp.synthetic_classes
    train_x = torch.randn(n_train, *shape, generator=g)
    train_y = torch.randint(k, (n_train,), generator=g)
    test_x = torch.randn(n_test, *shape, generator=g)
    test_y = torch.randint(k, (n_test,), generator=g)
    return RawSplits(train_x, train_y, test_x, test_y, k)


def _image_loader(name: str) -> Callable[[Path, DataHparams], RawSplits]:
    """A loader of image dataset ``name`` (:mod:`lth.data.images`): lazy images on disk, labels in memory."""

    def load(root: Path, hp: DataHparams) -> RawSplits:
        return RawSplits(*image_splits(name, root, hp.image_size))  # type: ignore[arg-type]

    load.__name__ = f"load_{name}"
    return load


DATASETS: dict[str, Callable[[Path, DataHparams], RawSplits]] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "digits": load_digits,
    "synthetic": load_synthetic,
    **{name: _image_loader(name) for name in IMAGE_DATASETS},
}


# ---------------------------------------------------------------------------------------------- where files are
@dataclass(frozen=True)
class DataFiles:
    """Where a file-based dataset keeps its files under a data root.

    ``find(root)`` returns the files the loader reads (all of them) or None when any is missing; ``folder(root)``
    and ``expected`` name them in the error message; ``torchvision`` is the class that may download them."""

    find: Callable[[Path], list[Path] | None]
    folder: Callable[[Path], Path]
    expected: str
    torchvision: str | None = None


def _cifar_files(folder: str, names: list[str]) -> Callable[[Path], list[Path] | None]:
    return lambda root: [root / folder / n for n in names] if all((root / folder / n).is_file()
                                                                  for n in names) else None


_IDX_EXPECTED = ", ".join(f"{n}[.gz]" for n in _IDX_FILES)
_C10 = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
DATA_FILES: dict[str, DataFiles] = {
    "mnist": DataFiles(_idx_files(_mnist_dirs), lambda r: _mnist_dirs(r)[0], _IDX_EXPECTED, "MNIST"),
    "fashion_mnist": DataFiles(_idx_files(_fashion_dirs), lambda r: _fashion_dirs(r)[0], _IDX_EXPECTED,
                               "FashionMNIST"),
    "cifar10": DataFiles(_cifar_files("cifar-10-batches-py", _C10), lambda r: r / "cifar-10-batches-py",
                         ", ".join(_C10), "CIFAR10"),
    "cifar100": DataFiles(_cifar_files("cifar-100-python", ["train", "test"]), lambda r: r / "cifar-100-python",
                          "train, test", "CIFAR100"),
}

# System-wide copies read only when no data folder is named (no --data-dir, no $LTH_DATA) and ~/.cache/lth lacks
# the files. Each entry is a data root that DATA_FILES[name].find searches (Debian's package fashion-mnist puts
# the IDX files in /usr/share/datasets/fashion-mnist).
FALLBACK_ROOTS: dict[str, tuple[Path, ...]] = {"fashion_mnist": (Path("/usr/share/datasets"),)}


def locate(name: str, data_dir: str | Path | None = None, download: bool = True) -> tuple[Path, str,
                                                                                          list[Path] | None]:
    """Where dataset ``name`` is read from: ``(root, origin, files)``.

    ``origin`` is ``--data-dir``, ``$LTH_DATA``, ``default`` (``~/.cache/lth``) or ``fallback`` (an entry of
    :data:`FALLBACK_ROOTS`, tried only when no folder is named). For a dataset in :data:`DATA_FILES`, ``files``
    are the files found; when they are missing (after a torchvision download attempt if ``download``) a one-line
    UserError names the folder looked in and the flag or variable that named it. For other datasets (digits,
    synthetic, user-registered ones) ``files`` is None and nothing is checked."""
    env = os.environ.get("LTH_DATA")
    origin = "--data-dir" if data_dir is not None and str(data_dir) != "" else "$LTH_DATA" if env else "default"
    root = data_root(data_dir)
    spec = DATA_FILES.get(name)
    if spec is None:
        if name == "tiny_imagenet" and download and origin != "--data-dir" and not tiny_present(root):
            try:  # the one image dataset with a public download (into lth's cache only)
                fetch(TINY_IMAGENET, root)
            except DownloadFailed as e:
                raise UserError(f"tiny_imagenet: not found in {root}; {e}; put the unzipped tiny-imagenet-200/ "
                                f"folder there, or name its folder with {ref('data_dir')} (docs/scale.md)") from None
        return root, origin, None
    files = spec.find(root)
    if files is None and origin == "default":
        for fb in FALLBACK_ROOTS.get(name, ()):
            if (found := spec.find(fb)) is not None:
                return fb, "fallback", found
    tried = ""
    if files is None and download and spec.torchvision and origin != "--data-dir":  # lth's cache only
        try:
            fetch(spec.torchvision, root)
        except DownloadFailed as e:
            tried = f"; {e}; put the files in {spec.folder(root)}"
        files = spec.find(root)
    if files is None:
        where = {"--data-dir": f"the folder given by {ref('data_dir')} {root}; put them there or leave the flag out "
                               f"(lth downloads only into its cache, {cache_root()})",
                 "$LTH_DATA": f"the folder given by $LTH_DATA={root}; put them there or set {ref('data_dir')}",
                 "default": _HINT}[origin]
        also = [str(spec.folder(fb)) for fb in FALLBACK_ROOTS.get(name, ())] if origin == "default" else []
        hint = ""
        for up in (root.parent, root.parent.parent):  # --data-dir DATA/MNIST or DATA/MNIST/raw: one level too deep
            if up != root and spec.find(up) is not None:
                hint = f"; they are under {up}: pass that folder (the one holding {spec.folder(up).relative_to(up)})"
                break
        raise UserError(f"{name}: files not found: expected {spec.expected} in {spec.folder(root)} ({where})"
                        + (f"; also looked in {', '.join(also)}" if also else "") + hint + tried)
    return root, origin, files


_SHA256: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex), cached per (path, mtime, size): each file is read once per process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _SHA256:
        with open(p, "rb") as f:
            _SHA256[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _SHA256[key]


def data_source(hp: DataHparams, data_dir: str | Path | None = None) -> dict:
    """What ``load_dataset(hp, data_dir)`` reads, for a run's ``spec.json``: ``{"dataset", "origin", "root",
    "files": [{"path", "bytes", "sha256"}, ...]}``.

    ``origin`` and ``root`` are those of :func:`locate` (``origin`` says whether a fallback copy was used);
    ``files`` are absolute paths with their checksums (:func:`file_sha256`, cached). digits lists scikit-learn's
    bundled ``digits.csv.gz``; synthetic data (generated from ``data_seed``) and user-registered datasets list
    no files. Raises the UserError of :func:`locate` when the files are missing (it never downloads)."""
    root, origin, files = locate(hp.dataset, data_dir, download=False)
    if hp.dataset == "digits":
        import sklearn.datasets

        files, origin, root = [Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"], "bundled", None
    elif hp.dataset == "synthetic":
        files, origin, root = [], "generated", None
    elif hp.dataset in IMAGE_DATASETS:  # a listing digest, not a sha256 per file (a million JPEGs)
        return {"dataset": hp.dataset, "origin": origin, "root": str(root.resolve()), "files": [],
                "image_size": hp.image_size or DEFAULT_SIZE[hp.dataset], **layout_source(hp.dataset, root)}
    listed = [{"path": str(Path(f).resolve()), "bytes": Path(f).stat().st_size, "sha256": file_sha256(f)}
              for f in files or []]
    return {"dataset": hp.dataset, "origin": origin, "root": None if root is None else str(root.resolve()),
            "files": listed}


# ---------------------------------------------------------------------------------------------- transforms
def _blur(x: Tensor) -> Tensor:
    """Average-pool 4x (area, rounding the small size up) and upsample back with nearest interpolation."""
    if x.ndim != 4:
        raise UserError(f"{ref('blur')}: needs images [C, H, W], got examples of shape {tuple(x.shape[1:])}")
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
    """Load ``hp.dataset`` from where :func:`locate` finds it, apply the transforms of ``hp``, move to ``device``.
    The result's ``source`` is :func:`data_source` (files read, sha256); reading a fallback copy is said on stderr.

    Raises UserError (one line) for an unknown dataset, missing or malformed files, and out-of-range options.
    """
    if hp.dataset not in DATASETS:
        raise UserError(f"{ref('dataset')}: unknown value {hp.dataset!r}; allowed: {', '.join(DATASETS)}",
                        value=hp.dataset, allowed=", ".join(DATASETS))
    if not 0 <= hp.random_labels_fraction <= 1:
        raise UserError(f"{ref('random_labels_fraction')}: bad value {hp.random_labels_fraction!r}, "
                        "expected a number in [0, 1]", value=hp.random_labels_fraction, allowed="a number in [0, 1]")
    if not 0 < hp.subsample_fraction <= 1:
        raise UserError(f"{ref('subsample_fraction')}: bad value {hp.subsample_fraction!r}, "
                        "expected a number in (0, 1]", value=hp.subsample_fraction, allowed="a number in (0, 1]")
    if hp.validation_size < 0:
        raise UserError(f"{ref('validation_size')}: bad value {hp.validation_size!r}, expected a whole number >= 0",
                        value=hp.validation_size, allowed="a whole number >= 0")

    if hp.image_size < 0 or (hp.image_size and hp.dataset not in IMAGE_DATASETS):
        raise UserError.bad("image_size", hp.image_size, "a side in pixels >= 1 for an image dataset "
                            f"({', '.join(IMAGE_DATASETS)}), or 0 for the dataset's default")
    if hp.dataset in IMAGE_DATASETS and (hp.blur or hp.rotation_task):
        flag = "blur" if hp.blur else "rotation_task"
        raise UserError(f"{ref(flag)}: not available for images read from disk ({hp.dataset}); allowed with the "
                        "in-memory datasets", value=True)
    root, origin, _ = locate(hp.dataset, data_dir)
    if origin == "fallback":
        print(f"lth: {hp.dataset}: no files in {data_root(None)}; reading the system copy under {root} "
              "(give --data-dir to choose)", file=sys.stderr)
    raw = DATASETS[hp.dataset](root, hp)
    source = data_source(hp, root if origin == "fallback" else data_dir)
    source["origin"] = origin if source["origin"] not in ("bundled", "generated") else source["origin"]
    train_x, train_y, test_x, test_y, num_classes = raw
    val_x: Tensor | None = None
    val_y: Tensor | None = None
    seed = hp.data_seed

    # 1. validation split
    if hp.validation_size > 0:
        n = len(train_x)
        if hp.validation_size >= n:
            raise UserError(f"{ref('validation_size')}: bad value {hp.validation_size}, expected fewer than the {n} "
                            f"training examples of {hp.dataset}", value=hp.validation_size,
                            allowed=f"fewer than the {n} training examples")
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
            raise UserError(f"{ref('subsample_fraction')}: bad value {hp.subsample_fraction!r}, "
                            f"keeps none of the {n} training examples", value=hp.subsample_fraction)
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
            raise UserError(f"{ref('rotation_task')}: needs square images [C, H, H], got examples of shape "
                            f"{tuple(train_x.shape[1:])}")
        train_x, train_y = _rotate(train_x, _generator(seed, _STREAM_ROT_TRAIN))
        test_x, test_y = _rotate(test_x, _generator(seed, _STREAM_ROT_TEST))
        if val_x is not None:
            val_x, val_y = _rotate(val_x, _generator(seed, _STREAM_ROT_VAL))
        num_classes = 4

    ds = Dataset(hp.dataset, train_x.contiguous(), train_y, test_x.contiguous(), test_y,
                 None if val_x is None else val_x.contiguous(), val_y, num_classes, source)
    return ds if torch.device(device) == torch.device("cpu") else ds.to(device)
