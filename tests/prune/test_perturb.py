"""Perturbations of early-phase states: each one's defining property, masks, determinism and the registry."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lth.errors import UserError
from lth.models import build_model
from lth.models.base import INITIALIZERS, init_weight
from lth.prune.perturb import (
    PERTURBATIONS,
    add_noise,
    effective_std,
    head_names,
    init_std,
    perturb,
    replace_head,
    shuffle,
    swap_signs,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = gen(seed)
    return {"fc.weight": torch.randn(20, 30, generator=g), "conv.weight": torch.randn(6, 4, 3, 3, generator=g),
            "fc.bias": torch.randn(20, generator=g)}


PRUNABLE = ["fc.weight", "conv.weight"]


def toy_mask(seed: int = 1) -> dict[str, torch.Tensor]:
    g = gen(seed)
    return {k: torch.rand(s, generator=g) < 0.4 for k, s in (("fc.weight", (20, 30)), ("conv.weight", (6, 4, 3, 3)))}


def masked(state: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v * mask[k] if k in mask else v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- signs
def test_swap_signs_hand_case() -> None:
    mag = {"w": torch.tensor([[1.0, -2.0], [3.0, -4.0]]), "b": torch.tensor([1.0])}
    sgn = {"w": torch.tensor([[-5.0, -6.0], [7.0, 0.0]]), "b": torch.tensor([9.0])}
    out = swap_signs(mag, sgn, ["w"])
    assert torch.equal(out["w"], torch.tensor([[-1.0, -2.0], [3.0, 0.0]]))
    assert torch.equal(out["b"], mag["b"])
    assert torch.equal(swap_signs(mag, mag, ["w"])["w"], mag["w"])  # the two "same step" combinations
    assert torch.equal(mag["w"], torch.tensor([[1.0, -2.0], [3.0, -4.0]]))  # input untouched


def test_swap_signs_takes_each_from_its_state() -> None:
    s0, sk = toy_state(0), toy_state(5)
    out = swap_signs(s0, sk, PRUNABLE)  # magnitudes of step 0, signs of step k
    for k in PRUNABLE:
        assert torch.equal(out[k].abs(), s0[k].abs())
        assert torch.equal(torch.sign(out[k]), torch.sign(sk[k]))
    # the registry forms keep the start state's other tensors
    a = perturb("signs_from", sk, PRUNABLE, gen(), source=s0)  # magnitudes k, signs 0
    b = perturb("magnitudes_from", sk, PRUNABLE, gen(), source=s0)  # magnitudes 0, signs k
    for k in PRUNABLE:
        assert torch.equal(a[k], swap_signs(sk, s0, PRUNABLE)[k])
        assert torch.equal(b[k], out[k])
    assert torch.equal(a["fc.bias"], sk["fc.bias"]) and torch.equal(b["fc.bias"], sk["fc.bias"])


# ---------------------------------------------------------------------------------------------- shuffles
def test_shuffle_layer_keeps_multiset_and_moves_weights() -> None:
    s = toy_state()
    out = shuffle(s, PRUNABLE, gen(), within="layer")
    for k in PRUNABLE:
        assert torch.equal(out[k].flatten().sort().values, s[k].flatten().sort().values)
        assert (out[k] != s[k]).float().mean() > 0.8
    assert torch.equal(out["fc.bias"], s["fc.bias"])
    # not within units: some row's multiset changes
    assert not torch.equal(out["fc.weight"].sort(1).values, s["fc.weight"].sort(1).values)


def test_shuffle_unit_keeps_each_row_and_filter() -> None:
    s = toy_state()
    out = shuffle(s, PRUNABLE, gen(), within="unit")
    for k in PRUNABLE:
        a, b = out[k].flatten(1), s[k].flatten(1)
        assert torch.equal(a.sort(1).values, b.sort(1).values)  # each output neuron / filter keeps its values
        assert (a != b).float().mean() > 0.7


@pytest.mark.parametrize("within", ["layer", "unit"])
def test_shuffle_same_sign_keeps_every_sign(within: str) -> None:
    s = toy_state()
    s["fc.weight"][0, :5] = 0.0  # zeros stay zeros
    out = shuffle(s, PRUNABLE, gen(), within=within, same_sign=True)
    for k in PRUNABLE:
        assert torch.equal(torch.sign(out[k]), torch.sign(s[k]))
        a, b = out[k].flatten(1 if within == "unit" else 0), s[k].flatten(1 if within == "unit" else 0)
        assert torch.equal(a.sort(-1).values, b.sort(-1).values)
        assert (a != b).float().mean() > 0.5


@pytest.mark.parametrize("within,same_sign", [("layer", False), ("unit", False), ("unit", True)])
def test_shuffle_with_mask_moves_only_kept_weights(within: str, same_sign: bool) -> None:
    mask = toy_mask()
    s = masked(toy_state(), mask)
    out = shuffle(s, PRUNABLE, gen(), within=within, same_sign=same_sign, mask=mask)
    for k in PRUNABLE:
        assert torch.all(out[k][~mask[k]] == 0)
        assert torch.all(out[k][mask[k]] != 0)  # no zero moved into a kept position
        rows = out[k].flatten(1) if within == "unit" else out[k].reshape(1, -1)
        ref = s[k].flatten(1) if within == "unit" else s[k].reshape(1, -1)
        assert torch.equal(rows.sort(1).values, ref.sort(1).values)


@pytest.mark.parametrize("same_sign", [False, True])
def test_shuffle_network_pools_all_prunable_layers(same_sign: bool) -> None:
    # Frankle et al. 2020, Sec. 4, Fig. 5: permuted within a structural element, here the whole network: the
    # multiset of all kept prunable weights is kept, but weights cross layers (each layer's multiset changes).
    mask = toy_mask()
    s = masked(toy_state(), mask)
    out = shuffle(s, PRUNABLE, gen(), within="network", same_sign=same_sign, mask=mask)
    pooled = torch.cat([s[k].flatten() for k in PRUNABLE]).sort().values
    assert torch.equal(torch.cat([out[k].flatten() for k in PRUNABLE]).sort().values, pooled)
    for k in PRUNABLE:
        assert torch.all(out[k][~mask[k]] == 0) and torch.all(out[k][mask[k]] != 0)
        assert not torch.equal(out[k][mask[k]].sort().values, s[k][mask[k]].sort().values)
        if same_sign:
            assert torch.equal(torch.sign(out[k]), torch.sign(s[k]))
    assert torch.equal(out["fc.bias"], s["fc.bias"])
    # uniform over the network: a 2-weight and a 1-weight layer, 3! = 6 equally likely arrangements
    t = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0])}
    g = gen(5)
    seen = {tuple(torch.cat([o["a"], o["b"]]).tolist()) for o in (shuffle(t, ["a", "b"], g, within="network")
                                                                    for _ in range(200))}
    assert seen == set(itertools.permutations((1.0, 2.0, 3.0)))


def test_shuffle_is_uniform_and_deterministic() -> None:
    s = {"w": torch.tensor([[1.0, 2.0, 3.0]])}
    g = gen(3)
    counts = {p: 0 for p in itertools.permutations((1.0, 2.0, 3.0))}
    draws = 1200
    for _ in range(draws):
        counts[tuple(shuffle(s, ["w"], g)["w"].flatten().tolist())] += 1
    chi2 = sum((c - draws / 6) ** 2 / (draws / 6) for c in counts.values())
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom: p ~ 0.001
    t = toy_state()
    assert all(torch.equal(shuffle(t, PRUNABLE, gen(7))[k], shuffle(t, PRUNABLE, gen(7))[k]) for k in PRUNABLE)
    assert not torch.equal(shuffle(t, PRUNABLE, gen(7))["fc.weight"], shuffle(t, PRUNABLE, gen(8))["fc.weight"])


# ---------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("init", INITIALIZERS)
@pytest.mark.parametrize("shape", [(300, 784), (64, 32, 3, 3)])
def test_init_std_matches_the_initialiser(init: str, shape: tuple[int, ...]) -> None:
    w = torch.empty(shape)
    init_weight(w, init, gen(0))
    assert float(w.std()) == pytest.approx(init_std(shape, init), rel=0.01)


def test_init_std_values() -> None:
    assert init_std((100, 50), "kaiming_normal") == pytest.approx(math.sqrt(2 / 50))
    assert init_std((16, 8, 3, 3), "kaiming_uniform") == pytest.approx(math.sqrt(2 / 72))
    assert init_std((16, 8, 3, 3), "xavier_uniform") == pytest.approx(math.sqrt(2 / (72 + 144)))
    with pytest.raises(ValueError, match="allowed"):
        init_std((3, 3), "orthogonal")


def test_noise_has_the_asked_std() -> None:
    s = {"big.weight": torch.randn(1000, 500, generator=gen(1)), "b": torch.zeros(3)}
    out = add_noise(s, ["big.weight"], gen(2), 2.0, "kaiming_normal")
    d = (out["big.weight"] - s["big.weight"]).double()
    sigma = 2.0 * math.sqrt(2 / 500)
    assert float(d.std()) == pytest.approx(sigma, rel=0.01)  # std error of the std ~ 0.1% at 500K samples
    assert abs(float(d.mean())) < 5 * sigma / math.sqrt(d.numel())
    assert torch.equal(out["b"], s["b"])
    assert effective_std(s, out, ["big.weight"]) == pytest.approx(sigma, rel=0.01)
    explicit = add_noise(s, ["big.weight"], gen(2), 0.5, {"big.weight": 0.1})
    assert float((explicit["big.weight"] - s["big.weight"]).std()) == pytest.approx(0.05, rel=0.01)


def test_noise_with_mask_and_zero_scale() -> None:
    mask = toy_mask()
    s = masked(toy_state(), mask)
    out = add_noise(s, PRUNABLE, gen(), 1.0, "kaiming_normal", mask=mask)
    for k in PRUNABLE:
        assert torch.all(out[k][~mask[k]] == 0) and torch.all(out[k][mask[k]] != s[k][mask[k]])
    same = add_noise(s, PRUNABLE, gen(), 0.0, "kaiming_normal", mask=mask)
    assert all(torch.equal(same[k], s[k]) for k in s)


# ---------------------------------------------------------------------------------------------- measures
def test_effective_std_pools_prunable_kept_weights() -> None:
    before = {"a": torch.zeros(2, 2), "b": torch.zeros(1, 2), "bias": torch.zeros(2)}
    after = {"a": torch.tensor([[1.0, -1.0], [3.0, 100.0]]), "b": torch.tensor([[-3.0, 0.0]]),
             "bias": torch.tensor([50.0, -50.0])}
    mask = {"a": torch.tensor([[True, True], [True, False]]), "b": torch.tensor([[True, True]])}
    expected = torch.tensor([1.0, -1.0, 3.0, -3.0, 0.0], dtype=torch.float64).std()
    assert effective_std(before, after, ["a", "b"], mask) == pytest.approx(float(expected))
    assert effective_std(before, after, ["a", "b"]) == pytest.approx(float(
        torch.tensor([1.0, -1.0, 3.0, 100.0, -3.0, 0.0], dtype=torch.float64).std()))


# ---------------------------------------------------------------------------------------------- heads
def test_replace_head_rotation_to_ten_way() -> None:
    rot = build_model("fc_7", 1, (1, 4, 4), 4)
    ten = build_model("fc_7", 1, (1, 4, 4), 10)
    ten.init_member(0, "kaiming_normal", gen(9))
    names = head_names(rot)
    assert names == ["layers.1.weight", "layers.1.bias"]
    pre, fresh = rot.member_state(0), ten.member_state(0)
    out = replace_head(pre, fresh, names)
    assert list(out) == list(fresh)
    assert torch.equal(out["layers.1.weight"], fresh["layers.1.weight"]) and out["layers.1.weight"].shape == (10, 7)
    assert torch.equal(out["layers.1.bias"], fresh["layers.1.bias"])
    assert torch.equal(out["layers.0.weight"], pre["layers.0.weight"])
    ten.load_member(0, out)  # fits the target network
    with pytest.raises(ValueError, match="only the head"):
        replace_head(pre, build_model("fc_8", 1, (1, 4, 4), 10).member_state(0), names)


# ---------------------------------------------------------------------------------------------- registry
OPTIONS = {
    "signs_from": lambda: {"source": toy_state(4)},
    "magnitudes_from": lambda: {"source": toy_state(4)},
    "shuffle": lambda: {"within": "unit", "same_sign": True},
    "noise": lambda: {"scale": 0.5, "sigmas": "kaiming_uniform"},
}


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_every_perturbation(name: str) -> None:
    assert name in OPTIONS, f"perturbation {name} has no test options"
    mask = toy_mask()
    s = masked(toy_state(), mask)
    out = perturb(name, s, PRUNABLE, gen(5), mask=mask, **OPTIONS[name]())
    again = perturb(name, s, PRUNABLE, gen(5), mask=mask, **OPTIONS[name]())
    assert set(out) == set(s)
    for k in PRUNABLE:
        assert torch.all(out[k][~mask[k]] == 0)
        assert torch.equal(out[k], again[k])
        assert not torch.equal(out[k], s[k])
    assert torch.equal(out["fc.bias"], s["fc.bias"])
    assert effective_std(s, out, PRUNABLE, mask) > 0


def test_perturb_errors() -> None:
    with pytest.raises(UserError, match="allowed: signs_from"):
        perturb("jitter", toy_state(), PRUNABLE, gen())
    with pytest.raises(UserError, match="noise"):
        perturb("noise", toy_state(), PRUNABLE, gen(), scale=1.0)  # sigmas missing
    with pytest.raises(UserError, match="allowed: layer, unit, network"):
        perturb("shuffle", toy_state(), PRUNABLE, gen(), within="block")
