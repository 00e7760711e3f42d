"""Device-side batches: per-member data order and augmentation, drawn once per epoch.

Each member draws its epoch's permutation from a generator seeded by (order seed, epoch) and its crop offsets and
flips from (augment seed, epoch) (and, for the rotation pretraining task, a fresh quarter-turn count per
example and presentation from a third stream of the augment seed), so any step of any epoch can be reproduced
without replaying the ones before it (rewinding and resuming need this), and one member's draws never depend on
another's. The training
step reads its batch from static buffers by a step pointer, which keeps it capturable as a CUDA graph.

A distributed run (:mod:`lth.engine.distributed`) gives each of its ``W`` processes a ``shard=(rank, W)``: every
rank draws the same global order (the run's own order seed; nothing depends on the rank or the world size) and
:meth:`EpochBatches.batch` returns only rows ``rank*B/W .. (rank+1)*B/W`` of each global batch of ``B``, so the
ranks' rows never overlap and together are the batch one process would take.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PAD = 4  # CIFAR augmentation: 4-pixel zero padding, random 32x32 crop, horizontal flip


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (so (seed, epoch) pairs never collide in practice)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def generator(device: torch.device, *parts: int) -> torch.Generator:
    """A generator on ``device`` seeded by mixing ``parts``."""
    g = torch.Generator(device=device)
    g.manual_seed(mix_seed(*parts))
    return g


class EpochBatches:
    """Static per-epoch buffers for N members: ``order[N, S*B]`` and, with augmentation, ``shift[N, S*B, 2]``
    and ``flip[N, S*B]``; with ``rotate`` (the rotation pretraining task), ``turns[N, S*B]``: each example is
    turned by that many more quarter turns and its label (its turn count, 0-3) advanced by as many, so the rotation
    it is seen at is drawn afresh at every presentation (Frankle, Schwab & Morcos 2020, Section 5: examples
    "randomly rotated" by 90n degrees, n predicted). :meth:`fill` rewrites them in place for an epoch."""

    def __init__(self, n_members: int, n_train: int, batch_size: int, augment: bool, image_hw: tuple[int, int],
                 device: torch.device, shard: tuple[int, int] = (0, 1), rotate: bool = False) -> None:
        rank, world = shard
        if world < 1 or not 0 <= rank < world or batch_size % world:
            raise ValueError(f"shard {shard}: a batch of {batch_size} does not split over {world} ranks")
        self.n, self.n_train, self.batch_size, self.augment = n_members, n_train, batch_size, augment
        self.shard = (rank, world)
        self.local = batch_size // world  # the rows of each global batch this rank takes
        self.rotate = rotate
        self.steps_per_epoch = n_train // batch_size  # the last partial batch is dropped (static shapes)
        self.device = device
        m = self.steps_per_epoch * batch_size
        self.order = torch.zeros(n_members, m, dtype=torch.long, device=device)
        self.hw = image_hw
        if augment:
            self.shift = torch.zeros(n_members, m, 2, dtype=torch.long, device=device)
            self.flip = torch.zeros(n_members, m, dtype=torch.bool, device=device)
        if rotate:
            self.turns = torch.zeros(n_members, m, dtype=torch.long, device=device)

    def fill(self, epoch: int, order_seeds: list[int], augment_seeds: list[int],
             members: list[int] | None = None, start: int = 0) -> None:
        """Draw epoch ``epoch`` for the given members (default: all); ``start`` (the step-in-epoch training
        resumes at) changes nothing here: every batch of the epoch is drawn."""
        m = self.order.shape[1]
        for i in range(self.n) if members is None else members:
            g = generator(self.device, 1, order_seeds[i], epoch)
            self.order[i].copy_(torch.randperm(self.n_train, generator=g, device=self.device)[:m])
            if self.augment:
                ga = generator(self.device, 2, augment_seeds[i], epoch)
                self.shift[i].copy_(torch.randint(0, 2 * PAD + 1, (m, 2), generator=ga, device=self.device))
                self.flip[i].copy_(torch.rand(m, generator=ga, device=self.device) < 0.5)
            if self.rotate:
                gr = generator(self.device, 3, augment_seeds[i], epoch)
                self.turns[i].copy_(torch.randint(0, 4, (m,), generator=gr, device=self.device))

    def batch(self, x: Tensor, y: Tensor, pos: Tensor | int) -> tuple[Tensor, Tensor]:
        """The batch at step-in-epoch ``pos`` (an int, or a 1-element device tensor inside a CUDA graph):
        ``x [N, B, C, H, W]`` and ``y [N, B]``; with a ``shard`` of ``W`` ranks, this rank's ``B/W`` rows of it."""
        n, b, lo = self.n, self.local, self.shard[0] * self.local
        if isinstance(pos, int):
            start = pos * self.batch_size + lo
            idx = self.order[:, start:start + b]
            sl = slice(start, start + b)
        else:
            idx = self.order.view(n, self.steps_per_epoch, self.batch_size).index_select(1, pos)[..., lo:lo + b]
            idx = idx.reshape(n, b)
        flat = idx.reshape(-1)
        xb = x.index_select(0, flat)
        yb = y.index_select(0, flat)
        if self.augment:
            s, bg = self.steps_per_epoch, self.batch_size
            if isinstance(pos, int):
                shift = self.shift[:, sl].reshape(-1, 2)
                flip = self.flip[:, sl].reshape(-1)
            else:
                shift = self.shift.view(n, s, bg, 2).index_select(1, pos)[:, :, lo:lo + b].reshape(-1, 2)
                flip = self.flip.view(n, s, bg).index_select(1, pos)[:, :, lo:lo + b].reshape(-1)
            xb = crop_flip(xb, shift, flip)
        if self.rotate:
            if isinstance(pos, int):
                turns = self.turns[:, sl].reshape(-1)
            else:
                turns = self.turns.view(n, self.steps_per_epoch, self.batch_size).index_select(1, pos)[
                    :, :, lo:lo + b].reshape(-1)
            xb, yb = quarter_turns(xb, turns), (yb + turns) % 4
        return xb.view(n, b, *xb.shape[1:]), yb.view(n, b)


def quarter_turns(x: Tensor, turns: Tensor) -> Tensor:
    """Each image ``x[i]`` (``[M, C, H, W]``, H = W) turned ``turns[i]`` quarter turns (``torch.rot90`` over the
    last two dimensions), as fixed-shape tensor code (capturable in a CUDA graph)."""
    out = x
    for k in (1, 2, 3):
        out = torch.where((turns == k).view(-1, 1, 1, 1), torch.rot90(x, k, dims=(-2, -1)), out)
    return out


def crop_flip(x: Tensor, shift: Tensor, flip: Tensor) -> Tensor:
    """Batched random crop with zero padding ``PAD`` and horizontal flip, as one gather.

    ``x [M, C, H, W]``; ``shift [M, 2]`` holds (row, column) offsets in ``0..2*PAD``; ``flip [M]`` bools.
    """
    m, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = shift[:, 0:1] + ar_h  # [M, H]
    cols_plain = ar_w.expand(m, w)
    cols = torch.where(flip[:, None], (w - 1) - cols_plain, cols_plain) + shift[:, 1:2]  # [M, W]
    wp = w + 2 * PAD
    lin = (rows[:, :, None] * wp + cols[:, None, :]).view(m, 1, h * w).expand(m, c, h * w)
    return padded.reshape(m, c, -1).gather(2, lin).view(m, c, h, w)
