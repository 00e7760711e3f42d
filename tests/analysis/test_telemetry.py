"""Weight telemetry: stored states with known answers, and the population form against a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lth.analysis import telemetry
from lth.analysis.telemetry import TELEMETRY_KEYS, Telemetry, position_names, sample_positions, weight_telemetry
from lth.models import build_model


def test_telemetry_known_values() -> None:
    init = {"w": torch.tensor([[1.0, -2.0], [3.0, 0.0]]), "b": torch.tensor([5.0])}
    mid = {"w": torch.tensor([[-1.0, -2.0], [3.0, 1.0]]), "b": torch.tensor([5.0])}
    final = {"w": torch.tensor([[-1.0, 2.0], [3.0, 1.0]]), "b": torch.tensor([0.0])}
    rows = telemetry([(100, final), (0, init), (50, mid)], ["w"])  # order by iteration, not by argument order
    assert [r["iteration"] for r in rows] == [0, 50, 100]
    first, middle, last = rows
    assert first["sign_changed_fraction"] == 0 and first["l2_from_init"] == 0
    assert middle["sign_changed_fraction"] == pytest.approx(1 / 3)  # of the 3 initially nonzero weights
    assert last["sign_changed_fraction"] == pytest.approx(2 / 3)
    assert middle["l2_from_init"] == pytest.approx(math.sqrt(4 + 1))
    assert middle["l2_from_final"] == pytest.approx(4.0)
    assert last["l2_from_final"] == 0 and last["cosine_to_final"] == pytest.approx(1.0)
    assert first["mean_abs_weight"] == pytest.approx(6 / 4)
    assert first["cosine_to_final"] == pytest.approx((-1 - 4 + 9) / (math.sqrt(14) * math.sqrt(15)))
    assert telemetry([], ["w"]) == []


# ---------------------------------------------------------------------------------------------- population form
def population_run(n: int = 3):
    """A population at init, now and at the end (perturbed copies), with an exact zero at init."""
    model = build_model("fc_20_10", n, (1, 4, 4), 10)
    for i in range(n):
        model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
    with torch.no_grad():
        model.layers[0].weight[:, 0, :3] = 0.0
    init = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        final = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in init.items()}
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        model.layers[1].weight[:, :2] = 0.0  # weights now exactly zero count as sign changes
    return model, init, final


def direct(cur: dict, ini: dict, fin: dict, layers: list[str], keep: dict | None = None) -> dict[str, float]:
    """The telemetry of one network's stored states, in numpy, weight by weight."""
    w = np.concatenate([cur[k].numpy().ravel() for k in layers]).astype(np.float64)
    w0 = np.concatenate([ini[k].numpy().ravel() for k in layers]).astype(np.float64)
    wf = np.concatenate([fin[k].numpy().ravel() for k in layers]).astype(np.float64)
    if keep is not None:
        kept = np.concatenate([keep[k].numpy().ravel() for k in layers])
        w, w0, wf = w[kept], w0[kept], wf[kept]
    alive = w0 != 0
    return {"mean_abs_weight": np.abs(w).mean(),
            "sign_changed_fraction": (np.sign(w[alive]) != np.sign(w0[alive])).mean(),
            "l2_from_init": np.linalg.norm(w - w0), "l2_from_final": np.linalg.norm(w - wf),
            "cosine_to_init": w @ w0 / (np.linalg.norm(w) * np.linalg.norm(w0)),
            "cosine_to_final": w @ wf / (np.linalg.norm(w) * np.linalg.norm(wf))}


def test_population_telemetry_equals_direct_computation_per_member() -> None:
    model, init, final = population_run()
    tel = Telemetry(model, init, final, count=10, seed=3)
    out = tel(model)
    assert set(out) == set(TELEMETRY_KEYS)
    assert all(isinstance(v, torch.Tensor) and v.shape[0] == 3 for v in out.values())
    assert out["sampled_weights"].shape == (3, 10)
    layers = model.prunable()
    for i in range(3):
        cur = model.member_state(i)
        ini, fin = {k: v[i] for k, v in init.items()}, {k: v[i] for k, v in final.items()}
        ref = direct(cur, ini, fin, layers)
        for key, value in ref.items():
            assert float(out[key][i]) == pytest.approx(value, rel=1e-5), key
        assert 0 < float(out["sign_changed_fraction"][i]) < 0.5
        # the stored-state telemetry says the same
        row = telemetry([(0, ini), (5, cur), (9, fin)], layers)[1]
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=1e-9), key
        # the sampled weights are the weights at the named positions
        for name, value in zip(tel.position_names, out["sampled_weights"][i].tolist(), strict=True):
            layer, idx = name[:-1].split("[")
            assert cur[layer][tuple(int(j) for j in idx.split(", "))].item() == value


def test_population_telemetry_with_mask() -> None:
    model, init, final = population_run(2)
    g = torch.Generator().manual_seed(5)
    mask = {k: torch.rand(v.shape, generator=g) < 0.5 for k, v in init.items() if k in model.prunable()}
    with torch.no_grad():
        for k, m in mask.items():
            dict(model.named_parameters())[k].mul_(m)
    out = Telemetry(model, init, final, mask=mask)(model)
    for i in range(2):
        ref = direct(model.member_state(i), {k: v[i] for k, v in init.items()}, {k: v[i] for k, v in final.items()},
                     model.prunable(), {k: m[i] for k, m in mask.items()})
        for key, value in ref.items():
            assert float(out[key][i]) == pytest.approx(value, rel=1e-5), key


def test_positions_fixed_by_seed() -> None:
    a, b, c = sample_positions([6, 10], 10, 1), sample_positions([6, 10], 10, 1), sample_positions([6, 10], 10, 2)
    assert torch.equal(a, b) and not torch.equal(a, c) and len(set(a.tolist())) == 10
    assert position_names(["a", "b"], [(2, 3), (10,)], torch.tensor([0, 5, 6, 15])) == ["a[0, 0]", "a[1, 2]", "b[0]",
                                                                                          "b[9]"]
    with pytest.raises(ValueError):
        sample_positions([3], 4)
    w = [torch.tensor([[1.0, 0.0, -2.0]])]
    out = weight_telemetry(w, [torch.tensor([[1.0, 3.0, 2.0]])])  # no final, no positions
    assert set(out) == {"mean_abs_weight", "sign_changed_fraction", "l2_from_init", "cosine_to_init"}
    assert float(out["sign_changed_fraction"][0]) == pytest.approx(2 / 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_population_telemetry_reads_nothing_back_on_cuda() -> None:
    model, init, final = population_run()
    model = model.cuda()
    mask = {k: torch.ones(v.shape, dtype=torch.bool) for k, v in init.items() if k in model.prunable()}
    tel = Telemetry(model, init, final, mask=mask)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = tel(model)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out["l2_from_init"].device.type == "cuda"
    cpu = Telemetry(model.cpu(), init, final, mask=mask)(model)
    for k, v in cpu.items():
        torch.testing.assert_close(out[k].cpu(), v, rtol=1e-5, atol=1e-6)
