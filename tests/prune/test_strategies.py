"""``kinds_of``: a registered model that does not name its output layer gets its last prunable layer as the output
layer (pruned at the output rate), with one warning saying how to set it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lth.cli import main
from lth.data import DATASETS, RawSplits
from lth.models import MODELS
from lth.models.base import PopModel
from lth.models.layers import PopLinear
from lth.prune import PruneHparams, full_mask, kinds_of, prune, strategies


class Unnamed(PopModel):
    """Two linear layers; ``output_layer`` left at its default ``""``."""

    def __init__(self, n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str = "none",
                 width: float = 1.0) -> None:
        super().__init__(n)
        d = int(torch.tensor(example_shape).prod())
        self.hidden = PopLinear(n, d, 20)
        self.out = PopLinear(n, 20, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.shape[0] != self.n:
            x = x.expand(self.n, -1, -1)
        return self.out(F.relu(self.hidden(x)))


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategies, "_WARNED_OUTPUT", set())


def test_last_prunable_layer_is_the_output_layer_with_one_warning(capsys: pytest.CaptureFixture) -> None:
    model = Unnamed(1, (1, 4, 4), 3)
    assert model.output_layer == ""
    assert kinds_of(model) == {"hidden.weight": "fc", "out.weight": "output"}
    kinds_of(Unnamed(2, (1, 4, 4), 3))  # a second model of the class: no second warning
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "'out.weight'" in err and "output_layer" in err


def test_named_output_layer_is_kept_and_no_warning(capsys: pytest.CaptureFixture) -> None:
    model = Unnamed(1, (1, 4, 4), 3)
    model.output_layer = "hidden.weight"  # whatever the model says wins
    assert kinds_of(model) == {"hidden.weight": "output", "out.weight": "fc"}
    assert capsys.readouterr().err == ""


def test_inferred_output_layer_is_pruned_at_the_output_rate() -> None:
    model = Unnamed(1, (1, 10, 10), 10)
    weights = {k: model.get_parameter(k)[0].detach() for k in model.prunable()}
    hp = PruneHparams(strategy="layerwise", fc_fraction=0.2, output_fraction=0.1)
    mask = prune(weights, full_mask(weights, list(weights)), hp, kinds_of(model))
    assert mask["hidden.weight"].float().mean().item() == pytest.approx(0.8, abs=1 / 2000)
    assert mask["out.weight"].float().mean().item() == pytest.approx(0.9, abs=1 / 200)


def _blobs(root: Path, hp) -> RawSplits:
    g = torch.Generator().manual_seed(hp.data_seed)
    y = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 1, 2, 2, generator=g) * 0.3 + y.view(-1, 1, 1, 1).float()
    return RawSplits(x[:200], y[:200], x[200:], y[200:], 3)


def test_lottery_with_an_unnamed_model_prunes_its_last_layer_at_the_output_rate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(DATASETS, "blobs", _blobs)
    monkeypatch.setitem(MODELS, "unnamed", lambda n, shape, k, *, norm, width: Unnamed(n, shape, k))
    code = main(["lottery", "--preset", "digits_mlp", "--dataset", "blobs", "--model", "unnamed", "--levels", "1",
                 "--batch-size", "50", "--training-steps", "2ep", "--strategy", "layerwise",
                 "--pruning-fc-fraction", "0.2", "--pruning-output-fraction", "0.1", "--root", str(tmp_path),
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.count("does not name its output layer") == 1
    level1 = next(r for r in json.loads(out)["runs"] if r["level"] == 1)
    assert level1["layer_densities"]["out.weight"] == pytest.approx(0.9, abs=1 / 60)
    assert level1["layer_densities"]["hidden.weight"] == pytest.approx(0.8, abs=1 / 80)



@pytest.mark.parametrize("largest", [False, True])
def test_drop_ranked_is_the_first_k_of_a_stable_sort(largest: bool) -> None:
    """The selection-based ranking drops exactly what a stable sort of the survivors would (ties to the lower
    index), with many ties, with none, with NaN, for every k."""
    from lth.prune.strategies import _drop_ranked

    def by_sort(score: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
        new = keep.clone()
        idx = keep.nonzero().squeeze(1)
        new[idx[torch.argsort(score[idx], stable=True, descending=largest)[:max(k, 0)]]] = False
        return new

    g = torch.Generator().manual_seed(0)
    tied = torch.randint(0, 4, (300,), generator=g).float()
    smooth = torch.randn(300, generator=g).abs()
    nan = smooth.clone()
    nan[[3, 50]] = float("nan")
    keep = torch.rand(300, generator=g) < 0.8
    for score in (tied, smooth, nan):
        for k in range(-1, int(keep.sum()) + 2):
            assert torch.equal(_drop_ranked(score, keep, k, largest), by_sort(score, keep, k)), (k, score[:3])
