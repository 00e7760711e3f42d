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
