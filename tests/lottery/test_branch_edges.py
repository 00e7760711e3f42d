"""Branch edge cases: level 0 for one-shot pruning, a retrain whose start lies past its end, a diverged trunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import lth

from lth.errors import UserError


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


@pytest.mark.parametrize("item, named", [("lr=0", "--set lr=0: bad value"), ("momentum=1.5", "--set momentum=1.5")])
def test_a_bad_set_value_names_the_set_item(item: str, named: str) -> None:
    """``lth branch retrain --set lr=0`` names ``--set lr=0``, the flag the user typed (it said ``--lr``)."""
    from lth.lottery.branches.retrain import retrained_spec
    from lth.presets import PRESETS

    with pytest.raises(UserError) as e:
        retrained_spec(PRESETS["digits_mlp"].spec, (item,))
    assert str(e.value).startswith(named) and "--lr" not in str(e.value) and "--momentum" not in str(e.value), e.value


def test_save_states_inside_a_branch_run_longer_than_its_trunk(tmp_path: Path) -> None:
    """``--save-states`` is checked against the runs asked for: a fine-tuning run of 4ep keeps 3ep though its
    trunk trained for 2ep (it was refused as past the trunk's end)."""
    trunk = ["--preset", "digits_mlp", "--training-steps", "2ep", "--levels", "1", "--root", str(tmp_path)]
    assert lth("lottery", *trunk)[0] == 0
    code, out, err = lth("branch", "finetune", *trunk, "--finetune-steps", "4ep", "--save-states", "3ep", "--json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert "3ep" in run["states"]
    code, _, err = lth("branch", "finetune", *trunk, "--finetune-steps", "4ep", "--save-states", "5ep")
    assert code == 2 and "--save-states 5ep: after the end of training" in err
