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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_MODES = ("train", "eval")
WHICH = ("largest", "magnitude", "smallest")


@dataclass(frozen=True)
class HessianEigenvalues:
    """Top-k Hessian eigenvalues of each member, their residuals and how they were computed."""

    values: Tensor  # [N, k]: member i's eigenvalues, ordered by ``which`` (largest / most negative first)
    bn_mode: str  # "train": batch statistics (the training loss as trained); "eval": running statistics
    which: str  # "largest": algebraically largest; "magnitude": largest |lambda| (sign kept); "smallest":
    # algebraically smallest, most negative first (the negative eigenvalues of Frankle et al. 2020, Sec. 2)
    iters: int  # Lanczos iterations run (Krylov dimension)
    params: tuple[str, ...]  # the parameters the Hessian is taken over
    batch_size: int  # examples in the loss
    residuals: Tensor | None = None  # [N, k]: ||H v - lambda v|| of each Ritz pair (v of unit norm)
    converged: Tensor | None = None  # [N, k] bool: residual <= tol * |lambda| (None: no tolerance asked for)
    tol: float | None = None  # the relative tolerance asked for (None: a fixed number of iterations)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (member, rank): member, rank (0 = top), eigenvalue, its residual ||Hv - lambda v||, whether
        it converged (to ``tol``; None without one), and the settings above."""
        vals = self.values.detach().double().cpu().tolist()
        res = (self.residuals.detach().double().cpu().tolist() if self.residuals is not None
               else [[None] * len(r) for r in vals])
        conv = (self.converged.cpu().tolist() if self.converged is not None else [[None] * len(r) for r in vals])
        return [{"member": i, "rank": r, "eigenvalue": v, "residual": res[i][r], "converged": conv[i][r],
                 "bn_mode": self.bn_mode, "which": self.which, "iters": self.iters, "batch_size": self.batch_size}
                for i, row in enumerate(vals) for r, v in enumerate(row)]


def converged_mask(values: Tensor, residuals: Tensor, tol: float) -> Tensor:
    """``[N, k]`` bools: residual <= ``tol`` * max(|lambda|, sqrt(eps) * the member's largest |lambda| among
    ``values``) (ARPACK's relative test; the floor keeps an eigenvalue of exactly 0 from never converging)."""
    eps = torch.finfo(values.dtype).eps if values.is_floating_point() else 2.0 ** -52
    scale = values.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny) * eps ** 0.5
    return residuals <= tol * torch.maximum(values.abs(), scale)


def _pick(ritz: Tensor, k: int, which: str) -> Tensor:
    """Indices ``[N, k]`` into ascending Ritz values of the k wanted by ``which``."""
    m = ritz.shape[1]
    if which == "largest":
        return torch.arange(m - 1, m - 1 - k, -1, device=ritz.device).expand(ritz.shape[0], k)
    if which == "smallest":
        return torch.arange(k, device=ritz.device).expand(ritz.shape[0], k)
    return ritz.abs().argsort(dim=1, descending=True)[:, :k]


def lanczos(hvp: Callable[[Tensor], Tensor], keep: Tensor, k: int, iters: int, which: str = "largest",
            generator: torch.Generator | None = None, tol: float | None = None,
            max_iters: int | None = None) -> tuple[Tensor, Tensor, int]:
    """Lanczos with full reorthogonalisation on N symmetric operators at once: ``hvp`` maps ``[N, P] -> [N, P]``
    (row i through operator i), ``keep`` ``[N, P]`` (0/1) restricts each to a subspace. Returns the ``k`` Ritz
    values each (``[N, k]``, ordered by ``which``), their unit Ritz vectors (``[N, k, P]``) and the iterations run.

    ``iters`` steps from a random unit start vector per member (drawn from ``generator`` on the CPU), each ``w =
    H q_j`` orthogonalised twice against every earlier q, ``alpha_j = q_j . H q_j``, ``beta_j = |w|``; on
    breakdown (beta_j tiny: an invariant subspace) the recurrence restarts from a fresh random vector orthogonal
    to the earlier ones with beta_j = 0. With ``tol``, it goes on past ``iters`` (up to ``max_iters``, default
    ``iters``; never past the subspace's dimension) until every wanted Ritz pair of every member has Lanczos's
    residual estimate ``|beta_j s_ji|`` (s the Ritz vector of T) within :func:`converged_mask`'s bound; with full
    reorthogonalisation that estimate is ``||H v - theta v||``."""
    n_members, total = keep.shape
    dtype, device = keep.dtype, keep.device
    dims = int(keep.sum(1).min())
    cap = iters if tol is None else max(iters, min(max_iters or iters, dims))
    g = torch.Generator().manual_seed(0) if generator is None else generator

    def fresh() -> Tensor:
        r = torch.randn(n_members, total, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
        return r * keep

    qs: list[Tensor] = []
    alpha: list[Tensor] = []
    beta: list[Tensor] = []
    q = fresh()
    q = q / q.norm(dim=1, keepdim=True)
    eps_tol = torch.finfo(dtype).eps ** 0.5
    for j in range(cap):
        qs.append(q)
        w = hvp(q).detach()
        hnorm = w.norm(dim=1)
        alpha.append((w * q).sum(1))
        basis = torch.stack(qs, 1)
        for _ in range(2):  # "twice is enough" (Parlett): full reorthogonalisation
            w = w - torch.einsum("nm,nmp->np", _bmv(basis, w), basis)
        b = w.norm(dim=1)
        if j + 1 >= iters and tol is not None:
            t = _tridiagonal(alpha, beta)
            ritz, s = torch.linalg.eigh(t)
            idx = _pick(ritz, k, which)
            est = (b[:, None] * s[:, -1, :].gather(1, idx)).abs()
            if bool(converged_mask(ritz.gather(1, idx), est, tol).all()):
                break
        if j == cap - 1:
            break
        broke = b <= eps_tol * hnorm.clamp_min(torch.finfo(dtype).tiny)
        if bool(broke.any()):  # an invariant subspace: restart orthogonally, decoupling T
            r = fresh()
            for _ in range(2):
                r = r - torch.einsum("nm,nmp->np", _bmv(basis, r), basis)
            w = torch.where(broke[:, None], r, w)
            b = torch.where(broke, torch.zeros_like(b), b)
        beta.append(b)
        q = w / w.norm(dim=1, keepdim=True)
    m = len(qs)
    ritz, s = torch.linalg.eigh(_tridiagonal(alpha, beta[:m - 1]))  # ascending
    idx = _pick(ritz, k, which)
    vectors = torch.einsum("nmp,nmk->nkp", torch.stack(qs, 1), s.gather(2, idx[:, None, :].expand(-1, m, -1)))
    vectors = vectors / vectors.norm(dim=2, keepdim=True)
    return ritz.gather(1, idx), vectors, m


def _tridiagonal(alpha: list[Tensor], beta: list[Tensor]) -> Tensor:
    """``[N, m, m]``: the Lanczos matrix T from its diagonal (m entries) and off-diagonal (the first m-1 of
    ``beta``)."""
    a = torch.stack(alpha, 1)
    t = torch.diag_embed(a)
    if len(alpha) > 1:
        off = torch.stack(beta[:len(alpha) - 1], 1)
        t = t + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    return t


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
                    mask: Mapping[str, Tensor] | None = None, which: str = "largest", tol: float | None = None,
                    max_iters: int | None = None) -> HessianEigenvalues:
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
    eigenvalues exactly (up to rounding); the extreme ones converge first, the bulk (``which="smallest"`` on a
    trained network: eigenvalues near 0) much later. With ``tol`` the iteration goes on past ``iters`` until every
    wanted eigenvalue's residual is within ``tol * |lambda|`` (:func:`converged_mask`), up to ``max_iters``
    (:func:`lanczos`). Every eigenvalue's residual ``||H v - lambda v||`` (v its unit Ritz vector, one more HVP per
    rank) is returned: |lambda - (an eigenvalue of H)| <= that residual. Memory: one vector of ``N x P`` in the
    parameters' dtype per iteration run.
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

            values, vectors, used = lanczos(hvp, keep, k, iters, which, generator, tol, max_iters)
            residuals = torch.stack([(hvp(vectors[:, r]).detach() - values[:, r, None] * vectors[:, r]).norm(dim=1)
                                     for r in range(k)], 1)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])

    batch = int(y.shape[-1])
    conv = None if tol is None else converged_mask(values, residuals, tol)
    return HessianEigenvalues(values.detach(), bn_mode, which, used, tuple(names), batch, residuals.detach(), conv,
                              tol)


__all__ = ["BN_MODES", "WHICH", "HessianEigenvalues", "converged_mask", "lanczos", "population_loss",
           "top_eigenvalues"]
