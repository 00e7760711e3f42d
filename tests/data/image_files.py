"""Real image files written at test time in each layout lth reads (digits drawn as RGB JPEGs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits


def digit_images(count: int | None = None, hw: tuple[int, int] = (20, 24)) -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's digits as uint8 RGB ``[n, 3, H, W]`` (nearest upsampling) and their labels."""
    d = load_digits()
    x = torch.from_numpy((d.images * 255 / 16).astype(np.uint8))[:count]
    x = torch.nn.functional.interpolate(x[:, None].float(), size=hw, mode="nearest").to(torch.uint8)
    return x.repeat(1, 3, 1, 1), d.target[:count]


def held_out(y: np.ndarray, every: int) -> list[bool]:
    """Which images go to the evaluation split: every ``every``-th of each class (so both splits hold every class)."""
    seen: dict[int, int] = {}
    out = []
    for c in y.tolist():
        seen[c] = seen.get(c, -1) + 1
        out.append(seen[c] % every == 0)
    return out


def _write(path: Path, img: torch.Tensor) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path, format="JPEG", quality=95)
    return str(path)


def write_imagefolder(root: Path, count: int | None = None, eval_name: str = "val", every: int = 5,
                      hw: tuple[int, int] = (20, 24)) -> Path:
    """``root/train/c<digit>/*.jpg`` and ``root/<eval_name>/c<digit>/*.jpg`` (every ``every``-th image)."""
    x, y = digit_images(count, hw)
    ev = held_out(y, every)
    for i in range(len(x)):
        split = eval_name if ev[i] else "train"
        _write(root / split / f"c{y[i]}" / f"{i:05d}.jpg", x[i])
    return root


def wnid(c: int) -> str:
    """A WordNet-like id for class ``c``."""
    return f"n{1000 + c:08d}"


def write_tiny_imagenet(root: Path, count: int = 200) -> Path:
    """``root/tiny-imagenet-200`` with wnids.txt, train/<wnid>/images/, val/images/ and val_annotations.txt."""
    x, y = digit_images(count, (64, 64))
    r = root / "tiny-imagenet-200"
    r.mkdir(parents=True, exist_ok=True)
    (r / "wnids.txt").write_text("".join(f"{wnid(c)}\n" for c in sorted(set(y.tolist()))))
    lines = []
    ev = held_out(y, 4)
    for i in range(len(x)):
        if ev[i]:
            _write(r / "val" / "images" / f"val_{i}.JPEG", x[i])
            lines.append(f"val_{i}.JPEG\t{wnid(int(y[i]))}\t0\t0\t63\t63")
        else:
            _write(r / "train" / wnid(int(y[i])) / "images" / f"{wnid(int(y[i]))}_{i}.JPEG", x[i])
    (r / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return r


def write_imagenet(root: Path, count: int = 200, flat_val: bool = False) -> Path:
    """``root/imagenet/train/<wnid>/*.JPEG`` and a val split as class folders, or flat with the devkit (meta.mat
    written with scipy, ground truth one ILSVRC2012_ID per line in file-name order)."""
    import scipy.io

    x, y = digit_images(count, (40, 48))
    r = root / "imagenet"
    classes = sorted(set(y.tolist()))
    truth = []
    ev = held_out(y, 4)
    for i in range(len(x)):
        w = wnid(int(y[i]))
        if ev[i]:
            if flat_val:
                _write(r / "val" / f"ILSVRC2012_val_{i:08d}.JPEG", x[i])
                truth.append(classes.index(int(y[i])) + 1)
            else:
                _write(r / "val" / w / f"ILSVRC2012_val_{i:08d}.JPEG", x[i])
        else:
            _write(r / "train" / w / f"{w}_{i}.JPEG", x[i])
    if flat_val:
        data = r / "ILSVRC2012_devkit_t12" / "data"
        data.mkdir(parents=True)
        rows = [(k + 1, wnid(c), f"digit {c}", "", 0) for k, c in enumerate(classes)]
        rows.append((len(classes) + 1, "n99999999", "a parent synset", "", 3))  # not a class: has children
        dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
        scipy.io.savemat(str(data / "meta.mat"), {"synsets": np.array(rows, dtype=dtype)})
        (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{t}\n" for t in truth))
    return r
