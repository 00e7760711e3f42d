"""A finished run asked for states it did not keep gets them by deterministic replay: the same tensors, bit for
bit on the CPU, as a run that kept them from the start; for a plain run and for a lottery level."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lth.api as api
from lth.cli import main
from lth.graph import Node
from lth.spec import Step
from lth.store import RunDir


def lth(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def same_states(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        x, y = RunDir(a).load_tensors(f"states/{name}.pt"), RunDir(b).load_tensors(f"states/{name}.pt")
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), (name, k)


def test_save_states_after_the_run_replays_it(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    base = ["train", "--preset", "digits_mlp", "--training-steps", "2ep", "--replicates", "2"]
    code, err = lth(capsys, *base, "--root", str(tmp_path / "late"))
    assert code == 0, err
    late = sorted((tmp_path / "late").glob("train_*/replicate_*"))
    assert set(RunDir(late[0]).states()) == {"init", "final"}
    code, err = lth(capsys, *base, "--save-states", "10it", "1ep", "--root", str(tmp_path / "late"))
    assert code == 0, err
    assert "already trained" not in err
    assert err.count("replaying it") == 2
    code, err = lth(capsys, *base, "--save-states", "10it", "1ep", "--root", str(tmp_path / "early"))
    assert code == 0, err
    early = sorted((tmp_path / "early").glob("train_*/replicate_*"))
    for a, b in zip(late, early, strict=True):
        assert not (a / ".replay").exists()
        assert set(RunDir(a).states()) == {"init", "final", "10it", "1ep"}
        assert RunDir(a).state_iterations() == RunDir(b).state_iterations()
        same_states(a, b, ["10it", "1ep", "final"])
    code, err = lth(capsys, *base, "--save-states", "10it", "1ep", "--root", str(tmp_path / "late"))
    assert "already trained: nothing to do" in err and "replaying" not in err


def test_lottery_level_replays_with_its_mask(tmp_path: Path) -> None:
    plan = api.lottery("digits_mlp", 1, root=tmp_path / "late", training_steps="1ep")
    api.run(plan)
    keep = (("20it", Step.parse("20it")),)
    level1: Node = plan.trunk_nodes()[1].with_keep(keep)
    api.run([level1])
    early = api.lottery("digits_mlp", 1, root=tmp_path / "early", training_steps="1ep")
    early_nodes = [n.with_keep(keep) for n in early.trunk_nodes()]
    api.run(early_nodes)
    same_states(level1.path, early_nodes[1].path, ["20it", "final"])
    assert not (level1.path / ".replay").exists()
    assert "20it" not in RunDir(plan.trunk_nodes()[0].path).states()  # only the node asked for is replayed


def test_telemetry_asked_after_the_run_replays_it(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    base = ["train", "--preset", "digits_mlp", "--training-steps", "1ep"]
    tele = ["--telemetry-every", "10it"]
    assert lth(capsys, *base, "--root", str(tmp_path / "late"))[0] == 0
    (late,) = sorted((tmp_path / "late").glob("train_*/replicate_*"))
    assert not RunDir(late).has_telemetry()
    code, err = lth(capsys, *base, *tele, "--root", str(tmp_path / "late"))
    assert code == 0 and "lacks telemetry" in err, err
    assert lth(capsys, *base, *tele, "--root", str(tmp_path / "early"))[0] == 0
    (early,) = sorted((tmp_path / "early").glob("train_*/replicate_*"))
    assert (late / "telemetry.csv").read_text() == (early / "telemetry.csv").read_text()
    assert not (late / ".replay").exists()


@pytest.mark.parametrize("other_adds_it", [True, False])
def test_a_replay_waits_for_the_process_holding_its_run(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                        other_adds_it: bool) -> None:
    """Two commands asking for one missing state: the replay holds the run's lock. One that finds the run locked
    waits; then it replays only if the state is still missing (it crashed on the other's deleted .replay/)."""
    import threading
    import time

    keep = (("20it", Step.parse("20it")),)
    plan = api.lottery("digits_mlp", 0, root=tmp_path / "late", training_steps="1ep")
    api.run(plan)
    node: Node = plan.trunk_nodes()[0]
    ref = api.lottery("digits_mlp", 0, root=tmp_path / "early", training_steps="1ep").trunk_nodes()[0].with_keep(keep)
    api.run([ref])
    capsys.readouterr()
    held = threading.Event()

    def other() -> None:  # another process: holds the run, and (or not) records the state itself meanwhile
        run = RunDir(node.path)
        with run.lock():
            held.set()
            time.sleep(1.0)
            if other_adds_it:
                run.save_state("20it", RunDir(ref.path).load_state("20it"), 20)

    t = threading.Thread(target=other)
    t.start()
    held.wait()
    api.run([node.with_keep(keep)])
    t.join()
    err = capsys.readouterr().err
    assert ("replaying it" in err) is not other_adds_it, err
    same_states(node.path, ref.path, ["20it", "final"])
    assert not (node.path / ".replay").exists()


def test_a_step_held_under_another_name_is_copied_not_replayed(capsys: pytest.CaptureFixture,
                                                              tmp_path: Path) -> None:
    """``--save-states 1ep`` then ``--save-states 46it`` (one iteration, 46 steps an epoch on digits): the state is
    saved under the second name from the first, without training the run again."""
    base = ["train", "--preset", "digits_mlp", "--training-steps", "2ep", "--root", str(tmp_path)]
    assert lth(capsys, *base, "--save-states", "1ep")[0] == 0
    (run,) = sorted(tmp_path.glob("train_*/replicate_*"))
    it = RunDir(run).state_iterations()["1ep"]
    code, err = lth(capsys, *base, "--save-states", f"{it}it")
    assert code == 0 and "replaying" not in err, err
    same = RunDir(run).load_state(f"{it}it"), RunDir(run).load_state("1ep")
    assert same[0].keys() == same[1].keys() and all(torch.equal(same[0][k], same[1][k]) for k in same[0])
