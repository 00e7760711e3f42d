"""Pruning: each strategy against a direct numpy computation, iterative and one-shot densities, the random
strategy's counts and seeding, the ablation helpers, hyperparameter validation and the strategy registry."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lth.errors import UserError
from lth.models import build_model
from lth.prune import (
    STRATEGIES,
    PruneHparams,
    apply_mask,
    density,
    effective_density,
    effective_mask,
    full_mask,
    is_submask,
    kinds_of,
    layer_densities,
    mask_counts,
    permute_mask,
    prune,
    prune_to_density,
    random_mask_like,
    sample_dn,
    scaled_width_for_params,
)


# ---------------------------------------------------------------------------------------------- fixtures
def _weights(model_name: str, shape: tuple[int, ...], seed: int = 0, width: float = 1.0):
    model = build_model(model_name, 1, shape, 10, width=width)
    kinds = kinds_of(model)
    g = torch.Generator().manual_seed(seed)
    state = model.member_state(0)
    weights = {n: torch.randn(state[n].shape, generator=g) for n in kinds}
    return weights, kinds


@pytest.fixture(scope="module")
def lenet():
    """lenet_300_100's real shapes with random weights."""
    return _weights("lenet_300_100", (1, 28, 28))


@pytest.fixture(scope="module")
def conv():
    """A small conv2: conv, fc and output layers."""
    return _weights("conv2", (3, 8, 8), seed=1, width=0.25)


def _partial_mask(weights, seed: int = 5, keep: float = 0.7):
    """A mask that already pruned ~30% of each layer. The pruned positions get tiny weights (so a strategy that
    ranked pruned weights would remove them first) and the survivors' ranking is unaffected."""
    g = torch.Generator().manual_seed(seed)
    mask = {n: torch.rand(w.shape, generator=g) < keep for n, w in weights.items()}
    weights = {n: torch.where(mask[n], w, torch.full_like(w, 1e-9)) for n, w in weights.items()}
    return weights, mask


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().reshape(-1)


def _k(f: float, n: int) -> int:
    return int(math.floor(f * n + 0.5))


def _removed(old, new) -> np.ndarray:
    return np.flatnonzero(_np(old) & ~_np(new))


def _expected_removed(w, m, k: int, largest: bool) -> np.ndarray:
    """Flat indices of the k survivors of smallest (largest) |w|, ties to the lower index."""
    idx = np.flatnonzero(_np(m))
    vals = np.abs(_np(w)[idx])
    order = np.argsort(-vals if largest else vals, kind="stable")
    return np.sort(idx[order[:k]])


# ---------------------------------------------------------------------------------------------- masks
def test_mask_basics(lenet) -> None:
    weights, kinds = lenet
    mask = full_mask(weights, kinds)
    assert set(mask) == set(kinds) and all(m.dtype == torch.bool and m.all() for m in mask.values())
    assert density(mask) == 1.0
    mask["layers.0.weight"][:150] = False
    n0 = weights["layers.0.weight"].numel()
    assert mask_counts(mask)["layers.0.weight"] == n0 // 2
    assert layer_densities(mask)["layers.0.weight"] == 0.5 and layer_densities(mask)["layers.1.weight"] == 1.0
    total = sum(w.numel() for w in weights.values())
    assert density(mask) == pytest.approx((total - n0 // 2) / total)
    state = {**weights, "other": torch.ones(3)}
    out = apply_mask(state, mask)
    w0 = out["layers.0.weight"]
    assert torch.equal(w0[:150], torch.zeros_like(w0[:150])) and not torch.signbit(w0[:150]).any()
    assert torch.equal(w0[150:], weights["layers.0.weight"][150:])
    assert torch.equal(out["other"], state["other"]) and out["other"] is not state["other"]
    assert weights["layers.0.weight"][:150].ne(0).all()  # the input is untouched


def test_kinds_of() -> None:
    assert kinds_of(build_model("lenet_300_100", 2, (1, 28, 28), 10)) == {
        "layers.0.weight": "fc", "layers.1.weight": "fc", "layers.2.weight": "output"}
    kinds = kinds_of(build_model("conv2", 2, (3, 8, 8), 10, width=0.25))
    assert [kinds[n] for n in kinds] == ["conv", "conv", "fc", "fc", "output"]


# ---------------------------------------------------------------------------------------------- strategies
@pytest.mark.parametrize("criterion", ["smallest", "largest"])
def test_global_matches_direct_ranking(lenet, criterion: str) -> None:
    weights, mask = _partial_mask(lenet[0])
    kinds = lenet[1]
    hp = PruneHparams(strategy="global", fraction=0.3, criterion=criterion, ignore=("layers.1",))
    new = prune(weights, mask, hp, kinds)
    assert is_submask(new, mask)
    names = ["layers.0.weight", "layers.2.weight"]
    offsets = np.cumsum([0] + [weights[n].numel() for n in names])
    w_all = torch.cat([weights[n].reshape(-1) for n in names])
    m_all = torch.cat([mask[n].reshape(-1) for n in names])
    k = _k(0.3, int(m_all.sum()))
    expected = _expected_removed(w_all, m_all, k, criterion == "largest")
    got = np.concatenate([_removed(mask[n], new[n]) + off for n, off in zip(names, offsets, strict=False)])
    assert len(got) == k and np.array_equal(np.sort(got), expected)
    assert torch.equal(new["layers.1.weight"], mask["layers.1.weight"])  # ignored


def test_global_ties_go_to_lower_index() -> None:
    weights = {"a": torch.ones(4, 5), "b": torch.ones(3, 5)}
    kinds = {"a": "fc", "b": "output"}
    new = prune(weights, full_mask(weights, kinds), PruneHparams(strategy="global", fraction=0.4), kinds)
    assert new["a"].reshape(-1)[:14].logical_not().all() and new["a"].reshape(-1)[14:].all() and new["b"].all()
    new = prune(weights, full_mask(weights, kinds), PruneHparams(strategy="layerwise", fc_fraction=0.5), kinds)
    assert _removed(full_mask(weights, kinds)["a"], new["a"]).tolist() == list(range(10))


@pytest.mark.parametrize("criterion", ["smallest", "largest"])
def test_layerwise_matches_direct_ranking(conv, criterion: str) -> None:
    weights, mask = _partial_mask(conv[0])
    kinds = conv[1]
    hp = PruneHparams(strategy="layerwise", conv_fraction=0.1, fc_fraction=0.25, criterion=criterion,
                      layer_fractions=("fc.1.weight=0.6",))
    new = prune(weights, mask, hp, kinds)
    assert is_submask(new, mask)
    fractions = {"convs.0.weight": 0.1, "convs.1.weight": 0.1, "fc.0.weight": 0.25, "fc.1.weight": 0.6,
                 "fc.2.weight": 0.125}
    for n, f in fractions.items():
        k = _k(f, int(mask[n].sum()))
        assert k > 0
        assert np.array_equal(_removed(mask[n], new[n]), _expected_removed(weights[n], mask[n], k,
                                                                            criterion == "largest")), n


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("criterion", ["smallest", "largest"])
def test_structured_removes_rows_by_norm(conv, norm: str, criterion: str) -> None:
    weights, mask = _partial_mask(conv[0])
    kinds = conv[1]
    # some rows already fully pruned: they are not "remaining" rows
    mask["fc.0.weight"][:3] = False
    hp = PruneHparams(strategy="structured", conv_fraction=0.25, fc_fraction=0.3, norm=norm, criterion=criterion)
    new = prune(weights, mask, hp, kinds)
    assert is_submask(new, mask)
    assert torch.equal(new["fc.2.weight"], mask["fc.2.weight"])  # output rows (classes) never pruned
    for n in ["convs.0.weight", "convs.1.weight", "fc.0.weight", "fc.1.weight"]:
        f = 0.25 if kinds[n] == "conv" else 0.3
        w = weights[n].numpy().reshape(weights[n].shape[0], -1)
        m = mask[n].numpy().reshape(w.shape[0], -1)
        wm = np.where(m, w, 0.0)
        norms = np.abs(wm).sum(1) if norm == "l1" else np.sqrt((wm.astype(np.float64) ** 2).sum(1))
        alive = np.flatnonzero(m.any(1))
        k = _k(f, len(alive))
        order = np.argsort(-norms[alive] if criterion == "largest" else norms[alive], kind="stable")
        gone = set(alive[order[:k]].tolist())
        nm = new[n].numpy().reshape(w.shape[0], -1)
        for r in range(w.shape[0]):
            if r in gone:
                assert not nm[r].any(), (n, r)
            else:
                assert np.array_equal(nm[r], m[r]), (n, r)
        assert k > 0


def test_iterative_density_global(lenet) -> None:
    weights, kinds = lenet
    mask = full_mask(weights, kinds)
    total = sum(w.numel() for w in weights.values())
    hp = PruneHparams(strategy="global", fraction=0.2)
    for level in range(1, 7):
        new = prune(weights, mask, hp, kinds)
        assert is_submask(new, mask)
        mask = new
        assert abs(sum(mask_counts(mask).values()) - total * 0.8 ** level) <= level
    assert density(mask) == pytest.approx(0.8 ** 6, abs=1e-4)


def test_iterative_density_layerwise(lenet) -> None:
    weights, kinds = lenet
    mask = full_mask(weights, kinds)
    hp = PruneHparams()  # layerwise, fc 0.2, output half of that
    for level in range(1, 7):
        new = prune(weights, mask, hp, kinds)
        assert is_submask(new, mask)
        mask = new
        counts = mask_counts(mask)
        for n, w in weights.items():
            rate = 0.1 if kinds[n] == "output" else 0.2
            assert abs(counts[n] - w.numel() * (1 - rate) ** level) <= level, (n, level)
    d = layer_densities(mask)
    assert d["layers.2.weight"] == pytest.approx(0.9 ** 6, abs=2e-3)
    assert d["layers.0.weight"] == pytest.approx(0.8 ** 6, abs=1e-4)


def test_random_counts_and_seeding(conv) -> None:
    weights, mask = _partial_mask(conv[0])
    kinds = conv[1]
    hp = PruneHparams(strategy="random", fc_fraction=0.3, conv_fraction=0.15, seed=3)
    new = prune(weights, mask, hp, kinds)
    assert is_submask(new, mask)
    magnitude = prune(weights, mask, dataclasses.replace(hp, strategy="layerwise"), kinds)
    assert mask_counts(new) == mask_counts(magnitude)
    assert all(torch.equal(new[n], prune(weights, mask, hp, kinds)[n]) for n in new)  # same seed, same mask
    other = prune(weights, mask, dataclasses.replace(hp, seed=4), kinds)
    assert mask_counts(other) == mask_counts(new) and any(not torch.equal(other[n], new[n]) for n in new)
    assert any(not torch.equal(new[n], magnitude[n]) for n in new)

    hp_g = dataclasses.replace(hp, random_mode="global", fraction=0.35)
    new_g = prune(weights, mask, hp_g, kinds)
    assert is_submask(new_g, mask)
    glob = prune(weights, mask, dataclasses.replace(hp_g, strategy="global"), kinds)
    assert sum(mask_counts(new_g).values()) == sum(mask_counts(glob).values())
    assert mask_counts(new_g) != mask_counts(glob)  # spread at random, not by magnitude
    assert all(torch.equal(new_g[n], prune(weights, mask, hp_g, kinds)[n]) for n in new_g)
    other_g = prune(weights, mask, dataclasses.replace(hp_g, seed=9), kinds)
    assert any(not torch.equal(other_g[n], new_g[n]) for n in new_g)


# ---------------------------------------------------------------------------------------------- one-shot
@pytest.mark.parametrize("strategy,extra", [("global", {}), ("layerwise", {}), ("random", {}),
                                            ("random", {"random_mode": "global"}), ("structured", {})])
@pytest.mark.parametrize("target", [0.5, 0.107])
def test_prune_to_density(lenet, strategy: str, extra: dict, target: float) -> None:
    weights, kinds = lenet
    hp = PruneHparams(strategy=strategy, **extra)
    mask = prune_to_density(weights, hp, kinds, target)
    total = sum(w.numel() for w in weights.values())
    kept = sum(mask_counts(mask).values())
    if strategy == "global" or extra:
        assert kept == _k(target, total)
    elif strategy == "structured":
        assert abs(kept - target * total) <= 784 * 2  # within a couple of whole first-layer rows
        assert mask["layers.2.weight"].all()
    else:
        assert abs(kept - target * total) <= len(weights)
        d = layer_densities(mask)  # every layer at the same real level L of the iterative schedule
        level_fc = math.log(d["layers.0.weight"]) / math.log(0.8)
        assert math.log(d["layers.1.weight"]) / math.log(0.8) == pytest.approx(level_fc, rel=1e-2)
        assert math.log(d["layers.2.weight"]) / math.log(0.9) == pytest.approx(level_fc, rel=2e-2)


def test_prune_to_density_from_a_mask_and_errors(lenet) -> None:
    weights, kinds = lenet
    hp = PruneHparams(strategy="global")
    start = prune(weights, full_mask(weights, kinds), hp, kinds)
    mask = prune_to_density(weights, hp, kinds, 0.3, mask=start)
    assert is_submask(mask, start) and density(mask) == pytest.approx(0.3, abs=1e-5)
    with pytest.raises(UserError, match="0.9"):
        prune_to_density(weights, hp, kinds, 0.9, mask=start)
    with pytest.raises(UserError, match="1.5"):
        prune_to_density(weights, hp, kinds, 1.5)
    ignore_big = dataclasses.replace(hp, ignore=("layers.0.weight",))
    with pytest.raises(UserError, match="never pruned"):
        prune_to_density(weights, ignore_big, kinds, 0.1)


# ---------------------------------------------------------------------------------------------- ablations
def test_permute_mask(conv) -> None:
    _, mask = _partial_mask(conv[0])
    new = permute_mask(mask, torch.Generator().manual_seed(0))
    assert mask_counts(new) == mask_counts(mask)
    assert all(new[n].shape == mask[n].shape and not torch.equal(new[n], mask[n]) for n in mask)
    again = permute_mask(mask, torch.Generator().manual_seed(0))
    assert all(torch.equal(again[n], new[n]) for n in mask)


def test_sample_dn(conv) -> None:
    init, mask = _partial_mask(conv[0])
    init["fc.1.weight"][0, :] = 0.0  # zero initial weights at kept positions are not part of D_n
    new = sample_dn(init, mask, torch.Generator().manual_seed(0), pool="layer")  # per layer: now an option
    for n, m in mask.items():
        pool = set(init[n][m & (init[n] != 0)].tolist())
        vals = new[n][m]
        assert vals.ne(0).all() and set(vals.tolist()) <= pool, n
        assert new[n][~m].eq(0).all()
        assert not torch.equal(new[n], init[n].masked_fill(~m, 0)), n  # resampled, not copied
    assert len(set(new["convs.1.weight"][mask["convs.1.weight"]].tolist())) > 10


@pytest.mark.parametrize("mode", ["layerwise", "global"])
def test_random_mask_like(conv, mode: str) -> None:
    _, mask = _partial_mask(conv[0], keep=0.3)
    new = random_mask_like(mask, torch.Generator().manual_seed(1), mode)
    if mode == "layerwise":
        assert mask_counts(new) == mask_counts(mask)
    else:
        assert sum(mask_counts(new).values()) == sum(mask_counts(mask).values())
        assert mask_counts(new) != mask_counts(mask)
    assert any(not torch.equal(new[n], mask[n]) for n in mask)


@pytest.mark.parametrize("target", [266_610 // 10, 60_000, 266_610])
def test_scaled_width_for_params(target: int) -> None:
    def count(w: float) -> int:
        return build_model("fc_300_100", 1, (1, 28, 28), 10, width=w).num_params()

    w = scaled_width_for_params(target, count)
    got = count(w)
    # no width whose count is closer: a hidden unit more or less in the first layer moves the count by ~800
    assert abs(got - target) <= 800
    for other in (w * 0.99, w * 1.01):
        assert abs(got - target) <= abs(count(other) - target)
    if target == 266_610:
        assert got == 266_610


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field", ["fraction", "conv_fraction", "fc_fraction", "output_fraction"])
@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1])
def test_validate_rejects_fraction(field: str, value: float) -> None:
    hp = PruneHparams(**{field: value})
    with pytest.raises(UserError) as err:
        hp.validate()
    msg = str(err.value)
    assert "\n" not in msg and f"--pruning-{field.replace('_', '-')} {value!r}" in msg and "(0, 1)" in msg


@pytest.mark.parametrize("kw,needle", [
    ({"strategy": "magnitude"}, "'magnitude'"),
    ({"criterion": "median"}, "'median'"),
    ({"norm": "l3"}, "'l3'"),
    ({"random_mode": "both"}, "'both'"),
    ({"layer_fractions": ("layers.0.weight",)}, "'layers.0.weight'"),
    ({"layer_fractions": ("layers.0.weight=x",)}, "'x'"),
    ({"layer_fractions": ("layers.0.weight=1.5",)}, "1.5"),
    ({"layer_fractions": ("=0.3",)}, "'=0.3'"),
    ({"layer_fractions": ("a=0.3", "a=0.4")}, "twice"),
])
def test_validate_rejects(kw: dict, needle: str) -> None:
    with pytest.raises(UserError) as err:
        PruneHparams(**kw).validate()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_defaults_valid_and_unknown_layer_names(lenet) -> None:
    PruneHparams().validate()
    assert PruneHparams().output_rate() == 0.1 and PruneHparams(output_fraction=0.3).output_rate() == 0.3
    weights, kinds = lenet
    mask = full_mask(weights, kinds)
    for hp in (PruneHparams(ignore=("layers.7",)), PruneHparams(layer_fractions=("layers.7=0.5",))):
        with pytest.raises(UserError, match="layers.7"):
            prune(weights, mask, hp, kinds)
    with pytest.raises(UserError, match="magnitude"):
        prune(weights, mask, PruneHparams(strategy="magnitude"), kinds)


# ---------------------------------------------------------------------------------------------- registry
REGISTRY_CASES = {
    "global": [PruneHparams(strategy="global", fraction=0.3)],
    "layerwise": [PruneHparams(strategy="layerwise", conv_fraction=0.1, fc_fraction=0.3)],
    "random": [PruneHparams(strategy="random", seed=2), PruneHparams(strategy="random", random_mode="global")],
    "structured": [PruneHparams(strategy="structured", norm="l2", fc_fraction=0.3)],
}


def test_registry_cases_cover_registry() -> None:
    assert set(REGISTRY_CASES) == set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_on_a_toy_model(conv, name: str) -> None:
    weights, kinds = conv
    for hp in REGISTRY_CASES[name]:
        first = mask = full_mask(weights, kinds)
        originals = {n: w.clone() for n, w in weights.items()}
        for _ in range(3):
            new = prune(weights, mask, hp, kinds)
            assert set(new) == set(mask) and all(new[n] is not mask[n] for n in mask)
            assert is_submask(new, mask) and density(new) < density(mask)
            mask = new
        assert all(m.all() for m in first.values())  # inputs untouched
        assert all(torch.equal(originals[n], weights[n]) for n in weights)
        pruned = apply_mask(weights, mask)
        assert all(pruned[n][~mask[n]].eq(0).all() and torch.equal(pruned[n][mask[n]], weights[n][mask[n]])
                   for n in mask)


def test_sample_dn_draws_from_the_whole_network_by_default() -> None:
    """Seed 004, section 2: theta_LT = nonzero(m * theta_0) over the network; D_n samples uniformly from it."""
    init = {"a": torch.tensor([[1.0, 2.0, 0.0, 9.0]]), "b": torch.tensor([[-5.0, 7.0]])}
    mask = {"a": torch.tensor([[True, True, True, False]]), "b": torch.tensor([[True, True]])}
    pool = {1.0, 2.0, -5.0, 7.0}  # a's 0.0 is kept but zero, a's 9.0 is pruned: neither is in D_n
    seen = {"a": set(), "b": set()}
    for seed in range(40):
        new = sample_dn(init, mask, torch.Generator().manual_seed(seed))
        assert new["a"][0, 3] == 0 and all(v != 0 for n in new for v in new[n][mask[n]].tolist())
        for n in new:
            seen[n] |= set(new[n][mask[n]].tolist())
    assert seen["a"] == pool and seen["b"] == pool  # each layer draws from the other's weights too
    for seed in range(40):
        new = sample_dn(init, mask, torch.Generator().manual_seed(seed), pool="layer")
        assert set(new["a"][mask["a"]].tolist()) <= {1.0, 2.0} and set(new["b"][mask["b"]].tolist()) <= {-5.0, 7.0}
    with pytest.raises(ValueError, match="allowed: network, layer"):
        sample_dn(init, mask, torch.Generator(), pool="model")
    with pytest.raises(ValueError, match="no kept initial weight"):
        sample_dn({k: v * 0 for k, v in init.items()}, mask, torch.Generator())


def test_sample_dn_layer_pool_falls_back_to_network_for_fixup_zero_layers() -> None:
    """Fixup zero-initialises the last conv of each residual branch: at k = 0 such a layer's own pool is empty."""
    from lth.models import build_model

    net = build_model("resnet_20", 1, (3, 32, 32), 10, norm="fixup")
    net.init_member(0, "kaiming_normal", torch.Generator().manual_seed(0))
    init = {k: net.get_parameter(k)[0].detach().clone() for k in net.prunable()}
    zero = [k for k, v in init.items() if not v.any()]
    assert zero  # the Fixup branches' last convolutions
    mask = {k: torch.ones_like(v, dtype=torch.bool) for k, v in init.items()}
    new = sample_dn(init, mask, torch.Generator().manual_seed(0), pool="layer")
    everything = set(torch.cat([v[v != 0] for v in init.values()]).tolist())
    for k in zero:
        vals = new[k].reshape(-1)
        assert vals.ne(0).all() and set(vals.tolist()) <= everything, k
    live = next(k for k in init if k not in zero)
    assert set(new[live].reshape(-1).tolist()) <= set(init[live].reshape(-1).tolist())


def test_effective_density_hand_built_fc() -> None:
    """A toy FC net: W1 [3, 2], W2 [2, 3], W3 [2, 2] (16 weights). Structured pruning removed hidden unit 1 of
    layer 1 (W1 row 1) and hidden unit 0 of layer 2 (W2 row 0). Kept: W1 4, W2 3, W3 4 = 11/16. Their outgoing
    weights cannot carry signal: W2 column 1 (1 kept weight, in row 1) and W3 column 0 (2): 8/16 remain."""
    t, f = True, False
    mask = {"l1": torch.tensor([[t, t], [f, f], [t, t]]), "l2": torch.tensor([[f, f, f], [t, t, t]]),
            "l3": torch.ones(2, 2, dtype=torch.bool)}
    assert density(mask) == 11 / 16
    eff = effective_mask(mask)
    assert effective_density(mask) == 8 / 16
    assert eff["l2"].tolist() == [[f, f, f], [t, f, t]] and eff["l3"].tolist() == [[f, t], [f, t]]
    assert eff["l1"].tolist() == mask["l1"].tolist()
    # backward: the output layer reads nothing from h2_1 -> W2 row 1 is useless -> h1 reaches nothing -> all dead
    cut = {**mask, "l3": torch.tensor([[t, f], [t, f]])}
    assert effective_density(cut) == 0.0
    # an unstructured mask without dead units is unchanged
    dense = {k: torch.ones_like(v) for k, v in mask.items()}
    assert effective_density(dense) == 1.0


def test_effective_density_conv_then_fc() -> None:
    """conv [2 filters, 1, 3, 3] -> flatten of [2, 2, 2] (4 inputs per channel) -> fc [3, 8]. Filter 0 removed:
    the fc's columns 0..3 are dead. Reported (9 + 24) / 42; effective (9 + 12) / 42."""
    conv = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    conv[0] = False
    mask = {"conv": conv, "fc": torch.ones(3, 8, dtype=torch.bool)}
    assert density(mask) == 33 / 42 and effective_density(mask, ["conv", "fc"]) == 21 / 42
    assert effective_mask(mask)["fc"][:, :4].sum() == 0 and effective_mask(mask)["fc"][:, 4:].all()


# ------------------------------------------------------------------------------- the seeds' pruning rates
def _preset_pruning(name: str) -> PruneHparams:
    from lth.presets import PRESETS

    return PruneHparams(**{k: tuple(v) if isinstance(v, list) else v for k, v in PRESETS[name].pruning.items()})


def test_lenet_300_100_fc_rates_keep_3_58_percent_at_level_15(lenet) -> None:
    """Frankle & Carbin's LeNet row (seed 001, Table 1): fc 20% per level, the output layer at half that ("all the
    last layers were pruned to half of the given pruning rate"). Hand count: 265,200 hidden weights x 0.8^15 =
    9,330.8 and 1,000 output weights x 0.9^15 = 205.9, so level 15 keeps 9,536.7 / 266,200 = 3.58%; biases are
    never prunable."""
    weights, kinds = lenet
    assert kinds == {"layers.0.weight": "fc", "layers.1.weight": "fc", "layers.2.weight": "output"}
    hp = _preset_pruning("lenet_300_100")
    mask = full_mask(weights, kinds)
    for _ in range(15):
        mask = prune(weights, mask, hp, kinds)
    assert sum(w.numel() for w in weights.values()) == 266_200
    assert density(mask) == pytest.approx((265_200 * 0.8 ** 15 + 1_000 * 0.9 ** 15) / 266_200, abs=2e-5)
    assert round(density(mask), 4) == 0.0358


@pytest.mark.parametrize("norm", ["fixup", "batchnorm"])
def test_resnet20_global_conv_pruning_leaves_classifier_norms_and_fixup_scalars(norm: str) -> None:
    """Siswanto, Frankle & Carbin (seed 000, section 2, step 3): global magnitude pruning; F&C's ResNet row (seed
    001, Table 1): conv 20%, fc 0%. One level of the ``resnet20_fixup`` / ``resnet20`` preset removes round(0.2 x
    all prunable weights), as open_lth's sparse_global counts (Frankle et al. 2020, Table 1: densities 0.8^L), from
    the conv weights ranked together (stem, branch and 1x1 shortcut convs) and nothing else: the classifier is
    ignored, and BatchNorm's affine parameters and Fixup's scalar biases and multipliers are not prunable."""
    model = build_model("resnet_20", 1, (3, 32, 32), 10, norm=norm, width=0.25)
    kinds = kinds_of(model)
    params = dict(model.named_parameters())
    assert set(kinds) == {n for n, p in params.items() if n.endswith("weight") and p.dim() in (3, 5)}
    assert kinds["fc.weight"] == "output" and all(k == "conv" for n, k in kinds.items() if n != "fc.weight")
    scalars = [n for n in params if "bias1" in n or "bias2" in n or n.endswith("scale.weight")]
    assert (len(scalars) == 2 + 9 * 5) if norm == "fixup" else not scalars  # 4 biases + 1 multiplier per branch
    assert not set(scalars) & set(kinds) and not any("norm" in n for n in kinds)
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(params[n].shape[1:], generator=g) for n in kinds}
    mask = full_mask(weights, kinds)
    new = prune(weights, mask, _preset_pruning("resnet20_fixup" if norm == "fixup" else "resnet20"), kinds)
    convs = [n for n in kinds if n != "fc.weight"]
    total = sum(weights[n].numel() for n in convs)
    every = total + weights["fc.weight"].numel()
    assert bool(new["fc.weight"].all())
    assert total - sum(int(new[n].sum()) for n in convs) == _k(0.2, every)
    score = torch.cat([weights[n].abs().flatten() for n in convs])
    cut = score.sort().values[_k(0.2, every) - 1]
    for n in convs:  # every removed weight is at most the cut, every kept one above it (continuous: no ties)
        assert bool((weights[n].abs()[~new[n]] <= cut).all()) and bool((weights[n].abs()[new[n]] > cut).all())


@pytest.mark.parametrize("preset,model,shape,level,paper", [("lenet_300_100_lmc", "lenet_300_100", (1, 28, 28), 15,
                                                             0.0352),
                                                            ("resnet20", "resnet_20", (3, 32, 32), 8, 0.1678)])
def test_global_presets_keep_the_papers_densities(preset: str, model: str, shape: tuple[int, ...], level: int,
                                                  paper: float) -> None:
    """Frankle et al. 2020 (seed 002), Table 1: LeNet at 3.5% and ResNet-20 at 16.8%, exactly 0.8^15 and 0.8^8 with
    the classifier ignored, as open_lth's sparse_global counts (20% of every surviving weight per level, all taken
    from the pruned layers). Counting only the pruned layers' survivors keeps more (3.88% for LeNet)."""
    weights, kinds = _weights(model, shape, width=1.0)
    hp = _preset_pruning(preset)
    assert hp.count_ignored and hp.ignore
    mask = full_mask(weights, kinds)
    old = dict(mask)
    total = sum(m.numel() for m in mask.values())
    for lv in range(1, level + 1):
        remaining = sum(int(m.sum()) for m in mask.values())
        mask = prune(weights, mask, hp, kinds)
        assert remaining - sum(int(m.sum()) for m in mask.values()) == _k(0.2, remaining)  # of every survivor
        g = torch.Generator().manual_seed(lv)
        weights = {k: torch.randn(v.shape, generator=g) for k, v in weights.items()}
    ignored = next(iter(hp.ignore))
    assert bool(mask[ignored].all()) and bool(old[ignored].all())
    assert density(mask) == pytest.approx(paper, abs=5e-5)
    assert density(mask) == pytest.approx(0.8 ** level, rel=1e-3)
    if preset == "lenet_300_100_lmc":  # the other counting: 20% of the pruned layers' survivors only
        other, m2 = dataclasses.replace(hp, count_ignored=False), full_mask(weights, kinds)
        for _ in range(level):
            m2 = prune(weights, m2, other, kinds)
        assert density(m2) == pytest.approx(0.0388, abs=5e-4)
    assert sum(m.numel() for m in mask.values()) == total


def test_count_ignored_never_removes_more_than_the_pruned_layers_hold() -> None:
    """With a large ignored layer, 20% of every survivor can exceed what the pruned layers keep: they are emptied,
    no more (the ignored layer stays whole)."""
    weights = {"a": torch.randn(10), "b": torch.randn(100)}
    kinds = {"a": "fc", "b": "output"}
    hp = PruneHparams(strategy="global", fraction=0.2, ignore=("b",), count_ignored=True)
    mask = prune(weights, full_mask(weights, kinds), hp, kinds)
    assert int(mask["a"].sum()) == 0 and bool(mask["b"].all())
    rand = prune(weights, full_mask(weights, kinds), dataclasses.replace(hp, strategy="random", random_mode="global"),
                 kinds)
    assert int(rand["a"].sum()) == 0 and bool(rand["b"].all())


def test_a_field_added_later_is_recorded_only_when_set() -> None:
    """IMP's nodes hash ``PruneHparams.record()``: a default ``count_ignored`` leaves the record (and so every
    stored level's identity) as it was before the field existed; a set one changes it; both read back."""
    from lth.spec import from_dict, to_dict

    hp = PruneHparams(strategy="global", ignore=("x",))
    assert "count_ignored" not in hp.record() and hp.record() == {k: v for k, v in to_dict(hp).items()
                                                                 if k != "count_ignored"}
    on = dataclasses.replace(hp, count_ignored=True)
    assert on.record()["count_ignored"] is True
    assert from_dict(PruneHparams, hp.record()) == hp and from_dict(PruneHparams, on.record()) == on


def test_one_shot_to_a_density_is_exact_under_count_ignored(lenet) -> None:
    """``prune_to_density`` (the oneshot branch, OMP) hits round(target x total) whatever the strategy counts per
    level: its fraction is of the pruned layers' survivors, so ``count_ignored`` must not rescale it."""
    weights, kinds = lenet
    hp = _preset_pruning("lenet_300_100_lmc")
    total = sum(w.numel() for w in weights.values())
    for target in (0.8, 0.2, 0.0352):
        got = prune_to_density(weights, hp, kinds, target)
        assert sum(int(m.sum()) for m in got.values()) == pytest.approx(target * total, abs=1)


def test_count_ignored_without_a_global_count_over_ignored_layers_is_unset() -> None:
    """It changes nothing there, so it does not give the same pruning another identity."""
    for kw in ({"strategy": "layerwise", "ignore": ("x",)}, {"strategy": "global"},
               {"strategy": "random", "ignore": ("x",)}, {"strategy": "structured", "ignore": ("x",)}):
        assert PruneHparams(count_ignored=True, **kw) == PruneHparams(**kw)
    assert PruneHparams(strategy="random", random_mode="global", ignore=("x",), count_ignored=True).count_ignored


@pytest.mark.parametrize("hp", [PruneHparams(strategy="layerwise", fc_fraction=0.2, output_fraction=0.2),
                                PruneHparams(strategy="global", fraction=0.2)])
def test_each_round_removes_exactly_the_stated_share(hp: PruneHparams) -> None:
    """lth removes round(0.2 * remaining) per layer (layer-wise) or over the pooled layers (global), every round:
    not one more, as google-research's prune_by_percent (cut-off <= the round(f * n)-th magnitude) and open_lth's
    sparse_global do. Distinct magnitudes, so no tie can change a count."""
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randperm(37 * 11, generator=g).double().add(1).view(37, 11),
               "b": torch.randperm(10 * 13, generator=g).double().add(1).view(10, 13)}
    kinds = {"a": "fc", "b": "output"}
    mask = full_mask(weights, list(kinds))
    for _ in range(6):
        before = {n: int(m.sum()) for n, m in mask.items()}
        mask = prune(weights, mask, hp, kinds)
        after = {n: int(m.sum()) for n, m in mask.items()}
        if hp.strategy == "layerwise":
            assert {n: before[n] - after[n] for n in before} == {n: _k(0.2, before[n]) for n in before}
        else:
            assert sum(before.values()) - sum(after.values()) == _k(0.2, sum(before.values()))
