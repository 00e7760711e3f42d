"""One run over several processes (torch.distributed): what the engine does differently on each rank.

A distributed run trains the same population on ``W`` processes (ranks). Every rank builds the same wide model
from the same seeds, draws the same global data order and takes its ``B/W`` rows of each global batch
(:class:`~lth.engine.batches.EpochBatches` ``shard``). After each backward the gradients are averaged across the
ranks (:class:`GradReducer`: ``all_reduce`` of flat buckets, started while the backward runs, or after a
hand-written one), so every rank applies the same update and the
same mask, and its weights stay equal to every other rank's. What the engine reads back is reduced the same way:
the training loss (:meth:`Dist.mean`), the evaluation (sharded over the ranks and summed:
:func:`evaluate_sharded`), the decision to write a checkpoint (rank 0's, :meth:`Dist.agree`). Only rank 0 writes
the store (:class:`QuietRunDir` on the others), so every file exists once.

Why not ``DistributedDataParallel``: the CPU's MLPs set their gradients with a hand-written backward
(``loss_and_grads``), which never runs autograd's hooks DDP reduces in; the population's optimiser steps stacked
tensors of its own. :class:`GradReducer` does what DDP's reducer does for autograd's backward (buckets of about
25 MB, DDP's default, in the backward's order, each reduced as soon as its gradients are there, overlapping the
communication with the rest of the backward); after the hand-written backward the same buckets are reduced at
once. bench/ddp_overhead.py measures the cost at world size 1.

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

    def reducer(self, params: list[Tensor], bucket_bytes: int = BUCKET_BYTES) -> GradReducer:
        """A :class:`GradReducer` over ``params``: their gradients averaged while the backward still runs."""
        return GradReducer(self, params, bucket_bytes)

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


class GradReducer:
    """DistributedDataParallel's overlap of communication with the backward, for lth's own step.

    The parameters are split once into buckets of about ``bucket_bytes`` in reverse order (the order the backward
    produces their gradients). A hook on each parameter (``register_post_accumulate_grad_hook``) counts the
    gradients that arrived; once every gradient of a bucket is there, the bucket's ``all_reduce`` starts
    asynchronously while the backward goes on with the earlier layers. Buckets start strictly in order (as DDP's
    do), so every rank issues the same collectives in the same sequence. :meth:`finish` starts the buckets the
    hooks did not (a parameter without a gradient; a hand-written backward, which runs no hooks), waits for all,
    and writes each mean back into its gradient. Each element's mean is the same sum over the ranks as
    reducing every bucket after the backward computes, so the result does not depend on the overlap."""

    def __init__(self, dist: Dist, params: list[Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
        self.dist, self.params = dist, list(params)
        self.buckets: list[list[int]] = []
        size = 0
        for i in reversed(range(len(self.params))):
            q = self.params[i]
            b = self.buckets[-1] if self.buckets else None
            if b is None or q.dtype != self.params[b[0]].dtype or size + q.numel() * q.element_size() > bucket_bytes:
                self.buckets.append([])
                size = 0
            self.buckets[-1].append(i)
            size += q.numel() * q.element_size()
        self.bucket_of = {i: k for k, b in enumerate(self.buckets) for i in b}
        self.active = False
        self.arrived = [0] * len(self.buckets)
        self.next = 0  # the first bucket not started
        self.flying: list[tuple[list[Tensor], Tensor, Any]] = []
        self.handles = [q.register_post_accumulate_grad_hook(self._arrived(i)) for i, q in enumerate(self.params)
                        if q.requires_grad]

    def _arrived(self, i: int) -> Any:
        def hook(_: Tensor) -> None:
            if self.active:
                k = self.bucket_of[i]
                self.arrived[k] += 1
                while self.next < len(self.buckets) and self.arrived[self.next] == len(self.buckets[self.next]):
                    self._start(self.next)
        return hook

    def _start(self, k: int) -> None:
        grads = [g for g in (self.params[i].grad for i in self.buckets[k]) if g is not None]
        self.next = k + 1
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            self.flying.append((grads, flat, tdist.all_reduce(flat, async_op=True)))

    def begin(self) -> None:
        """Before the backward: gradients arriving from now on are reduced as their buckets fill."""
        self.active, self.arrived, self.next, self.flying = True, [0] * len(self.buckets), 0, []

    def finish(self) -> None:
        """After the backward: start what is left, wait, replace every gradient with its mean over the ranks."""
        self.active = False
        while self.next < len(self.buckets):
            self._start(self.next)
        for grads, flat, work in self.flying:
            work.wait()
            flat.div_(self.dist.world)
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
        self.arrived, self.next, self.flying = [0] * len(self.buckets), 0, []

    def close(self) -> None:
        """Remove the hooks."""
        for h in self.handles:
            h.remove()
        self.handles = []


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


__all__ = ["BUCKET_BYTES", "DEFAULT_TIMEOUT_S", "Dist", "GradReducer", "QuietRunDir", "evaluate_sharded",
           "reduce_loss", "run_dir", "setup", "shard_rows", "sync_batchnorm", "teardown"]
