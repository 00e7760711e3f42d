"""Image datasets read from disk while training: ImageNet, Tiny-ImageNet and a user's own image folders.

An in-memory dataset is a tensor; an image dataset too large for memory is a :class:`FileImages`, a lazy
``[n, 3, S, S]`` tensor of normalised images whose pixels are decoded when they are used. Indexing it with a slice or
an index tensor gives another lazy subset (so the validation split, subsampling and random labels of
:func:`lth.data.load_dataset` work on it unchanged); ``.to(device)`` decodes (a thread pool: torchvision's decoders
and resizes release the GIL) into a real tensor. Training reads it through :class:`lth.engine.stream.StreamBatches`
(DataLoader worker processes, augmentation per example). Nothing of an image dataset is held in memory but the
file list and the labels.

Layouts (``--data-dir DIR``; the folder named or, for ImageNet / Tiny-ImageNet, the dataset's usual folder in it):

- ``imagefolder``: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (or ``DIR/test/<class>/*``); classes are the
  sorted folder names of ``train``, and ``val`` must hold the same ones.
- ``imagenet``: ``DIR/train/<wnid>/*.JPEG`` and ``DIR/val/<wnid>/*.JPEG`` (or ``DIR/imagenet/...``); or a flat
  ``val/`` of ``ILSVRC2012_val_*.JPEG`` with the devkit beside it (``ILSVRC2012_devkit_t12/data/meta.mat`` and
  ``ILSVRC2012_validation_ground_truth.txt``), read with scipy.
- ``tiny_imagenet``: ``DIR/tiny-imagenet-200/`` (or ``DIR`` itself) with ``wnids.txt``,
  ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (file, wnid, box).
  Tiny-ImageNet's test split has no labels: its labelled ``val`` is the evaluation split.

Only files with an image extension (torchvision's ``IMG_EXTENSIONS``) are read; other files are skipped and counted
(said on stderr). An empty class folder, classes that differ between the splits, an annotation naming an unknown
class or a missing file, and a missing folder are one-line errors naming the path; a file that does not decode is
an error naming it when it is read.

Transforms (``--image-size S``; 224 for ImageNet and image folders, 64 for Tiny-ImageNet by default):

- training with ``augment``: ImageNet and image folders: random-resized crop (scale 0.08-1, aspect 3/4-4/3) to SxS
  and a horizontal flip with probability 1/2, as torchvision's reference ResNet recipe and open_lth's ImageNet
  dataset; Tiny-ImageNet: a random SxS crop of the image zero-padded by S/16 pixels (4 at 64x64) and a flip.
  Each example's draw is seeded by (augment seed, epoch, position in the epoch), never by the worker that decodes
  it, so a run resumed in the middle of an epoch draws what the uninterrupted run drew.
- evaluation, and training without ``augment``: resize the short side to S/0.875 (256 for 224) and crop the
  centre SxS (Tiny-ImageNet: resize to SxS when S differs from the image).
- then ``(x / 255 - mean) / std`` with ImageNet's channel statistics (also for Tiny-ImageNet and image folders).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lth.errors import UserError, ref

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_RATIO = 0.875  # evaluation: resize to S / 0.875, crop S (224 from 256)
RRC_SCALE, RRC_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def image_extensions() -> tuple[str, ...]:
    """The file extensions read as images (torchvision's ``IMG_EXTENSIONS``)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


# ---------------------------------------------------------------------------------------------- one image
def decode(path: str) -> Any:
    """The image at ``path`` as an RGB PIL image (Pillow, as torchvision's ImageFolder reads; torchvision.io's
    decoders are deprecated since 0.29). A file that does not decode is a UserError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"image file {path}: cannot be decoded ({why[:120]}); allowed: a readable JPEG, PNG, BMP, "
                        "PPM/PGM, TIFF or WebP image (delete or replace the file)") from None


@dataclass(frozen=True)
class Geometry:
    """What a transform does to one image, decided before any pixel is decoded (so every decoder applies the same
    draws): resize the source ``box`` (left, top, right, bottom; pixels of the source, possibly fractional) to SxS,
    then, when ``offset`` (row, column) is given, take the SxS window at that offset of the result, zero outside,
    then flip horizontally when ``flip``."""

    box: tuple[float, float, float, float]
    offset: tuple[int, int] | None = None
    flip: bool = False


@dataclass(frozen=True)
class Transform:
    """How one image becomes an ``[3, S, S]`` uint8 tensor: ``kind`` is ``rrc`` (random-resized crop + flip),
    ``crop`` (padded random crop + flip) or ``eval`` (resize + centre crop); ``size`` is S."""

    kind: str
    size: int

    def geometry(self, width: int, height: int, seed: int | None = None) -> Geometry:
        """The :class:`Geometry` for an image of ``width`` x ``height``; random kinds draw from a generator seeded
        by ``seed`` (None: evaluation's, no draw)."""
        s, w, h = self.size, width, height
        whole = (0.0, 0.0, float(w), float(h))
        if self.kind == "eval" or seed is None:
            if self.kind == "crop":  # Tiny-ImageNet: the image itself (resized when S differs)
                return Geometry(whole)
            side = min(w, h) * EVAL_RATIO  # the centre of the image resized to short side S / 0.875
            return Geometry(((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2))
        g = torch.Generator().manual_seed(seed)
        if self.kind == "rrc":
            top, left, ch, cw = _rrc_box(h, w, g)
            box, offset = (float(left), float(top), float(left + cw), float(top + ch)), None
        else:  # crop: a random SxS window of the image (resized to SxS) zero-padded by S/16
            pad = max(1, s // 16)
            i, j = (int(v) - pad for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
            box, offset = whole, (i, j)
        return Geometry(box, offset, bool(torch.rand((), generator=g) < 0.5))

    def __call__(self, img: Any, seed: int | None = None) -> Tensor:
        """Transform ``img`` (an RGB PIL image) into uint8 ``[3, S, S]`` (:meth:`geometry`, applied with Pillow).
        Every resize is one Pillow bilinear resize of a box of the source image (Pillow reads the pixels around
        the box for its filter, as a resize of the whole image then a crop would)."""
        from PIL import Image

        s = self.size
        geo = self.geometry(*img.size, seed)
        if geo.box == (0.0, 0.0, float(img.size[0]), float(img.size[1])):
            out = img if img.size == (s, s) else img.resize((s, s), Image.BILINEAR)
        else:
            out = img.resize((s, s), Image.BILINEAR, box=geo.box)
        if geo.offset is not None:  # Pillow fills outside the image with zeros
            i, j = geo.offset
            out = out.crop((j, i, j + s, i + s))
        if geo.flip:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        return _uint8(out)


def _uint8(img: Any) -> Tensor:
    """An RGB PIL image as uint8 ``[3, H, W]`` (a channels-first view of Pillow's pixels)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


def _rrc_box(height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-resized crop, drawn from ``g``: torchvision's RandomResizedCrop.get_params
    (10 tries of an area share in ``RRC_SCALE`` and a log-uniform aspect in ``RRC_RATIO``, then the centre crop
    clamped to the ratio range), with a seeded generator instead of the global one."""
    import math

    area = height * width
    log_ratio = torch.log(torch.tensor(RRC_RATIO))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(RRC_SCALE[0], RRC_SCALE[1], generator=g))
        aspect = math.exp(float(torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=g)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (1,), generator=g))
            j = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return i, j, h, w
    ratio = width / height
    if ratio < min(RRC_RATIO):
        w, h = width, round(width / min(RRC_RATIO))
    elif ratio > max(RRC_RATIO):
        h, w = height, round(height * max(RRC_RATIO))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# ---------------------------------------------------------------------------------------------- lazy images
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(16, os.cpu_count() or 1)), thread_name_prefix="lth-decode")
    return _POOL


class FileImages:
    """A lazy ``[n, 3, S, S]`` float tensor of images on disk (see the module docstring).

    Supports what lth's analyses ask of a tensor of examples: ``shape``, ``len``, ``dim()``, indexing by an int,
    a slice or an index tensor (a lazy subset), ``index_select(0, idx)``, ``contiguous()``, and ``.to(device)``,
    which decodes (evaluation transform) and normalises into a real tensor."""

    def __init__(self, paths: np.ndarray, size: int, train_kind: str, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.paths = np.asarray(paths)
        self.size, self.train_kind, self.mean, self.std = int(size), train_kind, tuple(mean), tuple(std)

    # -- tensor-like
    @property
    def shape(self) -> torch.Size:
        """``(n, 3, S, S)``."""
        return torch.Size((len(self.paths), 3, self.size, self.size))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def device(self) -> torch.device:
        """The CPU (decoded images land there unless ``.to`` names another device)."""
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """float32, as decoded."""
        return torch.float32

    def dim(self) -> int:
        """4, as a tensor of images."""
        return 4

    ndim = property(dim)

    def numel(self) -> int:
        """Values of the decoded tensor."""
        return self.shape.numel()

    def _subset(self, paths: np.ndarray) -> FileImages:
        return FileImages(paths, self.size, self.train_kind, self.mean, self.std)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, int):
            return self.to("cpu", index=[idx])[0]
        if isinstance(idx, slice):
            return self._subset(self.paths[idx])
        if isinstance(idx, Tensor):
            idx = idx.cpu().numpy()
        return self._subset(self.paths[np.asarray(idx)])

    def index_select(self, dim: int, idx: Tensor) -> FileImages:
        """The examples at ``idx`` (dimension 0 only), lazily."""
        if dim != 0:
            raise ValueError("FileImages.index_select: only dimension 0")
        return self[idx]

    def contiguous(self) -> FileImages:
        """Itself (nothing is laid out in memory)."""
        return self

    def unsqueeze(self, dim: int) -> Tensor:
        """The decoded images with a new dimension (``x[a:b].unsqueeze(0)`` as with a tensor)."""
        return self.to("cpu").unsqueeze(dim)

    # -- decoding
    def transform(self, train: bool) -> Transform:
        """The training (``rrc`` / ``crop``) or evaluation transform of these images."""
        return Transform(self.train_kind if train else ("crop" if self.train_kind == "crop" else "eval"), self.size)

    def load(self, i: int, seed: int | None = None) -> Tensor:
        """Image ``i`` as uint8 ``[3, S, S]``: the training transform seeded by ``seed``, or (None) evaluation's."""
        return self.transform(seed is not None)(decode(str(self.paths[i])), seed)

    def normalise(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """uint8 ``[..., 3, S, S]`` (any device) -> float32 ``(x / 255 - mean) / std``, computed as
        ``x * (1 / (255 std)) - mean / std`` (two passes; into ``out`` when given)."""
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], dtype=torch.float32, device=x.device).view(3, 1, 1)
        shift = torch.tensor([m / s for m, s in zip(self.mean, self.std, strict=True)], dtype=torch.float32,
                             device=x.device).view(3, 1, 1)
        y = x.to(torch.float32) if out is None else out.copy_(x)
        return y.mul_(scale).sub_(shift)

    def to(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
           index: Iterable[int] | None = None, **_: Any) -> Tensor:
        """Decode every image (or those at ``index``) with the evaluation transform into a normalised float32
        tensor on ``device`` (threads decode in parallel)."""
        idx = list(range(len(self.paths))) if index is None else list(index)
        raw = list(_pool().map(self.load, idx))
        x = self.normalise(torch.stack(raw) if raw else torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8))
        x = x.to(device)
        return x if dtype is None else x.to(dtype)

    def __repr__(self) -> str:
        return f"FileImages({len(self.paths)} images, {self.size}x{self.size}, {self.train_kind})"


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is images on disk (:class:`FileImages`) rather than a tensor."""
    return isinstance(x, FileImages)


# ---------------------------------------------------------------------------------------------- layouts
@dataclass
class Split:
    """One split's files and labels (class indices into the layout's sorted class list)."""

    paths: list[str]
    labels: list[int]


@dataclass
class Layout:
    """What a dataset folder holds: the classes, the training and evaluation splits, and what was skipped."""

    root: Path
    classes: list[str]
    train: Split
    eval: Split
    eval_name: str
    skipped: list[str]


def _is_image(name: str) -> bool:
    return name.lower().endswith(image_extensions())


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise UserError(f"{what}: folder not found: {path}; expected the layout of docs/scale.md "
                        f"(set {ref('data_dir')} to the folder that holds it)", value=str(path))


def _files_in(folder: Path, skipped: list[str]) -> list[str]:
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if e.is_file():
                (out if _is_image(e.name) else skipped).append(e.path)
    return sorted(out)


def _class_folders(split_dir: Path, what: str, sub: str | None, skipped: list[str],
                   classes: list[str] | None = None, listed_in: str = "the training split") -> tuple[list[str], Split]:
    """``split_dir/<class>[/sub]/*``: the sorted classes and their files. With ``classes`` given (those of
    ``listed_in``: the training split, or Tiny-ImageNet's ``wnids.txt``), the folders must be exactly those."""
    _require_dir(split_dir, what)
    found = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not found:
        raise UserError(f"{what}: no class folders in {split_dir}; expected {split_dir}/<class>/<image files>")
    if classes is not None and found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        parts = ([f"no folder for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")] if missing
                 else []) \
            + ([f"not in {listed_in}: {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else "")] if extra else [])
        raise UserError(f"{what}: the class folders of {split_dir} differ from the classes of {listed_in} "
                        f"({'; '.join(parts)}); allowed: one folder per class of {listed_in}")
    paths: list[str] = []
    labels: list[int] = []
    for ci, c in enumerate(found):
        folder = split_dir / c / sub if sub else split_dir / c
        _require_dir(folder, what)
        files = _files_in(folder, skipped)
        if not files:
            raise UserError(f"{what}: class folder {folder} holds no image files "
                            f"(allowed extensions: {', '.join(image_extensions())})")
        paths += files
        labels += [ci] * len(files)
    return found, Split(paths, labels)


def layout_imagefolder(root: Path) -> Layout:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``root/test``)."""
    skipped: list[str] = []
    _require_dir(root, "imagefolder")
    classes, train = _class_folders(root / "train", "imagefolder", None, skipped)
    ev = next((n for n in ("val", "test") if (root / n).is_dir()), None)
    if ev is None:
        raise UserError(f"imagefolder: no evaluation split in {root}: expected {root / 'val'} (or "
                        f"{root / 'test'}) holding the class folders of {root / 'train'}")
    _, evs = _class_folders(root / ev, "imagefolder", None, skipped, classes)
    return Layout(root, classes, train, evs, ev, skipped)


def _imagenet_root(root: Path) -> Path:
    for r in (root, root / "imagenet", root / "ILSVRC2012"):
        if (r / "train").is_dir():
            return r
    raise UserError(f"imagenet: no train folder in {root} (nor in {root / 'imagenet'}); expected "
                    f"train/<wnid>/*.JPEG and val/<wnid>/*.JPEG there (docs/scale.md says how to lay ImageNet out; "
                    f"set {ref('data_dir')})")


def _devkit_val_labels(root: Path, classes: list[str], files: list[str]) -> list[int]:
    """Labels of a flat ``val/`` from the devkit: ``meta.mat`` maps ILSVRC2012_ID to wnid, the ground-truth file
    gives one ID per validation image in file-name order."""
    kit = next((p for p in (root / "ILSVRC2012_devkit_t12", root.parent / "ILSVRC2012_devkit_t12") if p.is_dir()),
               None)
    if kit is None:
        raise UserError(f"imagenet: {root / 'val'} holds images but no class folders, and no devkit "
                        f"(ILSVRC2012_devkit_t12/data/meta.mat and ILSVRC2012_validation_ground_truth.txt) is beside "
                        "it; allowed: val/<wnid>/*.JPEG, or a flat val/ with the devkit")
    meta, truth = kit / "data" / "meta.mat", kit / "data" / "ILSVRC2012_validation_ground_truth.txt"
    for f in (meta, truth):
        if not f.is_file():
            raise UserError(f"imagenet: devkit file not found: {f}")
    import scipy.io

    synsets = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
    id_to_wnid = {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}  # leaves: the 1,000 classes
    ids = [int(line) for line in truth.read_text().split()]
    if len(ids) != len(files):
        raise UserError(f"imagenet: {truth} gives {len(ids)} labels for the {len(files)} images of {root / 'val'}; "
                        "allowed: one label per image, in file-name order")
    index = {c: i for i, c in enumerate(classes)}
    labels = []
    for n, i in enumerate(ids, 1):
        wnid = id_to_wnid.get(i)
        if wnid not in index:
            what = f"class id {i} ({wnid})" if wnid else f"class id {i}, which the devkit's meta.mat does not list"
            raise UserError(f"imagenet: {truth} line {n}: {what} is not a training class folder; allowed: the ids of "
                            f"the {len(index)} class folders of {root / 'train'}")
        labels.append(index[wnid])
    return labels


def layout_imagenet(root: Path) -> Layout:
    """ImageNet's usual layout (see the module docstring)."""
    root = _imagenet_root(root)
    skipped: list[str] = []
    classes, train = _class_folders(root / "train", "imagenet", None, skipped)
    val = root / "val"
    _require_dir(val, "imagenet")
    if any(e.is_dir() for e in os.scandir(val)):
        _, ev = _class_folders(val, "imagenet", None, skipped, classes)
    else:
        files = _files_in(val, skipped)
        ev = Split(files, _devkit_val_labels(root, classes, files))
    return Layout(root, classes, train, ev, "val", skipped)


def tiny_present(root: Path) -> bool:
    """Whether ``root`` holds Tiny-ImageNet (``wnids.txt`` in it or in ``tiny-imagenet-200/``)."""
    return any((p / "wnids.txt").is_file() for p in (Path(root), Path(root) / "tiny-imagenet-200"))


def layout_tiny_imagenet(root: Path) -> Layout:
    """Tiny-ImageNet's layout: ``wnids.txt``, ``train/<wnid>/images/``, ``val/images/`` + ``val_annotations.txt``."""
    r = next((p for p in (root, root / "tiny-imagenet-200") if (p / "wnids.txt").is_file()), None)
    if r is None:
        raise UserError(f"tiny_imagenet: wnids.txt not found in {root} (nor in {root / 'tiny-imagenet-200'}); "
                        f"expected the unzipped tiny-imagenet-200 folder (set {ref('data_dir')})")
    wnids = sorted(w for w in (r / "wnids.txt").read_text().split())
    if not wnids:
        raise UserError(f"tiny_imagenet: {r / 'wnids.txt'} lists no classes")
    skipped: list[str] = []
    classes, train = _class_folders(r / "train", "tiny_imagenet", "images", skipped, wnids, str(r / "wnids.txt"))
    ann = r / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise UserError(f"tiny_imagenet: {ann} not found; expected val/images/*.JPEG and val/val_annotations.txt")
    images = r / "val" / "images"
    _require_dir(images, "tiny_imagenet")
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            raise UserError(f"tiny_imagenet: {ann} line {n}: expected '<file>\\t<wnid>[\\t<box>]', got {line[:60]!r}")
        name, wnid = parts[0], parts[1]
        if wnid not in index:
            raise UserError(f"tiny_imagenet: {ann} line {n}: class {wnid!r} is not in wnids.txt")
        if not (images / name).is_file():
            raise UserError(f"tiny_imagenet: {ann} line {n}: image {images / name} not found")
        paths.append(str(images / name))
        labels.append(index[wnid])
    if not paths:
        raise UserError(f"tiny_imagenet: {ann} labels no images")
    order = sorted(range(len(paths)), key=paths.__getitem__)
    return Layout(r, classes, train, Split([paths[i] for i in order], [labels[i] for i in order]), "val", skipped)


IMAGE_DATASETS = ("imagefolder", "imagenet", "tiny_imagenet")
LAYOUTS = {"imagefolder": layout_imagefolder, "imagenet": layout_imagenet, "tiny_imagenet": layout_tiny_imagenet}
DEFAULT_SIZE = {"imagefolder": 224, "imagenet": 224, "tiny_imagenet": 64}
DECODERS = ("auto", "pillow", "dali")  # --decoder: who decodes (lth.engine.stream.resolve_decoder)
TRAIN_KIND = {"imagefolder": "rrc", "imagenet": "rrc", "tiny_imagenet": "crop"}

_LAYOUT_CACHE: dict[tuple[str, str], Layout] = {}


def read_layout(name: str, root: Path) -> Layout:
    """The layout of dataset ``name`` under ``root`` (scanned once per process and folder; skips said on stderr)."""
    key = (name, str(Path(root).resolve()))
    if key not in _LAYOUT_CACHE:
        lay = LAYOUTS[name](Path(root))
        if lay.skipped:
            print(f"lth: {name}: skipped {len(lay.skipped)} file(s) that are not images (e.g. {lay.skipped[0]}); "
                  f"read: {', '.join(image_extensions())}", file=sys.stderr)
        if name == "imagefolder" and lay.eval_name == "val" and (lay.root / "test").is_dir():
            print(f"lth: imagefolder: evaluating on {lay.root / 'val'}; {lay.root / 'test'} is not read (val/ comes "
                  f"first)", file=sys.stderr)
        _LAYOUT_CACHE[key] = lay
    return _LAYOUT_CACHE[key]


def check_same_images(stored: dict[Path, dict], now: dict) -> None:
    """An image folder is the dataset (``--data-dir`` names *which* images, not where a fixed dataset lies): runs
    already in the store (``{run path: the data_source its spec.json recorded}``) must have read the images about
    to be read (``now``, :func:`layout_source`'s listing). UserError naming both folders where a listing differs."""
    def files(s: dict) -> str:
        return f"{s.get('root')}: {s.get('train_images')} training images, listing {str(s.get('listing_sha256'))[:12]}"

    for path, was in stored.items():
        if was.get("listing_sha256") not in (None, now.get("listing_sha256")):
            raise UserError(f"{ref('data_dir')}: {path} was trained on other images ({files(was)}; now "
                            f"{files(now)}); allowed: the same images, or another --root for these",
                            value=now.get("root"), allowed="the images the store's runs were trained on")


def image_splits(name: str, root: Path, image_size: int) -> tuple[FileImages, Tensor, FileImages, Tensor, int]:
    """``(train_x, train_y, test_x, test_y, num_classes)`` of image dataset ``name``: lazy images, real labels."""
    lay = read_layout(name, root)
    size = image_size or DEFAULT_SIZE[name]
    kind = TRAIN_KIND[name]
    return (FileImages(np.array(lay.train.paths), size, kind), torch.tensor(lay.train.labels, dtype=torch.long),
            FileImages(np.array(lay.eval.paths), size, kind), torch.tensor(lay.eval.labels, dtype=torch.long),
            len(lay.classes))


def layout_source(name: str, root: Path) -> dict[str, Any]:
    """What a run read, for its ``spec.json``: the layout's root, counts, and a sha256 over the sorted relative
    file names and their sizes (not the pixels: hashing a million JPEGs would take longer than an epoch)."""
    lay = read_layout(name, root)
    h = hashlib.sha256()
    for p in (*lay.train.paths, *lay.eval.paths):
        h.update(os.path.relpath(p, lay.root).encode())
        h.update(str(os.path.getsize(p)).encode())
    return {"layout": name, "classes": len(lay.classes), "train_images": len(lay.train.paths),
            f"{lay.eval_name}_images": len(lay.eval.paths), "skipped": len(lay.skipped),
            "listing_sha256": h.hexdigest()}
