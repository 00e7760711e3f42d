"""Top eigenvalues of the training-loss Hessian of every member of a population at once.

Frankle, Schwab & Morcos ("The early phase of neural network training", ICLR 2020, Section 2) read the early
phase through the Hessian's eigenspectrum (after Gur-Ari et al. 2018): at initialisation many large positive and
negative eigenvalues, then a few large eigenvalues and a bulk near zero. Here the top-k eigenvalues of each
member's Hessian come from Lanczos iteration with full reorthogonalisation on Hessian-vector products.

One HVP serves the whole population: the population's loss is the sum of its members' mean cross-entropies and
members share no parameter, so the population Hessian is block-diagonal with one block per member, and
``H_pop @ [v_1; ...; v_N] = [H_1 v_1; ...; H_N v_N]``. Each member runs its own Lanczos recurrence on its slice,
all N vectorised as ``[N, P]`` tensors (P = parameters per member).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_MODES = ("train", "eval")
WHICH = ("largest", "magnitude", "smallest")


@dataclass(frozen=True)
class HessianEigenvalues:
    """Top-k Hessian eigenvalues of each member and how they were computed."""

    values: Tensor  # [N, k]: member i's eigenvalues, ordered by ``which`` (largest / most negative first)
    bn_mode: str  # "train": batch statistics (the training loss as trained); "eval": running statistics
    which: str  # "largest": algebraically largest; "magnitude": largest |lambda| (sign kept); "smallest":
    # algebraically smallest, most negative first (the negative eigenvalues of Frankle et al. 2020, Sec. 2)
    iters: int  # Lanczos iterations (Krylov dimension)
    params: tuple[str, ...]  # the parameters the Hessian is taken over
    batch_size: int  # examples in the loss

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (member, rank): member, rank (0 = top), eigenvalue, and the settings above."""
        vals = self.values.detach().double().cpu().tolist()
        return [{"member": i, "rank": r, "eigenvalue": v, "bn_mode": self.bn_mode, "which": self.which,
                 "iters": self.iters, "batch_size": self.batch_size}
                for i, row in enumerate(vals) for r, v in enumerate(row)]


def population_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Sum over members of each member's mean cross-entropy on ``(x, y)``: ``x`` is ``[B, *example]`` (shared)
    or ``[N, B, *example]``, ``y`` ``[B]`` or ``[N, B]`` (the engine's training loss, without weight decay)."""
    if y.dim() == 1:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    logits = model(x)
    n, b = logits.shape[0], logits.shape[1]
    y = y.expand(n, b)
    return F.cross_entropy(logits.reshape(n * b, -1), y.reshape(-1), reduction="none").view(n, b).mean(1).sum()


def _bmv(q: Tensor, w: Tensor) -> Tensor:
    """``[N, m, P] x [N, P] -> [N, m]``."""
    return torch.einsum("nmp,np->nm", q, w)


def top_eigenvalues(model: nn.Module, x: Tensor, y: Tensor, k: int = 1, iters: int = 20, bn_mode: str = "train",
                    generator: torch.Generator | None = None, params: Sequence[str] | None = None,
                    mask: Mapping[str, Tensor] | None = None, which: str = "largest") -> HessianEigenvalues:
    """The top ``k`` eigenvalues of every member's Hessian of its mean cross-entropy on ``(x, y)``.

    ``model`` is a population (``PopModel``: every parameter ``[N, ...]``, forward ``[N, B, ...] -> [N, B, C]``);
    ``x``, ``y`` as in :func:`population_loss`. ``params`` names the parameters the Hessian is taken over (all
    trainable ones by default; ``model.prunable()`` for the weights only); the others are held fixed. ``mask``
    (``{name: bool [N, ...]}``) restricts each member's Hessian to its kept weights (the sub-network's Hessian).
    ``bn_mode`` runs BatchNorm on batch statistics ("train", the loss that training descends) or running
    statistics ("eval"); the model's mode and every buffer (running statistics) are restored afterwards.

    ``which``: ``largest`` (the top-k eigenvalues, largest first), ``magnitude`` (the k of largest |lambda|,
    signs kept) or ``smallest`` (the k most negative, most negative first: Frankle et al. 2020, Section 2,
    follow the negative eigenvalues too, large at initialisation and small after the early phase).

    Lanczos: ``iters`` steps from a random unit start vector per member (drawn from ``generator`` on the CPU),
    each ``w = H q_j`` orthogonalised twice against every earlier q (full reorthogonalisation), ``alpha_j =
    q_j . H q_j``, ``beta_j = |w|``; on breakdown (beta_j tiny: an invariant subspace was found) the recurrence
    restarts from a fresh random vector orthogonal to the earlier ones with beta_j = 0. The eigenvalues of the
    tridiagonal ``T`` are Ritz values; with ``iters`` = the number of parameters they are the Hessian's
    eigenvalues exactly (up to rounding); the extreme ones converge first. Memory: ``iters`` vectors of
    ``N x P`` in the parameters' dtype.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; allowed: {', '.join(BN_MODES)}")
    if which not in WHICH:
        raise ValueError(f"unknown eigenvalue order {which!r}; allowed: {', '.join(WHICH)}")
    named = dict(model.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
    unknown = [n for n in names if n not in named]
    if unknown or not names:
        raise ValueError(f"unknown or no parameters {unknown}; the model has {list(named)}")
    plist = [named[n] for n in names]
    n_members = plist[0].shape[0]
    sizes = [p[0].numel() for p in plist]
    total = sum(sizes)
    dtype, device = plist[0].dtype, plist[0].device

    keep = torch.ones(n_members, total, dtype=dtype, device=device)
    if mask is not None:
        parts = [mask[n].reshape(n_members, -1).to(device=device, dtype=dtype) if n in mask
                 else torch.ones(n_members, s, dtype=dtype, device=device) for n, s in zip(names, sizes, strict=True)]
        keep = torch.cat(parts, 1)
    dims = int(keep.sum(1).min())
    if not 1 <= k <= iters <= dims:
        raise ValueError(f"need 1 <= k ({k}) <= iters ({iters}) <= parameters per member ({dims})")

    was_training = model.training
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train(bn_mode == "train")
    try:
        with torch.enable_grad():
            loss = population_loss(model, x, y)
            grads = torch.autograd.grad(loss, plist, create_graph=True, allow_unused=True)

            def hvp(v: Tensor) -> Tensor:
                """``[N, P] -> [N, P]``: every member's Hessian times its slice of ``v`` (masked)."""
                chunks = v.split(sizes, 1)
                dot = sum(((g * c.view_as(p)).sum() for g, c, p in zip(grads, chunks, plist, strict=True)
                           if g is not None), torch.zeros((), dtype=dtype, device=device))
                hv = torch.autograd.grad(dot, plist, retain_graph=True, allow_unused=True)
                return torch.cat([(torch.zeros_like(p) if h is None else h).reshape(n_members, -1)
                                  for h, p in zip(hv, plist, strict=True)], 1) * keep

            g = torch.Generator().manual_seed(0) if generator is None else generator

            def fresh() -> Tensor:
                r = torch.randn(n_members, total, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
                return r * keep

            q_all = torch.zeros(n_members, iters, total, dtype=dtype, device=device)
            alpha = torch.zeros(n_members, iters, dtype=dtype, device=device)
            beta = torch.zeros(n_members, iters, dtype=dtype, device=device)
            q = fresh()
            q = q / q.norm(dim=1, keepdim=True)
            tol = torch.finfo(dtype).eps ** 0.5
            for j in range(iters):
                q_all[:, j] = q
                w = hvp(q).detach()
                hnorm = w.norm(dim=1)
                alpha[:, j] = (w * q).sum(1)
                basis = q_all[:, :j + 1]
                for _ in range(2):  # "twice is enough" (Parlett): full reorthogonalisation
                    w = w - torch.einsum("nm,nmp->np", _bmv(basis, w), basis)
                b = w.norm(dim=1)
                if j == iters - 1:
                    break
                broke = b <= tol * hnorm.clamp_min(torch.finfo(dtype).tiny)
                if bool(broke.any()):  # an invariant subspace: restart orthogonally, decoupling T
                    r = fresh()
                    for _ in range(2):
                        r = r - torch.einsum("nm,nmp->np", _bmv(basis, r), basis)
                    w = torch.where(broke[:, None], r, w)
                    b = torch.where(broke, torch.zeros_like(b), b)
                beta[:, j] = b
                q = w / w.norm(dim=1, keepdim=True)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])

    t = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
    ritz = torch.linalg.eigvalsh(t)  # ascending
    if which == "largest":
        top = ritz.flip(-1)[:, :k]
    elif which == "smallest":
        top = ritz[:, :k]
    else:
        order = ritz.abs().argsort(dim=1, descending=True)[:, :k]
        top = ritz.gather(1, order)
    batch = int(y.shape[-1])
    return HessianEigenvalues(top.detach(), bn_mode, which, iters, tuple(names), batch)


__all__ = ["BN_MODES", "WHICH", "HessianEigenvalues", "population_loss", "top_eigenvalues"]
