"""CPU populations are bit-identical to their members trained alone (the per-member CPU path of the layers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir

OPTS = EngineOptions(device="cpu", checkpoint_every=None)


def _spec(model: str, optimizer: str) -> TrainSpec:
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    model, _, norm = model.partition(":")
    return TrainSpec(DataHparams(dataset="digits", batch_size=64), ModelHparams(model=model, norm=norm or "batchnorm"),
                     TrainHparams(optimizer=optimizer, lr=0.01 if optimizer == "sgd" else 1e-3,
                                  training_steps=Step(5, "it"), eval_every=Step(5, "it"), **extra))


@pytest.mark.parametrize(("model", "optimizer"), [("fc_32_16", "sgd"), ("fc_32_16", "adam"), ("conv2", "sgd"),
                                                  ("conv2", "adam"), ("resnet_8", "sgd"), ("resnet_8", "adam"),
                                                  ("resnet_8:groupnorm", "sgd"), ("resnet_8:fixup", "sgd")])
def test_population_of_three_equals_each_member_alone_bit_for_bit(tmp_path: Path, model: str, optimizer: str):
    """Three replicates trained together, then each alone, a few SGD (momentum) / Adam steps on digits: the
    final weights are equal bit for bit."""
    spec = _spec(model, optimizer)
    data = load_dataset(spec.data)
    together = [Job(spec, r, tmp_path / "pop" / str(r)) for r in range(3)]
    train_population(together, data, OPTS)
    for r in range(3):
        alone = Job(spec, r, tmp_path / "alone" / str(r))
        train_population([alone], data, OPTS)
        a = RunDir(alone.run_dir).load_tensors("states/final.pt")
        b = RunDir(together[r].run_dir).load_tensors("states/final.pt")
        assert a.keys() == b.keys()
        init = RunDir(alone.run_dir).load_tensors("states/init.pt")
        for k in a:
            assert torch.equal(a[k], b[k]), (model, optimizer, r, k, (a[k] - b[k]).abs().max().item())
            if k.endswith("weight") and a[k].dim() >= 2:  # (Fixup's scalar multipliers start with no gradient)
                assert not torch.equal(a[k], init[k]), k  # it trained
