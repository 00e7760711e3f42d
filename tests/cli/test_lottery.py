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
