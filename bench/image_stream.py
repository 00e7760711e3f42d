"""Images read from disk while training (lth.data.images + lth.engine.stream) against torchvision's ImageFolder.

Writes an image folder of ImageNet-like JPEGs (``--images`` files of about 400x350 pixels, smooth random content,
10 classes; reused when present), then measures:

- **throughput**: images per second that reach the training step, lth's StreamBatches (Pillow decode,
  random-resized crop + flip in the workers, uint8 collate, normalised in the training process into the step's
  buffer) against the textbook torchvision ``ImageFolder`` + ``DataLoader`` (RandomResizedCrop,
  RandomHorizontalFlip, ToTensor, Normalize in the workers), the same batch and the same number of worker
  processes; interleaved, ``--repeats`` times each, median and all runs;
- with DALI installed, **lth_dali**: the same batches decoded by lth's DALI path (``--decoder dali``; its CPU
  threads, as many as the workers; ``--device cuda``: nvJPEG on the GPU);
- **memory**: the peak resident memory of the whole process tree (training process and its DataLoader workers,
  sampled every 50 ms with psutil) while lth trains a small network for ``--train-steps`` steps on the folder,
  beside the size the training split would take decoded in memory (float32 at ``--image-size``), on a quarter of the
  folder and on the folder with every image linked ``--copies`` times (bounded memory: the two peaks are alike while
  the larger dataset is many times the peak and near this machine's memory).

Prints one JSON document.
- with ``--only population``: a population of 4 members whose seeds form 1, 2 or 4 (order, augment) groups:
  seconds per step (4 stability copies with their own orders decode 4 batches per step; 4 IMP runs of one
  replicate decode one).

  python bench/image_stream.py [--images 4000] [--workers 2] [--batch 64] [--folder /tmp/lth_bench_images]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from _common import device_info
from PIL import Image

from lth.data import load_dataset
from lth.data.images import IMAGENET_MEAN, IMAGENET_STD
from lth.engine import dali
from lth.engine.stream import StreamBatches
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec


def make_folder(root: Path, n: int) -> Path:
    """``root/train/c<k>/*.jpg`` (and a small ``val``): smooth random colour images of about 400x350."""
    if (root / "done").exists() and int((root / "done").read_text()) == n:
        return root
    rng = np.random.default_rng(0)
    for i in range(n + n // 10):
        split, k = ("val" if i >= n else "train"), i % 10
        h, w = int(rng.integers(300, 400)), int(rng.integers(350, 500))
        small = torch.from_numpy(rng.integers(0, 256, (1, 3, h // 8, w // 8), dtype=np.uint8)).float()
        img = torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic").clamp(0, 255)
        img = img + torch.from_numpy(rng.normal(0, 12, (1, 3, h, w)).astype(np.float32))
        arr = img.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        f = root / split / f"c{k}" / f"{i:06d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(f, quality=90)
    (root / "done").write_text(str(n))
    return root


def linked(folder: Path, copies: int) -> Path:
    """``folder`` with every training image present ``copies`` times (symbolic links): a dataset many times larger
    than memory without the disk it would take."""
    out = folder.with_name(f"{folder.name}_x{copies}")
    if (out / "done").exists():
        return out
    for f in sorted((folder / "train").rglob("*.jpg")):
        d = out / "train" / f.parent.name
        d.mkdir(parents=True, exist_ok=True)
        for c in range(copies):
            (d / f"{f.stem}_{c}.jpg").symlink_to(f)
    (out / "val").symlink_to(folder / "val")
    (out / "done").write_text(str(copies))
    return out


def lth_rate(folder: Path, batch: int, workers: int, size: int, steps: int, decoder: str = "pillow",
             device: str = "cpu") -> float:
    data = load_dataset(DataHparams(dataset="imagefolder", batch_size=batch, augment=True, image_size=size),
                        data_dir=folder)
    sb = StreamBatches(1, data.train_x, data.train_y, batch, True, [0], [0], torch.device(device), workers=workers,
                       decoder=decoder)
    sb.fill(0, [0], [0])
    sb.prepare(0)  # workers started, first batch in
    t = time.perf_counter()
    for pos in range(1, steps + 1):
        sb.prepare(pos)
    if device != "cpu":
        torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - t)
    sb.close()
    return rate


def population_rate(folder: Path, batch: int, workers: int, size: int, steps: int, members: int,
                    groups: int) -> dict:
    """A population of ``members`` whose (order, augment) seeds form ``groups`` distinct pairs (stability copies
    each with its own order: ``groups = members``): steps per second and decoded images per member-step."""
    data = load_dataset(DataHparams(dataset="imagefolder", batch_size=batch, augment=True, image_size=size),
                        data_dir=folder)
    seeds = [i % groups for i in range(members)]
    sb = StreamBatches(members, data.train_x, data.train_y, batch, True, seeds, seeds, torch.device("cpu"),
                       workers=workers)
    sb.fill(0, seeds, seeds)
    sb.prepare(0)
    t = time.perf_counter()
    for pos in range(1, steps + 1):
        sb.prepare(pos)
    secs = (time.perf_counter() - t) / steps
    sb.close()
    return {"members": members, "groups": groups, "seconds_per_step": round(secs, 3),
            "seconds_per_member_step": round(secs / members, 3)}


def torchvision_rate(folder: Path, batch: int, workers: int, size: int, steps: int) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder / "train"), transform=tf),
                                         batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    rate = steps * batch / (time.perf_counter() - t)
    del it
    return rate


class PeakMemory:
    """Peak resident memory of this process and its children (sampled)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def train_memory(folder: Path, batch: int, workers: int, size: int, steps: int, subsample: float) -> dict:
    spec = TrainSpec(DataHparams(dataset="imagefolder", batch_size=batch, augment=True, image_size=size,
                                 subsample_fraction=subsample),
                     ModelHparams(model="fc_16"), TrainHparams(lr=0.01, training_steps=Step(steps, "it"),
                                                               eval_every=Step(steps, "it")))
    data = load_dataset(spec.data, data_dir=folder)
    decoded = data.train_x.numel() * 4
    with tempfile.TemporaryDirectory() as d, PeakMemory() as mem:
        t = time.perf_counter()
        train_population([Job(spec, 0, Path(d) / "run")], data,
                         EngineOptions(device="cpu", checkpoint_every=None, loader_workers=workers))
        secs = time.perf_counter() - t
    return {"train_images": int(data.train_x.shape[0]), "decoded_float32_gib": round(decoded / 2**30, 2),
            "peak_rss_gib": round(mem.peak / 2**30, 2), "seconds": round(secs, 1), "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--folder", default="/tmp/lth_bench_images")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--only", choices=("all", "population", "rates"), default="all",
                    help="rates: the images-per-second comparison only (no memory runs)")
    ap.add_argument("--device", default="cpu", help="where DALI decodes (cuda: nvJPEG) and the batches land")
    ap.add_argument("--copies", type=int, default=12, help="memory: the large folder holds each image this often")
    args = ap.parse_args()
    if args.only == "population":  # the cost of members with their own data order
        folder = make_folder(Path(args.folder), args.images)
        print(json.dumps({"bench": "image_stream_population", "batch": args.batch, "workers": args.workers,
                          "image_size": args.image_size,
                          "populations": [population_rate(folder, args.batch, args.workers, args.image_size,
                                                          args.steps, 4, g) for g in (1, 2, 4)]}, indent=1))
        return
    folder = make_folder(Path(args.folder), args.images)
    rates: dict[str, list[float]] = {"lth": [], "torchvision": []}
    if dali.available():  # lth's DALI path (--decoder dali): its CPU threads here, nvJPEG with --device cuda
        rates["lth_dali"] = []
    for _ in range(args.repeats):
        rates["lth"].append(lth_rate(folder, args.batch, args.workers, args.image_size, args.steps))
        rates["torchvision"].append(torchvision_rate(folder, args.batch, args.workers, args.image_size, args.steps))
        if "lth_dali" in rates:
            rates["lth_dali"].append(lth_rate(folder, args.batch, args.workers, args.image_size, args.steps, "dali",
                                              args.device))
    out = {"bench": "image_stream", **device_info(torch.device("cpu")), "cpus": os.cpu_count(),
           "images": args.images, "jpeg_mib": round(sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 2**20, 1),
           "batch": args.batch, "workers": args.workers, "image_size": args.image_size,
           "baseline": "ImageFolder + DataLoader: RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize",
           "images_per_second": {k: {"median": round(statistics.median(v), 1), "runs": [round(r, 1) for r in v]}
                                 for k, v in rates.items()},
           "dali_device": args.device if "lth_dali" in rates else None}
    if args.only != "rates":
        out["memory"] = [train_memory(folder, args.batch, args.workers, args.image_size, args.train_steps, 0.25),
                         train_memory(linked(folder, args.copies), args.batch, args.workers, args.image_size,
                                      args.train_steps, 1.0)]
    if "lth_dali" in rates:
        out["dali_over_pillow"] = round(out["images_per_second"]["lth_dali"]["median"]
                                        / out["images_per_second"]["lth"]["median"], 3)
    out["lth_over_torchvision"] = round(out["images_per_second"]["lth"]["median"]
                                        / out["images_per_second"]["torchvision"]["median"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
