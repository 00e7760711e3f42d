"""Single-unit ablation (seed 003): removing a unit zeroes exactly what it computes and what reads it, and the
accuracy drop per unit is the network's accuracy without that unit, on cases with a known answer."""

from __future__ import annotations

import pytest
import torch

from lth.analysis.ablation import ablate_unit, ablation_summary, unit_ablation, units
from lth.analysis.align import permutation_spec
from lth.errors import UserError
from lth.models import build_model
from lth.spec import ModelHparams


def _state(model: str, shape: tuple[int, ...], norm: str = "batchnorm", seed: int = 0) -> dict[str, torch.Tensor]:
    net = build_model(model, 1, shape, 3, norm=norm)
    net.init_member(0, "kaiming_normal", torch.Generator().manual_seed(seed))
    return net.member_state(0)


def test_ablating_a_unit_zeroes_its_row_its_bias_and_the_next_layers_column() -> None:
    state = _state("fc_5_4", (6,))
    spec = permutation_spec("fc_5_4", state)
    assert units(spec, state) == {"layers.0": 5, "layers.1": 4}
    out = ablate_unit(spec, state, "layers.0", 2)
    assert torch.all(out["layers.0.weight"][2] == 0) and out["layers.0.bias"][2] == 0
    assert torch.all(out["layers.1.weight"][:, 2] == 0)
    for k, v in state.items():  # nothing else changed, and the input state is untouched
        keep = torch.ones_like(v, dtype=torch.bool)
        if k in ("layers.0.weight", "layers.0.bias"):
            keep[2] = False
        elif k == "layers.1.weight":
            keep[:, 2] = False
        assert torch.equal(out[k][keep], v[keep]), k
    assert not torch.all(state["layers.0.weight"][2] == 0)


def test_conv_unit_is_a_channel_with_its_batchnorm_and_the_next_layers_input_block() -> None:
    state = _state("vgg_11", (3, 32, 32), seed=1)
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}  # nothing starts at zero
    spec = permutation_spec("vgg_11", state)
    out = ablate_unit(spec, state, "convs.0", 3)
    assert torch.all(out["convs.0.weight"][3] == 0) and torch.all(out["convs.1.weight"][:, 3] == 0)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert out[f"norms.0.{name}"][3] == 0 and torch.all(out[f"norms.0.{name}"][:3] != 0), name


def test_drop_per_unit_on_a_network_with_a_known_answer() -> None:
    """A one-hidden-layer network whose unit 0 carries the signal (it reads feature 0, whose sign is the label)
    and whose unit 1 is read by nothing: removing unit 1 costs exactly 0; without unit 0 only unit 2 (the same
    signal at a thousandth of the weight, too weak to beat the output bias) is left, so the network answers the
    class its biases favour, and the accuracy is that class's share."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    y = (x[:, 0] > 0).long()  # class 1 where feature 0 is positive, else class 0; class 2 never
    state = {"layers.0.weight": torch.zeros(3, 4), "layers.0.bias": torch.zeros(3),
             "layers.1.weight": torch.zeros(3, 3), "layers.1.bias": torch.tensor([0.5, 0.0, -5.0])}
    state["layers.0.weight"][0, 0] = 10.0  # relu(10 x0): large where the answer is class 1
    state["layers.1.weight"][1, 0] = 1.0
    state["layers.0.weight"][1, 1] = 3.0  # unit 1 computes something, but no output reads it
    state["layers.0.weight"][2, 0] = 0.01  # unit 2: the same signal, too weak to beat the bias of 0.5
    state["layers.1.weight"][1, 2] = 1.0
    model = ModelHparams(model="fc_3")
    df = unit_ablation(model, state, x.view(400, 4), y, example_shape=(4,), num_classes=3)
    assert list(df["layer"]) == ["layers.0"] * 3 and list(df["unit"]) == [0, 1, 2]
    logits = torch.relu(x @ state["layers.0.weight"].T) @ state["layers.1.weight"].T + state["layers.1.bias"]
    base = float((logits.argmax(1) == y).float().mean())
    assert df["base_accuracy"].iloc[0] == pytest.approx(base)
    biased = float((y == 0).float().mean())  # without unit 0: 0.01 x0 never beats the bias 0.5 for |x0| < 50
    drops = dict(zip(df["unit"], df["drop"], strict=True))
    assert drops[1] == 0.0
    assert drops[0] == pytest.approx(base - biased)
    weak = torch.relu(x @ state["layers.0.weight"].T)
    weak[:, 2] = 0
    no2 = float(((weak @ state["layers.1.weight"].T + state["layers.1.bias"]).argmax(1) == y).float().mean())
    assert drops[2] == pytest.approx(base - no2)
    summary = ablation_summary(df)
    assert summary.loc[0, "max_unit"] == 0 and summary.loc[0, "units"] == 3
    assert summary.loc[0, "share_above"] == pytest.approx(sum(d > 0.01 for d in drops.values()) / 3)


def test_population_evaluation_equals_one_network_at_a_time() -> None:
    """Each ablated network evaluated in the population gives what it gives alone."""
    from lth.engine.evaluate import evaluate_states

    state = _state("fc_6", (5,), seed=3)
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))
    model = ModelHparams(model="fc_6")
    df = unit_ablation(model, state, x, y, example_shape=(5,), num_classes=3, max_population=4)
    spec = permutation_spec("fc_6", state)
    for j in (0, 5):
        alone = evaluate_states(model, [ablate_unit(spec, state, "layers.0", j)], x, y, example_shape=(5,),
                                num_classes=3)["accuracy"][0]
        assert df.loc[df["unit"] == j, "accuracy"].item() == pytest.approx(float(alone))


def test_resnets_are_refused_naming_the_supported_models() -> None:
    state = _state("resnet_8", (3, 8, 8))
    with pytest.raises(UserError, match="fc_"):
        unit_ablation(ModelHparams(model="resnet_8"), state, torch.randn(4, 3, 8, 8), torch.zeros(4).long(),
                      example_shape=(3, 8, 8), num_classes=3)
