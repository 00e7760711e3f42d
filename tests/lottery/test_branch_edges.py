"""Branch edge cases: level 0 for one-shot pruning, a retrain whose start lies past its end, a diverged trunk."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lth


def test_oneshot_at_level_0_and_retrain_past_its_end(tmp_path: Path) -> None:
    root = str(tmp_path)
    trunk = ["--preset", "digits_mlp", "--training-steps", "1ep", "--rewind", "20it", "--root", root]
    assert lth("lottery", "--levels", "1", *trunk)[0] == 0
    code, out, err = lth("branch", "oneshot", "--levels", "0-1", *trunk, "--json")
    assert code == 0, err
    runs = {r["level"]: r for r in json.loads(out)["runs"]}
    assert runs[0]["density"] == 1.0 and runs[1]["density"] < 1.0
    assert runs[0]["rewind_iteration"] == 20
    before = sorted(p for p in tmp_path.rglob("*"))
    code, _, err = lth("branch", "retrain", "--levels", "1", *trunk, "--set", "training_steps=10it")
    assert code == 2 and "after the end of training" in err and len(err.strip().splitlines()) == 1
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_branch_of_a_diverged_level_says_so(tmp_path: Path) -> None:
    trunk = ["--preset", "digits_mlp", "--training-steps", "1ep", "--optimizer", "sgd", "--lr", "1e6",
             "--root", str(tmp_path)]
    assert lth("lottery", "--levels", "1", *trunk)[0] == 0
    code, _, err = lth("branch", "reinit", "--levels", "0", *trunk)
    assert code == 2 and "diverged" in err
