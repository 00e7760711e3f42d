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


def test_a_run_another_process_trains_is_left_to_it(tmp_path: Path) -> None:
    """Two commands on one store split the work: a ready node whose lock is held elsewhere is skipped, the
    others train meanwhile, and the held one trains once released (it was not finished by the holder)."""
    import threading
    import time

    from lth.store import RunDir

    spec = get_preset("digits_mlp").spec
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, training_steps=Step(20, "it")))
    a, b = Node(spec, 0, tmp_path / "a"), Node(spec, 1, tmp_path / "b")
    sizes: list[int] = []
    ex = LocalExecutor(options=EngineOptions(device="cpu", checkpoint_every=None), max_population=1,
                       on_population=sizes.append)
    held = RunDir(a.path).lock()
    held.__enter__()  # another process trains a
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(records=ex.run([a, b])), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 120
        while not RunDir(b.path).finished() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert RunDir(b.path).finished()  # b trained while a was held (before: queued behind a's lock)
        time.sleep(1.0)
        assert t.is_alive() and not RunDir(a.path).finished() and sizes == [1]  # waiting for a, not training it
    finally:
        held.__exit__(None, None, None)
    t.join(120)
    assert not t.is_alive() and sizes == [1, 1]
    assert [r["status"] for r in out["records"]] == ["complete", "complete"]


def test_train_group_without_waiting_skips_a_busy_group(tmp_path: Path) -> None:
    from lth.executor.work import train_group
    from lth.store import RunDir

    spec = get_preset("digits_mlp").spec
    node = Node(spec, 0, tmp_path / "a")
    with RunDir(node.path).lock():
        assert train_group([node], load_dataset(spec.data), EngineOptions(device="cpu"), wait=False) is None
    assert not RunDir(node.path).finished()
