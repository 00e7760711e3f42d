"""The store: atomic writes, the state index, metrics round trips, every path from one module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lth.store import RunDir, run_path
from lth.store.run import atomic_write_bytes


def test_atomic_write_leaves_old_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left behind


def test_states_metrics_and_paths(tmp_path: Path) -> None:
    run = RunDir(run_path(tmp_path, "lottery", "abc", 2, level=3, branch="reinit_x"))
    assert run.path == (tmp_path / "lottery_abc" / "replicate_2" / "branch_reinit_x" / "level_3").resolve()
    state = {"w": torch.arange(6.0).view(2, 3)}
    run.save_state("init", state, 0)
    run.save_state("final", state, 100)
    assert run.state_iterations() == {"init": 0, "final": 100}
    assert set(run.states()) == {"init", "final"} and all(Path(p).is_absolute() for p in run.states().values())
    loaded = torch.load(run.states()["final"], weights_only=True)
    assert torch.equal(loaded["w"], state["w"])
    rows = [{"iteration": 0, "step": "0it", "train_loss": None, "test_loss": 2.5, "test_accuracy": 0.1, "lr": 0.1},
            {"iteration": 10, "step": "10it", "train_loss": 1.5, "test_loss": 1.0, "test_accuracy": 0.75, "lr": 0.1}]
    run.write_metrics(rows)
    back = run.read_metrics()
    assert [r["iteration"] for r in back] == [0, 10] and back[1]["test_accuracy"] == 0.75
    assert back[0]["train_loss"] is None and back[0]["step"] == "0it"
    assert run.done is None
    run.write_json("done.json", {"status": "complete"}, durable=True)
    assert run.done == {"status": "complete"}
