"""`lth lottery` from the command line: what it says where the results are, and its --branch-levels checks."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lth


def test_a_rewinding_sweep_names_every_experiment_directory(tmp_path: Path) -> None:
    root = tmp_path / "s"
    common = ("--preset", "digits_mlp", "--levels", "1", "--training-steps", "4it", "--root", str(root))
    code, out, err = lth("lottery", *common, "--rewind", "0it", "2it", "--json")
    assert code == 0, err
    experiments = {str(Path(r["path"]).parent.parent) for r in json.loads(out)["runs"]}
    assert len(experiments) == 2  # one trunk per rewind step, each its own lottery_<hash>
    code, _, err = lth("lottery", *common, "--rewind", "0it", "2it")
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("results in")]
    assert len(said) == 1
    for e in experiments:
        assert e in said[0], said[0]


def test_bad_branch_levels_name_the_flag_and_write_nothing(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for value, named in (("1-x", "'1-x'"), ("5", "5")):
        code, out, err = lth("lottery", "--preset", "digits_mlp", "--levels", "2", "--branches", "reinit",
                             "--branch-levels", value, "--training-steps", "4it", "--root", str(root))
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lth: error: --branch-levels"), err
        assert named in lines[0]
        assert not root.exists()
    code, out, err = lth("lottery", "--preset", "digits_mlp", "--levels", "2", "--branches", "reinit",
                         "--branch-levels", "2", "--training-steps", "4it", "--root", str(root), "--json")
    assert code == 0, err
    assert [r["level"] for r in json.loads(out)["branches"]] == [2]


def test_save_states_are_kept_by_every_trunk_level_and_branch(tmp_path: Path) -> None:
    """--save-states on lottery: every level and branch keeps the given steps that lie in its run (a level
    rewound to 1it keeps 3it, not 0it: its weights before 1it are level 0's; reinit trains from 0it). The saved
    state is the weights at that step: between init and final. Asking for another step later replays the finished
    runs to record it."""
    import torch

    from lth.store import RunDir

    root = tmp_path / "s"
    common = ("--preset", "digits_mlp", "--model", "fc_8", "--levels", "1", "--training-steps", "4it", "--rewind",
              "1it", "--branches", "reinit", "--root", str(root), "--json")
    code, out, err = lth("lottery", *common, "--save-states", "0it", "1it", "3it")
    assert code == 0, err
    doc = json.loads(out)
    level0, level1 = doc["runs"]
    (branch,) = doc["branches"]
    assert set(level0["states"]) == {"init", "0it", "rewind", "3it", "final"}  # 1it: kept already as "rewind"
    assert set(level1["states"]) == {"rewind", "3it", "final"}  # starts at 1it: 0it is not its own
    assert {"0it", "3it"} <= set(branch["states"])  # reinit trains from step 0: its own run holds 0it
    run = RunDir(Path(level0["path"]))
    init, mid, final = (run.load_state(n) for n in ("init", "3it", "final"))
    assert all(torch.equal(init[k], run.load_state("0it")[k]) for k in init)
    assert any(not torch.equal(mid[k], init[k]) for k in mid) and any(not torch.equal(mid[k], final[k]) for k in mid)
    code, out, err = lth("lottery", *common, "--save-states", "2it")  # finished runs replay to keep 2it
    assert code == 0, err
    assert all("2it" in r["states"] for r in json.loads(out)["runs"] + json.loads(out)["branches"]), out
