"""The training step of a population: batch gather and augmentation, forward, backward, optimiser, masks.

The step reads its position in the epoch and its iteration from device tensors and never reads a value back,
so on CUDA it is captured once as a CUDA graph (after three eager warm-up steps on a side stream) and replayed;
on the CPU it runs eagerly, with a hand-written backward for the MLPs (they offer ``loss_and_grads``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lth.engine.population import Population


class Stepper:
    """Advances every member of a population by one step: eagerly, or by replaying a captured CUDA graph."""

    def __init__(self, pop: Population) -> None:
        self.pop = pop
        opts, device = pop.opts, pop.device
        self.bf16 = pop.spec.train.precision == "bf16"
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        else:  # denormal floats (Adam's second moments of tiny gradients) make x86 arithmetic 100x slower
            torch.set_flush_denormal(True)
        # A model may offer a hand-written backward (the MLPs do): on a CPU it beats autograd's overhead; on a GPU
        # with ``compile`` it is compiled as one function with the forward (pointwise work fused, compiled once per
        # process and shape). ``mlp_backward`` forces one or the other.
        if opts.mlp_backward not in ("auto", "manual", "autograd"):
            raise ValueError(f"mlp_backward: bad value {opts.mlp_backward!r}; allowed: auto, manual, autograd")
        offers = not self.bf16 and hasattr(pop.model, "loss_and_grads")
        cpu = device.type == "cpu"
        self.manual = offers and (opts.mlp_backward == "manual" or (
            opts.mlp_backward == "auto" and (cpu and not opts.compile or not cpu and opts.compile)))
        self.compiled_manual = self.manual and opts.compile
        self.forward = torch.compile(pop.model) if opts.compile and not self.manual else pop.model  # at warm-up
        # a distributed run steps eagerly: its gradients are all-reduced between the backward and the optimiser
        self.use_graph = device.type == "cuda" and opts.cuda_graph == "auto" and pop.dist is None
        # ... while the backward runs (DDP's overlap) where autograd computes them; after the hand-written one
        self.reducer = pop.dist.reducer(pop.params) if pop.dist is not None else None
        self.pos_t = torch.zeros(1, dtype=torch.long, device=device)
        self.it_t = torch.zeros(1, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0

    def step(self, pos: Tensor | int, it: Tensor | int) -> None:
        """One training step of every member (capturable: no host reads, static shapes)."""
        p = self.pop
        p.opt.set_lr(it)
        xb, yb = p.batches.batch(p.x_train, p.y_train, pos)
        if self.reducer is not None:  # one run over several processes: the mean gradient of the global batch
            self.reducer.begin()
        if self.manual:
            per_member = p.model.loss_and_grads(xb, yb, compiled=self.compiled_manual)
        else:
            with self.autocast:
                logits = self.forward(xb)
            per_member = F.cross_entropy(logits.float().reshape(p.n * p.bs, -1), yb.reshape(-1),
                                         reduction="none").view(p.n, p.bs).mean(1)
            per_member.sum().backward()
        grads = [q.grad for q in p.params]
        if self.reducer is not None:
            self.reducer.finish()
        with torch.no_grad():  # masks are enforced inside the step, on the weights after the update. SGD and Adam
            # update each element from its own gradient and state only, and a pruned weight is zeroed again after
            # it, so its gradient never reaches a kept weight: only telemetry's gradient norm reads the masked
            # gradient (one pass over every gradient saved per step otherwise; kept weights are bit-identical)
            if p.masked and p.grad_sq is not None:
                torch._foreach_mul_([p.pdict[k].grad for k in p.masked], p.masks)
            p.opt.step(grads)
            if p.masked:
                torch._foreach_mul_(p.masked_params, p.masks)
            if p.grad_sq is not None:  # telemetry: each member's squared gradient norm (the masked gradient)
                p.grad_sq.copy_(torch.stack([g.reshape(p.n, -1).float().pow(2).sum(1) for g in grads]).sum(0))
        p.loss_sum.add_(per_member.detach())
        if isinstance(pos, Tensor):
            pos.add_(1)
            it.add_(1)

    def new_epoch(self, t: int) -> None:
        """Draw the epoch's order and augmentation buffers; point the step at position ``t`` in it."""
        p = self.pop
        p.batches.fill(t // p.spe, p.order_seeds, p.aug_seeds, start=t % p.spe)
        self.pos_t.fill_(t % p.spe)

    def _clear_grads(self) -> None:
        for q in self.pop.params:
            q.grad = None

    def __call__(self, t: int) -> None:
        """Step from iteration ``t`` to ``t + 1``: eager, or (CUDA) three eager warm-up steps, one capture,
        then replays."""
        prepare = getattr(self.pop.batches, "prepare", None)
        if prepare is not None:  # data read from disk: the next batch into the step's static buffers
            prepare(t % self.pop.spe)
        if not self.use_graph:
            self.step(t % self.pop.spe, t)
            self._clear_grads()
            return
        if self.graph is None and self.eager_steps >= 3:
            self.it_t.fill_(t)
            self._clear_grads()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step(self.pos_t, self.it_t)
        if self.graph is None:
            self.it_t.fill_(t)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step(self.pos_t, self.it_t)
            torch.cuda.current_stream().wait_stream(side)
            self.eager_steps += 1
            self._clear_grads()
        else:
            self.graph.replay()
