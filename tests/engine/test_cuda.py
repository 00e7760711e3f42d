"""The GPU path (run where CUDA is present): CUDA-graph training equals eager training on the same seeds,
and population members equal their lone runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def specs() -> list[TrainSpec]:
    mlp = TrainSpec(DataHparams(dataset="digits", batch_size=50), ModelHparams(model="fc_64_32"),
                    TrainHparams(optimizer="adam", lr=3e-3, training_steps=Step(3, "ep")))
    conv = TrainSpec(
        DataHparams(dataset="digits", batch_size=50, augment=True),
        ModelHparams(model="resnet_8", norm="batchnorm", width=0.5),
        TrainHparams(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, training_steps=Step(2, "ep"),
                     milestones=(Step(20, "it"),)))
    return [mlp, conv]


def _train(jobs: list[Job], graph: str) -> list[dict]:
    data = load_dataset(jobs[0].spec.data, device="cuda")
    train_population(jobs, data, EngineOptions(device="cuda", cuda_graph=graph, checkpoint_every=None))
    return [RunDir(j.run_dir).load_tensors("states/final.pt") for j in jobs]


@pytest.mark.parametrize("which", [0, 1])
def test_graph_equals_eager(tmp_path: Path, which: int) -> None:
    spec = specs()[which]
    mask = None
    if which == 0:
        g = torch.Generator().manual_seed(0)
        mask = {"layers.0.weight": torch.rand(64, 64, generator=g) < 0.3}
    runs = {}
    for graph in ("auto", "off"):
        jobs = [Job(spec, r, tmp_path / graph / str(r), mask=mask) for r in range(2)]
        runs[graph] = (_train(jobs, graph), [RunDir(j.run_dir) for j in jobs])
    for (fa, ra), (fb, rb) in zip(zip(*runs["auto"], strict=True), zip(*runs["off"], strict=True), strict=True):
        assert ra.done["final_test_accuracy"] == pytest.approx(rb.done["final_test_accuracy"], abs=0.002)
        for k in fa:
            assert torch.allclose(fa[k], fb[k], atol=1e-3), k
        if mask is not None:
            assert torch.all(fa["layers.0.weight"][~mask["layers.0.weight"]] == 0)


def test_population_equals_alone_on_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TF32 convolutions round differently in grouped and dense form; compare in true fp32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    spec = specs()[1]
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(1, "ep")))
    together = _train([Job(spec, r, tmp_path / "t" / str(r)) for r in range(3)], "auto")
    for r in range(3):
        (alone,) = _train([Job(spec, r, tmp_path / "a" / str(r))], "auto")
        for k in alone:
            assert torch.allclose(alone[k], together[r][k], atol=1e-4), (r, k, (alone[k] - together[r][k]).abs().max())


def test_bf16_trains(tmp_path: Path) -> None:
    spec = specs()[0]
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, precision="bf16"))
    _train([Job(spec, 0, tmp_path / "bf16")], "auto")
    assert RunDir(tmp_path / "bf16").done["final_test_accuracy"] > 0.8


def _same_run_two_ways(tmp_path: Path, a: EngineOptions, b: EngineOptions, atol: float) -> None:
    """Train the BN ResNet for an epoch under options ``a`` and ``b`` (TF32 off) and compare the final weights."""
    spec = specs()[1]
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(1, "ep")))
    data = load_dataset(spec.data, device="cuda")
    finals = []
    for label, opts in (("a", a), ("b", b)):
        job = Job(spec, 0, tmp_path / label)
        train_population([job], data, opts)
        finals.append(RunDir(job.run_dir).load_tensors("states/final.pt"))
    for k, v in finals[0].items():
        assert torch.allclose(v, finals[1][k], atol=atol), (k, (v - finals[1][k]).abs().max())


def test_channels_last_weights_train_like_plain_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NHWC-ordered conv weights (the default on CUDA) change the memory layout, never the numbers."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    _same_run_two_ways(tmp_path, EngineOptions(device="cuda", channels_last="auto", checkpoint_every=None),
                       EngineOptions(device="cuda", channels_last="off", checkpoint_every=None), 1e-4)


def test_compiled_forward_inside_the_graph_trains_like_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    _same_run_two_ways(tmp_path, EngineOptions(device="cuda", compile=True, checkpoint_every=None),
                       EngineOptions(device="cuda", compile=False, checkpoint_every=None), 1e-3)


def test_late_joiner_under_the_graph_equals_eager(tmp_path: Path) -> None:
    """A rewinding sweep on the GPU: a member that joins at step k after the graph was captured trains exactly
    as in eager mode (its own clock group, learning rate and Adam step count)."""
    spec = specs()[0]
    data = load_dataset(spec.data, device="cuda")
    start = Job(spec, 0, tmp_path / "start", state_names={40: "rewind"})
    train_population([start], data, EngineOptions(device="cuda", checkpoint_every=None))
    rewind = RunDir(start.run_dir).load_tensors("states/rewind.pt")
    finals = {}
    for graph in ("auto", "off"):
        jobs = [Job(spec, 1, tmp_path / graph / "a"),
                Job(spec, 0, tmp_path / graph / "b", start_step=40, start_state=rewind)]
        train_population(jobs, data, EngineOptions(device="cuda", cuda_graph=graph, checkpoint_every=None))
        finals[graph] = [RunDir(j.run_dir).load_tensors("states/final.pt") for j in jobs]
    for a, b in zip(finals["auto"], finals["off"], strict=True):
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-4), k


@pytest.mark.parametrize("compile_", [False, True])
def test_hand_written_mlp_backward_inside_the_graph_trains_like_autograd(tmp_path: Path, compile_: bool) -> None:
    """An MLP population on CUDA with the hand-written backward (``mlp_backward="manual"``, and compiled as one
    function under ``--compile``), captured in the CUDA graph, ends where autograd's eager run ends."""
    spec = specs()[0]
    finals = []
    for k, opts in enumerate([EngineOptions(device="cuda", compile=compile_, mlp_backward="manual",
                                            checkpoint_every=None),
                              EngineOptions(device="cuda", cuda_graph="off", mlp_backward="autograd",
                                            checkpoint_every=None)]):
        jobs = [Job(spec, r, tmp_path / f"{k}_{r}") for r in range(3)]
        data = load_dataset(spec.data, device="cuda")
        train_population(jobs, data, opts)
        finals.append([RunDir(j.run_dir).load_tensors("states/final.pt") for j in jobs])
    for a, b in zip(*finals, strict=True):
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-3), key


def test_tf32_is_an_engine_option_recorded_in_spec_json(tmp_path: Path) -> None:
    """``--tf32`` turns TF32 matrix products on while the population trains (the process's setting is restored
    after) and every run's spec.json says so."""
    import json

    from lth.executor import LocalExecutor
    from lth.graph import Node

    spec = specs()[0]
    for flag in (True, False):
        node = Node(spec, 0, tmp_path / str(flag))
        LocalExecutor(options=EngineOptions(device="cuda", tf32=flag, checkpoint_every=None)).run([node])
        assert json.loads((node.path / "spec.json").read_text())["population"]["tf32_matmul"] is flag
        assert torch.backends.cuda.matmul.allow_tf32 is False  # only while the population trained
