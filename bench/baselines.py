"""What researchers write today, timed in the same run as lth: a textbook torchvision Dataset + DataLoader
loop, and a tight hand-written loop over tensors on the device."""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lth.models import build_model


def lenet() -> nn.Module:
    """LeNet-300-100 as ``torch.nn`` layers."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


class Single(nn.Module):
    """One lth network (a population of 1) behind the ordinary ``[B, C, H, W] -> [B, K]`` interface."""

    def __init__(self, name: str, shape: tuple[int, ...], classes: int) -> None:
        super().__init__()
        self.net = build_model(name, 1, shape, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(0))[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(model: nn.Module, opt: torch.optim.Optimizer, batches, steps: int, warmup: int,
                 device: torch.device) -> float:
    """Seconds per step over ``steps`` steps after ``warmup``, drawing (x, y) from ``batches``."""
    it = iter(batches)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            began = time.perf_counter()
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - began) / steps


def textbook_mnist(data_dir: Path, device: torch.device, steps: int, workers: int) -> float:
    """torchvision MNIST + ToTensor/Normalize + DataLoader(batch 60, shuffle) + Adam: seconds per step."""
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in Path(data_dir, "MNIST", "raw").glob("*.gz"):
            with gzip.open(f) as src, open(raw / f.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        ds = datasets.MNIST(tmp, train=True, download=False, transform=tf)
        loader = torch.utils.data.DataLoader(ds, batch_size=60, shuffle=True, num_workers=workers,
                                             pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        model = lenet().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
        return _timed_steps(model, opt, _cycle(loader), steps, 20, device)


def tight_mnist(x: torch.Tensor, y: torch.Tensor, device: torch.device, steps: int) -> float:
    """Data as tensors on the device, a random permutation, nn.Sequential, Adam(fused): seconds per step."""
    x, y = x.to(device).view(x.shape[0], -1), y.to(device)
    model = lenet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3, fused=True)

    def batches():
        while True:
            perm = torch.randperm(x.shape[0], device=device)
            for a in range(0, x.shape[0] - 59, 60):
                idx = perm[a:a + 60]
                yield x[idx], y[idx]
    return _timed_steps(model, opt, batches(), steps, 20, device)


class _CifarLike(torch.utils.data.Dataset):
    """Random uint8 images of CIFAR's shape, served one by one as a torchvision dataset would."""

    def __init__(self, n: int, transform) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), int(self.y[i])


def textbook_resnet20(device: torch.device, steps: int, workers: int) -> float:
    """Per-sample crop/flip transforms + DataLoader(batch 128) + ResNet-20 + SGD: seconds per step."""
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    loader = torch.utils.data.DataLoader(_CifarLike(50000, tf), batch_size=128, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    model = Single("resnet_20", (3, 32, 32), 10).to(device)
    for i in range(1):
        model.net.init_member(i, "kaiming_normal", torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return _timed_steps(model, opt, _cycle(loader), steps, 5, device)


def _cycle(loader):
    while True:
        yield from loader
