"""Batches of images read from disk while training (:class:`lth.data.images.FileImages`).

:class:`StreamBatches` has :class:`~lth.engine.batches.EpochBatches`' contract (``fill`` at an epoch's start,
``batch`` inside the step) plus ``prepare(pos)``, which the stepper calls on the host before each step: it takes
the next decoded batch from a :class:`torch.utils.data.DataLoader` (worker processes decode and augment; the
DataLoader prefetches ``prefetch`` batches per worker) and copies it into static device buffers, so the step
itself (and its CUDA graph) reads fixed tensors as it does with data in memory.

Decoding (``--decoder``): ``pillow`` in DataLoader worker processes, or ``dali``
(:mod:`lth.engine.dali`: NVIDIA DALI, nvJPEG on a GPU; ``auto`` picks it where it is installed and the run trains
on CUDA). Both decode the same items with the same draws; their pixels differ by rounding (docs/scale.md).

Members that share a data order and an augmentation seed share decoded images: the population's batch is one
DataLoader batch of ``G x B`` images for its ``G`` distinct (order seed, augment seed) pairs, and each member reads
its group's rows. A member with its own order (a stability copy) costs one more ``B`` images decoded per step.

Order: each group's epoch permutation is ``randperm(n_train)`` from the CPU generator seeded by (order seed,
epoch), exactly the in-memory path's on the CPU (so both give the same batches there). Augmentation: each example's
draw is seeded by (augment seed, epoch, position in the epoch): a run resumed in the middle of an epoch reads
exactly what the uninterrupted run read, whichever worker decodes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from lth.data.images import DECODERS, FileImages
from lth.engine.batches import generator, mix_seed


class _Items(torch.utils.data.Dataset):
    """``dataset[(i, seed)]``: image ``i`` as uint8 ``[3, S, S]``, augmented from ``seed`` (None: evaluation's
    transform)."""

    def __init__(self, images: FileImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int | None]) -> Tensor:
        i, seed = item
        return self.images.load(i, seed)


def _worker_init(_: int) -> None:
    """A DataLoader worker's batch hand-over that a stop cuts short (multiprocessing's resource sharer, which passes
    the batch's shared memory to the parent) ends without a traceback on the terminal the worker shares with the
    command; any other error of the worker is shown as before."""
    import sys
    import traceback

    shown = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not any(f.f_code.co_filename.endswith("resource_sharer.py") for f, _ in traceback.walk_tb(tb)):
            shown(kind, value, tb)

    sys.excepthook = hook


def _next_batch(it: Any) -> Tensor:
    """The loader's next batch. A worker's UserError (an image that does not decode) comes back from torch as
    ``Caught UserError in DataLoader worker process 0.`` with the original traceback below; it is raised again
    as the worker's own one-line error, which names the file."""
    from lth.errors import UserError

    try:
        return next(it)
    except UserError as e:
        text = str(e)
        if "Original Traceback" not in text:
            raise
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        raise UserError(last.split("UserError: ", 1)[-1]) from None


class _EpochSampler(Sampler[list[tuple[int, int | None]]]):
    """The batches of one epoch from position ``start``: for every step, the ``G x B`` (index, seed) pairs of the
    population's groups, group after group."""

    def __init__(self, batch_size: int, steps: int, lo: int = 0, local: int | None = None) -> None:
        self.batch_size, self.steps = batch_size, steps
        self.lo, self.local = lo, batch_size if local is None else local  # a rank's rows of each global batch
        self.orders: list[Tensor] = []
        self.aug_seeds: list[int | None] = []
        self.epoch = self.start = 0

    def set(self, epoch: int, orders: list[Tensor], aug_seeds: list[int | None], start: int) -> None:
        """What the next iteration yields."""
        self.epoch, self.orders, self.aug_seeds, self.start = epoch, orders, aug_seeds, start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int | None]]]:
        b = self.batch_size
        for pos in range(self.start, self.steps):
            out: list[tuple[int, int | None]] = []
            first = pos * b + self.lo
            for order, seed in zip(self.orders, self.aug_seeds, strict=True):
                idx = order[first:first + self.local].tolist()
                if seed is None:
                    out += [(i, None) for i in idx]
                else:
                    out += [(i, mix_seed(3, seed, self.epoch, first + k)) for k, i in enumerate(idx)]
            yield out


def default_workers() -> int:
    """DataLoader worker processes when none are asked for: the CPUs this process may use, at most 16."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


class StreamBatches:
    """Per-epoch batches of images on disk for N members (see the module docstring)."""

    def __init__(self, n_members: int, images: FileImages, labels: Tensor, batch_size: int, augment: bool,
                 order_seeds: list[int], aug_seeds: list[int], device: torch.device, workers: int | None = None,
                 prefetch: int = 4, shard: tuple[int, int] = (0, 1), decoder: str = "pillow") -> None:
        self.n, self.batch_size, self.augment, self.device = n_members, batch_size, augment, device
        rank, world = shard  # a distributed run (lth.engine.distributed): rows rank*B/W .. (rank+1)*B/W of each batch
        if world < 1 or not 0 <= rank < world or batch_size % world:
            raise ValueError(f"shard {shard}: a batch of {batch_size} does not split over {world} ranks")
        self.local, self.lo = batch_size // world, rank * (batch_size // world)
        self.images, self.labels = images, labels.cpu()
        self.n_train = len(images)
        self.steps_per_epoch = self.n_train // batch_size
        keys = [(o, a if augment else None) for o, a in zip(order_seeds, aug_seeds, strict=True)]
        self.groups = list(dict.fromkeys(keys))  # distinct (order seed, augment seed) pairs, in member order
        self.member_group = torch.tensor([self.groups.index(k) for k in keys], dtype=torch.long)
        self.one_per_group = self.member_group.tolist() == list(range(n_members))
        s = images.size
        self.x = torch.zeros(n_members, self.local, 3, s, s, device=device)
        self.y = torch.zeros(n_members, self.local, dtype=torch.long, device=device)
        self.workers = default_workers() if workers is None else workers
        self.sampler = _EpochSampler(batch_size, self.steps_per_epoch, self.lo, self.local)
        self.decoder = resolve_decoder(decoder, device)
        self.dali: Any = None
        if self.decoder == "dali":  # DALI's threads decode (nvJPEG on a GPU); the same items as the workers get
            from lth.engine.dali import DaliDecoder

            self.dali = DaliDecoder(images, len(self.groups) * self.local, device, max(1, self.workers))
            self.loader = None
        else:
            self.loader = DataLoader(_Items(images), batch_sampler=self.sampler, num_workers=self.workers,
                                     pin_memory=device.type == "cuda", persistent_workers=self.workers > 0,
                                     prefetch_factor=prefetch if self.workers > 0 else None,
                                     worker_init_fn=_worker_init if self.workers > 0 else None)
        self._it: Iterator[Any] | None = None
        self._orders: list[Tensor] = []
        self.pos = 0

    @property
    def decoded_per_step(self) -> int:
        """Images decoded per training step (``G x B``)."""
        return len(self.groups) * self.local

    def fill(self, epoch: int, order_seeds: list[int], augment_seeds: list[int], members: list[int] | None = None,
             start: int = 0) -> None:
        """Start epoch ``epoch`` at step-in-epoch ``start`` (the seeds are the constructor's; ``members`` is
        ignored: every group is drawn)."""
        m = self.steps_per_epoch * self.batch_size
        cpu = torch.device("cpu")
        self._orders = [torch.randperm(self.n_train, generator=generator(cpu, 1, o, epoch))[:m]
                        for o, _ in self.groups]
        self.sampler.set(epoch, self._orders, [a for _, a in self.groups], start)
        if self.dali is not None:
            if self.dali.pending:  # the previous epoch's look-ahead (a run that stopped early): dropped
                self.dali.take()
            self._it = iter(self.sampler)
            self._ahead()
        else:
            self._it = iter(self.loader)
        self.pos = start

    def _ahead(self) -> None:
        """DALI: start decoding the next batch of the epoch (if any)."""
        items = next(self._it, None)  # type: ignore[arg-type]
        if items is not None:
            self.dali.submit(items)

    def prepare(self, pos: int) -> None:
        """Copy the batch at step-in-epoch ``pos`` (the next one) into the static buffers."""
        if self._it is None or pos != self.pos:
            raise RuntimeError(f"StreamBatches: asked for position {pos}, the stream is at {self.pos}")
        if self.dali is not None:
            raw = self.dali.take()  # uint8 [G*B, 3, S, S] on the device
            self._ahead()  # decoded while this step trains
        else:
            raw = _next_batch(self._it).to(self.device, non_blocking=True)  # uint8 [G*B, 3, S, S]
        g, b = len(self.groups), self.local
        if self.one_per_group:  # straight into the step's buffer (the main process competes with the workers)
            self.images.normalise(raw, out=self.x.view(g * b, *raw.shape[1:]))
        else:
            x = self.images.normalise(raw).view(g, b, *raw.shape[1:])
            torch.index_select(x, 0, self.member_group.to(self.device), out=self.x)
        first = pos * self.batch_size + self.lo
        ys = torch.stack([self.labels[o[first:first + b]] for o in self._orders])
        self.y.copy_(ys.index_select(0, self.member_group).to(self.device, non_blocking=True))
        self.pos += 1

    def batch(self, x: Any, y: Any, pos: Tensor | int) -> tuple[Tensor, Tensor]:
        """The prepared batch: ``x [N, B, 3, S, S]`` and ``y [N, B]`` (``x``, ``y`` and ``pos`` are unused)."""
        return self.x, self.y

    def close(self) -> None:
        """Stop the worker processes (or DALI's threads)."""
        self._it = None
        self.loader = None
        if self.dali is not None:
            self.dali.close()
            self.dali = None



def resolve_decoder(decoder: str, device: torch.device) -> str:
    """``pillow`` or ``dali`` for ``decoder`` (``auto``: DALI where it is installed and the run trains on CUDA,
    else Pillow). UserError for an unknown name, or ``dali`` where DALI is not installed."""
    from lth.engine import dali
    from lth.errors import UserError

    if decoder not in DECODERS:
        raise UserError.bad("decoder", decoder, ", ".join(DECODERS))
    if decoder == "auto":
        return "dali" if device.type == "cuda" and dali.available() else "pillow"
    if decoder == "dali":
        dali.require()
    return decoder
