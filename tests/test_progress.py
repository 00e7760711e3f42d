"""Progress without a terminal: plain lines that say which runs train, their iterations and accuracy at each
evaluation, and runs done of total."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lth.cli import main
from lth.progress import Progress


def test_plain_lines_name_populations_iterations_and_runs(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code = main(["lottery", "--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--training-steps",
                 "2ep", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "4 runs in this command: 0 already trained, 4 to train" in err
    pops = re.findall(r"training a population of (\d+) runs: (.*)", err)
    assert [int(n) for n, _ in pops] == [2, 2]
    level0 = pops[0][1].split(", ")
    assert [Path(n).parts[1:] for n in level0] == [("replicate_0", "level_0"), ("replicate_1", "level_0")]
    assert level0[0].startswith("lottery_") and (tmp_path / level0[0]).is_dir()
    assert pops[1][1].endswith("replicate_1/level_1")
    # digits: 1500 training examples, batch 32 -> 46 iterations an epoch; evaluated every epoch from 0
    evals = re.findall(r"iteration (\d+) of (\d+): test accuracy (0\.\d{4}) \(min (0\.\d{4}), max (0\.\d{4})\)", err)
    assert [(int(a), int(b)) for a, b, *_ in evals] == [(0, 92), (46, 92), (92, 92)] * 2
    for _, _, mean, lo, hi in evals:
        assert float(lo) <= float(mean) <= float(hi)
    assert re.search(r"runs done: 2 of 4; elapsed \d+s, about \d+s left", err)
    code = main(["lottery", "--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--training-steps",
                 "2ep", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert "to train" not in err and "training a population" not in err  # nothing left: no progress lines


def test_eta_at_the_pace_of_this_command(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 130.0])
    monkeypatch.setattr("lth.progress.time.perf_counter", lambda: next(clock))
    p = Progress()
    p.graph_event("graph", {"total": 10, "done": 4, "state": {}})  # 4 were trained before this command
    assert p.eta(4, 10) is None
    assert p.eta(7, 10) == pytest.approx(30.0 / 3 * 3)  # 3 runs in 30 s, 3 left


def test_a_population_another_process_took_does_not_shift_the_names(capsys: pytest.CaptureFixture) -> None:
    p = Progress()
    p.graph_event("wave", {"ready": 2, "populations": [1, 1], "names": [["r/a"], ["r/b"]]})
    p.graph_event("skipped", {"names": ["r/a"]})  # trained by another command on the same store
    p.population(1)
    assert "training a population of 1 run: r/b" in capsys.readouterr().err


def test_runs_that_are_the_same_run_as_another_are_said_not_to_train(capsys: pytest.CaptureFixture,
                                                                      tmp_path: Path) -> None:
    # a rewinding sweep: every trunk's level 0 is one dense run, trained once and filled into the other trunks
    code = main(["lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "1ep", "--rewind", "0it",
                 "5it", "10it", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("6 runs in this command: 0 already trained, 6 to train (2 of the runs are the same run as another, "
            "filled from it, not trained again)") in err
    assert sum(int(n) for n in re.findall(r"training a population of (\d+) run", err)) == 4  # 6 - 2 trained
