"""The store: atomic writes, the state index, metrics round trips, every path from one module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lth.errors import UserError
from lth.store import RunDir, run_path
from lth.store.run import DamagedFile, atomic_write_bytes


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


def test_files_get_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        RunDir(tmp_path / "run").save_tensors("states/final.pt", {"w": torch.zeros(2)})
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run" / "states" / "final.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_metrics_line_ends_float32_lr_and_open_columns(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    lr32 = float(np.float32(0.0012))  # what the engine reads from its float32 learning-rate table
    assert repr(lr32) != "0.0012"  # 0.0012000000569... : the problem being solved
    rows = [{"iteration": 0, "step": "0it", "test_loss": 2.0, "lr": lr32, "zeta": 1.5},
            {"iteration": 5, "step": "5it", "test_loss": 1.0, "lr": float(np.float32(0.1)), "alpha": 7}]
    run.write_metrics(rows)
    raw = (tmp_path / "metrics.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert lines[0] == "iteration,step,train_loss,test_loss,test_accuracy,val_loss,val_accuracy,lr,alpha,zeta"
    assert lines[1].split(",")[7] == "0.0012" and lines[2].split(",")[7] == "0.1"
    back = run.read_metrics()
    assert back[0]["lr"] == 0.0012 and np.float32(back[0]["lr"]) == np.float32(lr32)
    assert back[0]["zeta"] == 1.5 and back[0]["alpha"] is None and back[1]["alpha"] == 7


def _store_with_run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.write_json("spec.json", {"kind": "train"})
    run.write_metrics([{"iteration": i, "step": f"{i}it", "test_loss": 1.0 / (i + 1), "lr": 0.1} for i in range(3)])
    run.save_state("final", {"w": torch.arange(100.0)}, 2)
    run.write_json("done.json", {"status": "complete", "final_test_accuracy": 0.5})
    return run


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.mark.parametrize("name", ["done.json", "metrics.csv", "states/final.pt", "spec.json"])
def test_damaged_files_are_named(tmp_path: Path, name: str) -> None:
    run = _store_with_run(tmp_path)
    assert run.complete() and run.finished() and run.damaged() == []
    _truncate(run.path / name)
    assert run.damaged() == [str(run.path / name)]
    reader = {"done.json": lambda: run.done, "spec.json": lambda: run.read_json("spec.json"),
              "metrics.csv": run.read_metrics, "states/final.pt": lambda: run.load_tensors("states/final.pt")}[name]
    with pytest.raises(DamagedFile) as e:
        reader()
    assert isinstance(e.value, UserError) and e.value.path == run.path / name
    assert str(run.path / name) in str(e.value) and "\n" not in str(e.value)
    assert run.complete() == (name in ("metrics.csv", "spec.json"))  # complete() reads done.json and final.pt only


def test_metrics_damage_kinds(tmp_path: Path) -> None:
    run = _store_with_run(tmp_path)
    p = run.path / "metrics.csv"
    good = p.read_text()
    for bad in ("", good.rstrip("\n"), good + "3,3it\n", good.replace("0.5", "0.x"), "a,b\n1,2\n"):
        p.write_text(bad)
        with pytest.raises(DamagedFile):
            run.read_metrics()
    p.write_text(good.replace("\n", "\r\n"))  # a store written before the switch to \n still reads
    assert [r["iteration"] for r in run.read_metrics()] == [0, 1, 2]


def test_finished_complete_and_diverged(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert not run.finished() and not run.complete()
    run.write_json("done.json", {"status": "diverged"})
    assert run.finished() and not run.complete()
    run.write_json("done.json", {"status": "complete"})
    assert not run.finished() and not run.complete()  # complete but its final state is missing
    run.save_state("final", {"w": torch.zeros(1)})
    assert run.finished() and run.complete()


def test_lock_without_waiting_raises_busy_and_busy_creates_nothing(tmp_path: Path) -> None:
    from lth.store.run import Busy

    run = RunDir(tmp_path / "r")
    assert not run.busy() and not run.path.exists()  # probing creates no directory
    with run.lock():
        assert run.busy()  # a second open lock (another process, or this one) sees it held
        with pytest.raises(Busy, match="locked by another process"):
            with RunDir(run.path).lock(wait=False):
                pass
    assert not run.busy()
    with run.lock(wait=False):
        assert run.busy()


def test_hessian_rows_round_trip_and_damage_is_named(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    rows = [{"state": "init", "rank": 0, "eigenvalue": 2.5, "which": "largest"},
            {"state": "final", "rank": 0, "eigenvalue": -0.25, "which": "largest"}]
    run.write_hessian(rows)
    assert run.read_hessian() == rows
    p = run.path / "hessian.csv"
    good = p.read_bytes()
    for bad in (b"", good[:-1], b"state,rank\ninit,0,9\n", good.replace(b"2.5", b'"2.5'), b"\xff\xfe" + good,
                b"a,b\n1,2\n"):
        p.write_bytes(bad)
        with pytest.raises(DamagedFile) as e:
            run.read_hessian()
        assert e.value.path == p and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["done.json", "spec.json", "states/index.json"])
@pytest.mark.parametrize("text", ["[1]\n", "\"complete\"\n", "null\n"])
def test_json_that_is_not_an_object_is_damaged(tmp_path: Path, name: str, text: str) -> None:
    """Valid JSON of the wrong shape (garbage written by hand, another tool's file) is named like a truncated file,
    never an AttributeError in a reader."""
    run = _store_with_run(tmp_path)
    (run.path / name).write_text(text)
    assert run.damaged() == [str(run.path / name)]
    reader = {"done.json": lambda: run.done, "spec.json": lambda: run.spec,
              "states/index.json": run.state_iterations}[name]
    with pytest.raises(DamagedFile) as e:
        reader()
    assert e.value.path == run.path / name
    assert run.finished() == run.complete() == (name != "done.json")


def test_a_done_json_with_an_unknown_status_is_damaged(tmp_path) -> None:
    """done.json says how a run ended (complete or diverged); any other status (a hand edit, a foreign file) is a
    damaged file, named, so that results do not list it as is and a rerun retrains the run."""
    from lth.store import RunDir
    from lth.store.run import DONE_STATUSES

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    for status in DONE_STATUSES:
        run.write_done({"status": status})
        assert run.damaged() == []
    for obj in ({"status": "bogus"}, {}, {"status": None}):
        run.write_done(obj)
        assert run.damaged() == [str(run.path / "done.json")]
