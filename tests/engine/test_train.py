"""Weight telemetry in the training loop (Frankle, Schwab & Morcos 2020, Fig. 3): every telemetry.csv row equals a
direct computation on the states stored at the same steps."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir

LAYERS = ("layers.0.weight", "layers.1.weight", "layers.2.weight")
SPEC = TrainSpec(DataHparams(dataset="digits", batch_size=50), ModelHparams(model="fc_32_16"),
                 TrainHparams(optimizer="adam", lr=3e-3, training_steps=Step(1, "ep")))
STEPS = (0, 1, 2, 3, 4, 5, 10, 20, 30)  # 1ep = 30it: every 10it, and every 1it until 5it


def flat(state: dict[str, torch.Tensor], mask: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    return torch.cat([(state[k] * (mask[k] if mask else 1)).reshape(-1).double() for k in LAYERS])


def test_telemetry_rows_equal_a_direct_computation_on_stored_states(tmp_path: Path) -> None:
    data = load_dataset(SPEC.data)
    g = torch.Generator().manual_seed(0)
    shapes = {"layers.0.weight": (32, 64), "layers.1.weight": (16, 32), "layers.2.weight": (10, 16)}
    mask = {k: torch.rand(s, generator=g) < 0.5 for k, s in shapes.items()}
    jobs = [Job(SPEC, r, tmp_path / f"run{r}", mask=m, state_steps=tuple(Step(t, "it") for t in STEPS))
            for r, m in ((0, None), (1, mask))]
    opts = EngineOptions(device="cpu", checkpoint_every=None, telemetry_every=Step(10, "it"),
                         telemetry_dense_until=Step(5, "it"), telemetry_dense_every=Step(1, "it"))
    train_population(jobs, data, opts)
    for job in jobs:
        run = RunDir(job.run_dir)
        with open(run.path / "telemetry.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["iteration"]) for r in rows] == list(STEPS)
        m = job.mask
        init = flat(run.load_tensors("states/init.pt"), m)
        fin = flat(run.load_tensors("states/final.pt"), m)
        keep = flat({k: torch.ones(s) for k, s in shapes.items()}, m) != 0
        samples = [c for c in rows[0] if c.startswith("w[")]
        assert len(samples) == 10
        for row in rows:
            t = int(row["iteration"])
            state = run.load_tensors(f"states/{t}it.pt")
            w = flat(state, m)
            assert float(row["mean_abs_weight"]) == pytest.approx(float(w[keep].abs().mean()), rel=1e-5)
            alive = init[keep] != 0
            changed = (torch.sign(w[keep]) != torch.sign(init[keep]))[alive].double().mean()
            assert float(row["sign_changed_fraction"]) == pytest.approx(float(changed), abs=1e-6)
            assert float(row["l2_from_init"]) == pytest.approx(float((w - init).norm()), rel=1e-4, abs=1e-6)
            assert float(row["cosine_to_init"]) == pytest.approx(float(F.cosine_similarity(w, init, dim=0)), abs=1e-5)
            assert float(row["l2_from_final"]) == pytest.approx(float((w - fin).norm()), rel=1e-4, abs=1e-6)
            assert float(row["cosine_to_final"]) == pytest.approx(float(F.cosine_similarity(w, fin, dim=0)), abs=1e-5)
            for c in samples:  # e.g. w[layers.1.weight[3, 17]]
                name, idx = c[2:-2].split("[")
                value = state[name][tuple(int(i) for i in idx.split(","))]
                assert float(row[c]) == pytest.approx(float(value), abs=1e-6)
            if t < 30:  # the gradient of the step taken at t
                assert math.isfinite(float(row["grad_norm"])) and float(row["grad_norm"]) > 0
            else:
                assert row["grad_norm"] == ""
        assert float(rows[0]["l2_from_init"]) == 0 and float(rows[-1]["l2_from_final"]) == pytest.approx(0, abs=1e-6)
        assert float(rows[-1]["sign_changed_fraction"]) > 0


def test_no_telemetry_unless_asked(tmp_path: Path) -> None:
    data = load_dataset(SPEC.data)
    job = Job(SPEC, 0, tmp_path / "run")
    train_population([job], data, EngineOptions(device="cpu", checkpoint_every=None))
    assert not (job.run_dir / "telemetry.csv").exists()


def test_masked_weights_train_alike_whether_gradients_are_masked_or_not(tmp_path: Path) -> None:
    """The step masks gradients only for telemetry (its gradient norm); the update is elementwise and pruned
    weights are zeroed after it, so the weights a masked run ends with are the same bit for bit either way."""
    data = load_dataset(SPEC.data)
    g = torch.Generator().manual_seed(1)
    shapes = {"layers.0.weight": (32, 64), "layers.1.weight": (16, 32), "layers.2.weight": (10, 16)}
    mask = {k: torch.rand(s, generator=g) < 0.3 for k, s in shapes.items()}
    finals = []
    for name, tele in (("plain", None), ("telemetry", Step(10, "it"))):
        for opt in ("sgd", "adam"):
            spec = dataclasses.replace(SPEC, train=dataclasses.replace(SPEC.train, optimizer=opt, momentum=0.9,
                                                                       weight_decay=1e-4))
            job = Job(spec, 0, tmp_path / f"{name}_{opt}", mask=mask)
            train_population([job], data, EngineOptions(device="cpu", checkpoint_every=None, telemetry_every=tele))
            finals.append(RunDir(job.run_dir).load_state("final"))
    for plain, masked in zip(finals[:2], finals[2:], strict=True):
        for k, v in plain.items():
            assert torch.equal(v, masked[k]), k
            if k in mask:
                assert not v[~mask[k]].any() and v[mask[k]].any()
