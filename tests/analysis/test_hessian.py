"""Population Lanczos Hessian eigenvalues against a dense eigendecomposition of each member's Hessian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lth.analysis.hessian import population_loss, top_eigenvalues
from lth.models import build_model
from lth.models.base import PopModel
from lth.models.layers import PopBatchNorm2d, PopConv2d, PopLinear, to_conv, to_fc


class TinyBN(PopModel):
    """conv 2x2 (1 -> 2 channels) -> BatchNorm -> ReLU -> linear 8 -> 3, on 1x3x3 images: 41 parameters."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.conv = PopConv2d(n, 1, 2, 2)
        self.bn = PopBatchNorm2d(n, 2)
        self.fc = PopLinear(n, 8, 3)
        self.output_layer = "fc.weight"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] != self.n:
            x = x.expand(self.n, *x.shape[1:])
        return self.fc(to_fc(F.relu(self.bn(self.conv(to_conv(x)))), self.n))


def dense_top(model: PopModel, single: PopModel, i: int, x: Tensor, y: Tensor, names: list[str], train: bool,
              keep: Tensor | None = None) -> Tensor:
    """Member ``i``'s Hessian eigenvalues (descending), dense, of a one-network copy.

    torch.autograd.functional.hessian (reverse over reverse, plain autograd): torch.func.hessian (and
    jacrev(jacrev)) give a wrong, asymmetric block between BatchNorm's weight and the layers before it in train
    mode on torch 2.14 (checked against finite differences of the gradient); on the MLP the two agree (tested)."""
    named = dict(model.named_parameters())
    fixed = {n: p[i:i + 1].detach() for n, p in named.items() if n not in names}
    shapes = [named[n][i:i + 1].shape for n in names]
    flat0 = torch.cat([named[n][i].detach().reshape(-1) for n in names])
    single.train(train)

    def loss(flat: Tensor) -> Tensor:
        parts = dict(zip(names, (c.view(s) for c, s in zip(flat.split([s.numel() for s in shapes]), shapes,
                                                           strict=True)), strict=True))
        # running statistics are not passed in train mode: the batch statistics are used and nothing is updated
        bufs = {} if train else {n: b[i:i + 1].clone() for n, b in model.named_buffers()}
        logits = torch.func.functional_call(single, {**fixed, **parts, **bufs}, (x.unsqueeze(0),))
        return F.cross_entropy(logits[0], y)

    h = torch.autograd.functional.hessian(loss, flat0)
    if keep is not None:
        h = h[keep][:, keep]
    return torch.linalg.eigvalsh(h).flip(0)


def data(shape: tuple[int, ...], b: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, *shape, generator=g, dtype=torch.float64), torch.randint(3, (b,), generator=g)


def fc_population(n: int = 3) -> PopModel:
    model = build_model("fc_5", n, (1, 2, 2), 3).double()
    for i in range(n):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(10 + i))
    return model


def test_fc_equals_dense_eigendecomposition_for_every_member() -> None:
    model = fc_population()
    x, y = data((1, 2, 2))
    names = [n for n, _ in model.named_parameters()]
    total = model.num_params()
    assert total == 43
    res = top_eigenvalues(model, x, y, k=5, iters=total, generator=torch.Generator().manual_seed(1))
    assert res.values.shape == (3, 5) and res.bn_mode == "train" and res.params == tuple(names)
    single = build_model("fc_5", 1, (1, 2, 2), 3).double()
    for i in range(3):
        ref = dense_top(model, single, i, x, y, names, True)
        torch.testing.assert_close(res.values[i], ref[:5], rtol=1e-8, atol=1e-10)
    # torch.func.hessian agrees where it works
    named = dict(model.named_parameters())
    flat = torch.cat([named[n][0].detach().reshape(-1) for n in names])
    shapes = [named[n][:1].shape for n in names]

    def loss0(f: Tensor) -> Tensor:
        parts = {n: c.view(s) for n, c, s in zip(names, f.split([s.numel() for s in shapes]), shapes, strict=True)}
        return F.cross_entropy(torch.func.functional_call(single, parts, (x.unsqueeze(0),))[0], y)

    func_eigs = torch.linalg.eigvalsh(torch.func.hessian(loss0)(flat)).flip(0)
    torch.testing.assert_close(res.values[0], func_eigs[:5], rtol=1e-8, atol=1e-10)
    # members differ, so the per-member slices really are separate
    assert (res.values[0] - res.values[1]).abs().max() > 1e-3
    # fewer iterations: the extreme eigenvalue has converged long before the Krylov space is full
    short = top_eigenvalues(model, x, y, k=1, iters=20)
    for i in range(3):
        assert float(short.values[i, 0]) == pytest.approx(float(res.values[i, 0]), rel=1e-6)
    # magnitude order keeps the sign and sorts by |lambda|
    mag = top_eigenvalues(model, x, y, k=3, iters=total, which="magnitude")
    for i in range(3):
        ref = dense_top(model, single, i, x, y, names, True)
        torch.testing.assert_close(mag.values[i], ref[ref.abs().argsort(descending=True)][:3], rtol=1e-8,
                                   atol=1e-10)
    # the most negative eigenvalues (Frankle et al. 2020, Sec. 2), most negative first
    low = top_eigenvalues(model, x, y, k=2, iters=total, which="smallest")
    assert low.which == "smallest"
    for i in range(3):
        ref = dense_top(model, single, i, x, y, names, True)
        assert float(ref[-1]) < 0  # the case has negative curvature to find
        torch.testing.assert_close(low.values[i], ref.flip(0)[:2], rtol=1e-8, atol=1e-10)


def test_per_member_inputs_and_masked_subnetwork() -> None:
    model = fc_population(2)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 1, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randint(3, (2, 16), generator=g)
    mask = {"layers.0.weight": torch.ones(2, 5, 4, dtype=torch.bool)}
    for i in range(2):  # 8 of 20 first-layer weights pruned per member
        mask["layers.0.weight"][i].view(-1)[torch.randperm(20, generator=g)[:8]] = False
    names = [n for n, _ in model.named_parameters()]
    res = top_eigenvalues(model, x, y, k=4, iters=35, mask=mask)
    single = build_model("fc_5", 1, (1, 2, 2), 3).double()
    for i in range(2):
        keep = torch.cat([mask["layers.0.weight"][i].reshape(-1), torch.ones(23, dtype=torch.bool)])
        ref = dense_top(model, single, i, x[i], y[i], names, True, keep)
        torch.testing.assert_close(res.values[i], ref[:4], rtol=1e-8, atol=1e-10)
    # the Hessian over a subset of parameters (weights only)
    w = model.prunable()
    res = top_eigenvalues(model, x, y, k=2, iters=35, params=w)
    ref = dense_top(model, single, 1, x[1], y[1], w, True)
    torch.testing.assert_close(res.values[1], ref[:2], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_batchnorm_modes_equal_dense_and_leave_the_model_as_it_was(bn_mode: str) -> None:
    torch.manual_seed(0)
    model = TinyBN(2).double()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
        model.bn.running_var.fill_(2.0)
        model.bn.weight.add_(torch.tensor([[0.2, -0.3], [0.1, 0.4]], dtype=torch.float64))
    model.eval()
    before = {n: b.clone() for n, b in model.named_buffers()}
    x, y = data((1, 3, 3), b=12, seed=3)
    names = [n for n, _ in model.named_parameters()]
    res = top_eigenvalues(model, x, y, k=3, iters=41, bn_mode=bn_mode)
    assert res.bn_mode == bn_mode and res.rows()[0]["bn_mode"] == bn_mode
    assert not model.training and all(torch.equal(b, before[n]) for n, b in model.named_buffers())
    single = TinyBN(1).double()
    for i in range(2):
        ref = dense_top(model, single, i, x, y, names, bn_mode == "train")
        torch.testing.assert_close(res.values[i], ref[:3], rtol=1e-7, atol=1e-9)
    other = top_eigenvalues(model, x, y, k=3, iters=41, bn_mode="eval" if bn_mode == "train" else "train")
    assert (other.values - res.values).abs().max() > 1e-3  # the mode matters


def test_deterministic_and_errors() -> None:
    model = fc_population(2)
    x, y = data((1, 2, 2))
    a = top_eigenvalues(model, x, y, k=2, iters=10, generator=torch.Generator().manual_seed(5))
    b = top_eigenvalues(model, x, y, k=2, iters=10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.values, b.values)
    assert all(p.grad is None for p in model.parameters())
    assert float(population_loss(model, x, y).detach()) > 0
    with pytest.raises(ValueError, match="allowed: train, eval"):
        top_eigenvalues(model, x, y, bn_mode="frozen")
    with pytest.raises(ValueError, match="iters"):
        top_eigenvalues(model, x, y, k=3, iters=2)
    with pytest.raises(ValueError, match="iters"):
        top_eigenvalues(model, x, y, k=1, iters=44)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu() -> None:
    model = fc_population()
    x, y = data((1, 2, 2))
    cpu = top_eigenvalues(model, x, y, k=3, iters=43, generator=torch.Generator().manual_seed(2))
    gpu = top_eigenvalues(model.cuda(), x.cuda(), y.cuda(), k=3, iters=43, generator=torch.Generator().manual_seed(2))
    assert gpu.values.device.type == "cuda"
    torch.testing.assert_close(gpu.values.cpu(), cpu.values, rtol=1e-8, atol=1e-10)


def quadratic(n: int, spectrum: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` symmetric matrices ``Q diag(spectrum) Q^T`` (one random orthogonal Q each): the Hessians of the
    quadratics ``x^T H x / 2``, with a known spectrum. Returns (H [n, P, P], Q [n, P, P])."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, len(spectrum), len(spectrum), generator=g, dtype=torch.float64))
    return q @ torch.diag_embed(spectrum.expand(n, -1)) @ q.transpose(1, 2), q


# a few large eigenvalues, a bulk near 0 and small negative ones: the shape Frankle et al. 2020 (Sec. 2) describe
SPECTRUM = torch.cat([torch.tensor([50.0, 30.0, 20.0], dtype=torch.float64),
                      -0.5 * torch.linspace(0, 1, 100, dtype=torch.float64) ** 3,
                      0.3 * torch.linspace(0, 1, 197, dtype=torch.float64) ** 3])


def test_lanczos_on_a_quadratic_reports_residuals_and_iterates_until_converged() -> None:
    from lth.analysis.hessian import converged_mask, lanczos

    h, _ = quadratic(2, SPECTRUM)
    keep = torch.ones(2, len(SPECTRUM), dtype=torch.float64)

    def hvp(v: Tensor) -> Tensor:
        return torch.einsum("npq,nq->np", h, v)

    want = SPECTRUM.sort().values[:2]  # -0.5, -0.485: the most negative, most negative first, at the bulk's edge
    short, vec, used = lanczos(hvp, keep, 2, 20, "smallest", torch.Generator().manual_seed(1))
    assert used == 20
    res = (hvp(vec[:, 0]) - short[:, 0, None] * vec[:, 0]).norm(dim=1)
    assert float(((short - want) / want).abs().max()) > 1e-2  # 20 iterations: the bulk's edge is not resolved
    res1 = (hvp(vec[:, 1]) - short[:, 1, None] * vec[:, 1]).norm(dim=1)
    assert float(res1.min()) > 1e-3 and not bool(converged_mask(short, torch.stack([res, res1], 1), 1e-6).all())
    long, vec, used = lanczos(hvp, keep, 2, 20, "smallest", torch.Generator().manual_seed(1), tol=1e-8,
                              max_iters=300)
    assert 20 < used < 300  # went on past 20, stopped when converged
    true = torch.stack([(hvp(vec[:, r]) - long[:, r, None] * vec[:, r]).norm(dim=1) for r in range(2)], 1)
    assert bool(converged_mask(long, true, 1e-7).all())
    torch.testing.assert_close(long, want.expand(2, 2), rtol=1e-7, atol=1e-9)
    # without a tolerance the iteration count is exactly iters; the largest converge first
    top, _, used = lanczos(hvp, keep, 3, 20, "largest", torch.Generator().manual_seed(1))
    assert used == 20
    torch.testing.assert_close(top, SPECTRUM[:3].expand(2, 3), rtol=1e-6, atol=0)
    # the cap holds when the tolerance cannot be met
    _, _, used = lanczos(hvp, keep, 2, 20, "smallest", torch.Generator().manual_seed(1), tol=1e-14, max_iters=40)
    assert used == 40


def test_top_eigenvalues_reports_each_residual_and_whether_it_converged() -> None:
    model = fc_population(2)
    x, y = data((1, 2, 2))
    full = top_eigenvalues(model, x, y, k=2, iters=43, which="smallest")
    assert full.residuals is not None and float(full.residuals.max()) < 1e-8 and full.converged is None
    short = top_eigenvalues(model, x, y, k=2, iters=4, which="smallest")
    assert float(short.residuals.max()) > 1e-4  # 4 of 43 dimensions: not converged, and the residual says so
    conv = top_eigenvalues(model, x, y, k=2, iters=4, which="smallest", tol=1e-6, max_iters=43)
    assert conv.iters > 4 and bool(conv.converged.all()) and float((conv.residuals / conv.values.abs()).max()) <= 1e-6
    torch.testing.assert_close(conv.values, full.values, rtol=1e-6, atol=1e-9)
    row = conv.rows()[0]
    assert row["residual"] == pytest.approx(float(conv.residuals[0, 0])) and row["converged"] is True
