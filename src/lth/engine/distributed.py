"""One run over several processes (torch.distributed): what the engine does differently on each rank.

A distributed run trains the same population on ``W`` processes (ranks). Every rank builds the same wide model
from the same seeds, draws the same global data order and takes its ``B/W`` rows of each global batch
(:class:`~lth.engine.batches.EpochBatches` ``shard``). After each backward the gradients are averaged across the
ranks (:meth:`Dist.average_grads`: ``all_reduce`` of flat buckets), so every rank applies the same update and the
same mask, and its weights stay equal to every other rank's. What the engine reads back is reduced the same way:
the training loss (:meth:`Dist.mean`), the evaluation (sharded over the ranks and summed:
:func:`evaluate_sharded`), the decision to write a checkpoint (rank 0's, :meth:`Dist.agree`). Only rank 0 writes
the store (:class:`QuietRunDir` on the others), so every file exists once.

Why ``all_reduce`` and not ``DistributedDataParallel``: the CPU's MLPs set their gradients with a hand-written
backward (``loss_and_grads``), which never runs autograd's hooks DDP reduces in; the population's optimiser steps
stacked tensors of its own. Reducing the finished gradients in buckets of about 25 MB (DDP's default) serves both
backward paths with one code path and one result; it gives up DDP's overlap of communication with the backward,
which matters only for large networks on many GPUs (bench/ddp_overhead.py measures the cost at world size 1).

BatchNorm: synchronised in every distributed run (:func:`sync_batchnorm`; the batch statistics are those of the
global batch, summed across ranks), so a run's result does not depend on the world size, up to reduction order,
and the world size is no part of a run's identity. It is recorded in each run's ``spec.json`` (``distributed``).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor

from lth.store import RunDir

BUCKET_BYTES = 25 * 1024 * 1024  # DDP's default bucket size
DEFAULT_TIMEOUT_S = 120.0  # a rendezvous that never forms, or a collective a dead rank never joins


@dataclass
class Dist:
    """This process's place in a distributed run: its ``rank`` of ``world``, the rank on its machine
    (``local_rank``: which GPU), the backend (nccl | gloo)."""

    rank: int
    world: int
    local_rank: int = 0
    backend: str = "gloo"

    @property
    def main(self) -> bool:
        """Whether this rank writes the store (rank 0)."""
        return self.rank == 0

    def record(self, batchnorm: bool) -> dict[str, Any]:
        """What each run records of how it was distributed (its ``spec.json`` ``distributed``)."""
        return {"world_size": self.world, "backend": self.backend, "gradients": "all_reduce (mean)",
                "batchnorm": "sync" if batchnorm else "none", "evaluation": "sharded, summed"}

    def average_grads(self, grads: list[Tensor | None]) -> None:
        """Replace every gradient with its mean over the ranks (``all_reduce`` of flat buckets)."""
        bucket: list[Tensor] = []
        size = 0
        for g in grads:
            if g is None:
                continue
            if bucket and (g.dtype != bucket[0].dtype or size + g.numel() * g.element_size() > BUCKET_BYTES):
                self._reduce_bucket(bucket)
                bucket, size = [], 0
            bucket.append(g)
            size += g.numel() * g.element_size()
        if bucket:
            self._reduce_bucket(bucket)

    def _reduce_bucket(self, bucket: list[Tensor]) -> None:
        flat = torch.cat([g.reshape(-1) for g in bucket])
        tdist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, t: Tensor) -> Tensor:
        """The mean of ``t`` over the ranks (a new tensor)."""
        out = t.detach().clone()
        tdist.all_reduce(out)
        return out.div_(self.world)

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (a decision that must be the same everywhere, e.g. one that reads the
        clock)."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device_of_backend())
        tdist.broadcast(t, 0)
        return bool(t.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        tdist.barrier()

    def device_of_backend(self) -> torch.device:
        """Where the backend's tensors live (NCCL: this rank's GPU)."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def setup(rank: int, world: int, address: str, port: int, device: str = "cpu", local_rank: int | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> Dist:
    """Join the process group of a run (``tcp://address:port``; NCCL on CUDA, gloo on the CPU). A rendezvous that
    does not form within ``timeout_s`` raises a one-line RuntimeError naming the address."""
    backend = "nccl" if device.startswith("cuda") else "gloo"
    local = rank if local_rank is None else local_rank
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    os.environ.setdefault("MASTER_ADDR", address)
    os.environ.setdefault("MASTER_PORT", str(port))
    try:
        tdist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=rank, world_size=world,
                                 timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as e:  # noqa: BLE001 - torch's store raises several kinds (DistStoreError, RuntimeError)
        raise RuntimeError(f"rank {rank} of {world}: the rendezvous at {address}:{port} did not form within "
                           f"{timeout_s:g} s ({type(e).__name__}); is every rank started and the address reachable "
                           f"from it?") from None
    return Dist(rank, world, local, backend)


def teardown() -> None:
    """Leave the process group (if joined)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


# ------------------------------------------------------------------------------------------------ the store
class QuietRunDir(RunDir):
    """A run directory as a rank other than 0 sees it: reads as usual, writes nothing (rank 0 writes)."""

    def write_json(self, name: str, obj: Any, durable: bool = False) -> None:  # noqa: D102
        return None

    def save_tensors(self, rel: str | Path, obj: Any) -> Path:  # noqa: D102
        return self.path / rel

    def save_state(self, name: str, state: dict[str, Tensor], iteration: int | None = None) -> Path:  # noqa: D102
        return self.state_file(name)

    def write_spec(self, obj: dict) -> None:  # noqa: D102
        return None

    def save_mask(self, mask: dict[str, Tensor]) -> None:  # noqa: D102
        return None

    def save_checkpoint(self, obj: dict) -> None:  # noqa: D102
        return None

    def drop_checkpoint(self) -> None:  # noqa: D102
        return None

    def write_done(self, obj: dict) -> None:  # noqa: D102
        return None

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:  # noqa: D102
        return None

    def write_telemetry(self, rows: list[dict[str, Any]]) -> None:  # noqa: D102
        return None


def run_dir(path: Path, dist: Dist | None) -> RunDir:
    """The run directory ``path`` as this rank sees it (writable on rank 0 and outside a distributed run)."""
    return RunDir(path) if dist is None or dist.main else QuietRunDir(path)


# ------------------------------------------------------------------------------------------------ evaluation
def shard_rows(total: int, rank: int, world: int) -> slice:
    """The contiguous rows of ``total`` that ``rank`` evaluates (the first ``total % world`` ranks take one
    more)."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


@torch.no_grad()
def evaluate_sharded(model: Any, x: Tensor, y: Tensor, precision: str, dist: Dist) -> dict[str, Tensor]:
    """:func:`~lth.engine.evaluate.evaluate_population` of every member on ``(x, y)``, each rank on its rows,
    the sums of losses and correct predictions added up across the ranks (accuracies exactly those of one
    process; losses up to summation order)."""
    from lth.engine.evaluate import evaluate_population

    rows = shard_rows(x.shape[0], dist.rank, dist.world)
    count = rows.stop - rows.start
    sums = torch.zeros(2, model.n, dtype=torch.float64)
    if count:
        part = evaluate_population(model, x[rows], y[rows], precision)
        sums[0], sums[1] = part["loss"] * count, part["accuracy"] * count
    sums = sums.to(dist.device_of_backend())
    tdist.all_reduce(sums)
    sums = sums.cpu()
    acc = sums[1] / x.shape[0]
    return {"loss": sums[0] / x.shape[0], "accuracy": acc, "error": 1.0 - acc}


# ------------------------------------------------------------------------------------------------ BatchNorm
def sync_batchnorm(model: torch.nn.Module, dist: Dist) -> bool:
    """Make every :class:`~lth.models.layers.PopBatchNorm2d` of ``model`` use the statistics of the global batch
    in training (sums of the rows and their squares, ``all_reduce``d with autograd, so the backward is the global
    batch's too); evaluation uses the running statistics as before. True where the model has any."""
    from lth.models.layers import PopBatchNorm2d

    found = False
    for m in model.modules():
        if isinstance(m, PopBatchNorm2d):
            m.forward = _SyncForward(m, dist)  # type: ignore[method-assign]
            found = True
    return found


class _SyncForward:
    """The forward of one PopBatchNorm2d with global-batch statistics in training mode."""

    def __init__(self, bn: Any, dist: Dist) -> None:
        self.bn, self.dist, self.plain = bn, dist, type(bn).forward

    def __call__(self, x: Tensor) -> Tensor:
        bn = self.bn
        if not bn.training:
            return self.plain(bn, x)
        nc = bn.n * bn.channels
        xf = x.float()
        dims = [d for d in range(xf.dim()) if d != 1]
        local = xf.numel() // nc
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims)]))
        count = local * self.dist.world
        mean = stats[:nc] / count
        var = (stats[nc:] / count - mean * mean).clamp_min(0)
        with torch.no_grad():
            m = bn.momentum
            bn.running_mean.view(-1).mul_(1 - m).add_(mean.detach(), alpha=m)
            bn.running_var.view(-1).mul_(1 - m).add_(var.detach() * count / max(1, count - 1), alpha=m)
        shape = [1, nc] + [1] * (xf.dim() - 2)
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + bn.eps)
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
        return out.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """The sum over the ranks, with autograd: the gradient of a sum that every rank used is the sum of the ranks'
    gradients (what ``torch.distributed.nn.functional.all_reduce`` did before its deprecation)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # noqa: D102
        out = x.clone()
        tdist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        out = grad.clone()
        tdist.all_reduce(out)
        return out


def reduce_loss(loss_sum: Tensor, dist: Dist | None) -> Tensor:
    """Each member's summed training loss since its last evaluation, averaged over the ranks."""
    return loss_sum if dist is None else dist.mean(loss_sum)


__all__ = ["BUCKET_BYTES", "DEFAULT_TIMEOUT_S", "Dist", "QuietRunDir", "evaluate_sharded", "reduce_loss", "run_dir",
           "setup", "shard_rows", "sync_batchnorm", "teardown"]
