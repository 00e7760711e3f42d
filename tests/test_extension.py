"""Bring your own model and dataset: register them, and the whole pipeline (CLI included) accepts them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lth.cli import main
from lth.data import DATASETS, RawSplits
from lth.models import MODELS
from lth.models.fc import FC


def _blobs(root: Path, hp) -> RawSplits:
    g = torch.Generator().manual_seed(hp.data_seed)
    y = torch.randint(0, 3, (600,), generator=g)
    x = torch.randn(600, 1, 2, 2, generator=g) * 0.3 + y.view(-1, 1, 1, 1).float()
    return RawSplits(x[:500], y[:500], x[500:], y[500:], 3)


def _tiny(n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str, width: float) -> FC:
    return FC(n, example_shape, num_classes, [max(1, round(8 * width))])


def test_registered_model_and_dataset_train_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(DATASETS, "blobs", _blobs)
    monkeypatch.setitem(MODELS, "tiny", _tiny)
    code = main(["train", "--preset", "digits_mlp", "--dataset", "blobs", "--model", "tiny", "--batch-size", "50",
                 "--training-steps", "20ep", "--lr", "0.01", "--root", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    (run,) = json.loads(out)["runs"]
    assert run["final_test_accuracy"] > 0.8  # three well-separated blobs
