"""The executor: compatible nodes become populations, finished runs are skipped, sizes follow the device."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lth.data import load_dataset
from lth.engine.train import EngineOptions, population_key
from lth.executor import CPU_POPULATION_MAX_PARAMS, LocalExecutor, default_population
from lth.graph import Node
from lth.presets import get_preset
from lth.spec import Step


def test_grouping_and_skipping(tmp_path: Path) -> None:
    spec = get_preset("digits_mlp").spec
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(1, "ep")))
    other_lr = dataclasses.replace(spec, train=dataclasses.replace(spec.train, lr=1e-3))
    wider = dataclasses.replace(spec, model=dataclasses.replace(spec.model, width=2.0))
    assert population_key(spec) == population_key(other_lr) != population_key(wider)
    sizes: list[int] = []
    ex = LocalExecutor(options=EngineOptions(device="cpu", checkpoint_every=None), on_population=sizes.append)
    jobs = [Node(spec, 0, tmp_path / "a"), Node(other_lr, 0, tmp_path / "b"), Node(wider, 0, tmp_path / "c")]
    records = ex.run(jobs)
    assert sorted(sizes) == [1, 2]  # lr differs within a population; width does not
    assert [r["status"] for r in records] == ["complete"] * 3
    sizes.clear()
    assert ex.run(jobs) == records and sizes == []  # nothing trained twice
    ex.max_population = 1
    ex.run([Node(spec, r, tmp_path / f"r{r}") for r in range(3)])
    assert sizes == [1, 1, 1]


def test_cpu_default_population_follows_network_size() -> None:
    cpu = torch.device("cpu")
    digits = get_preset("digits_mlp").spec
    data = load_dataset(digits.data)
    assert default_population(digits, data, cpu) == 16
    big = dataclasses.replace(digits, model=dataclasses.replace(digits.model, model="fc_300_100"))
    assert default_population(big, data, cpu) == 1
    assert CPU_POPULATION_MAX_PARAMS < 64 * 300 + 300 * 100  # fc_300_100 on 8x8 digits is above it


def test_spec_json_records_node_population_and_data(tmp_path: Path) -> None:
    import json

    spec = get_preset("digits_mlp").spec
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(5, "it")))
    nodes = [Node(spec, r, tmp_path / f"r{r}") for r in range(2)]
    LocalExecutor(options=EngineOptions(device="cpu", checkpoint_every=None)).run(nodes)
    for n in nodes:
        rec = json.loads((n.path / "spec.json").read_text())
        assert rec["node"] == n.digest
        assert rec["population"]["size"] == 2 and rec["population"]["torch"] == torch.__version__
        assert sorted(rec["population"]["members"]) == sorted(str(m.path.resolve()) for m in nodes)
        source = rec["data_source"]
        assert source["dataset"] == "digits" and len(source["files"][0]["sha256"]) == 64
