"""``lth branch`` when the trunk it asks for is missing: which trunks exist and what differs, never a command
that silently starts a different experiment; the suggested `lth lottery` command is runnable as printed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from lth.cli import main
from lth.cli.branch import trunk_command


def lth(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_trunk_with_other_hyperparameters_is_named_with_the_flags_that_select_it(
        capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    root = str(tmp_path)
    code, _, err = lth(capsys, "lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "1ep",
                       "--root", root)
    assert code == 0, err
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = lth(capsys, "branch", "reinit", "--preset", "digits_mlp", "--levels", "1",
                         "--training-steps", "4ep", "--root", root)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "a trunk of preset digits_mlp exists with training_steps=1ep (yours: 4ep)" in line
    assert "add --training-steps 1ep" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing trained, nothing made
    # the flags it names select that trunk: the branch then trains off it
    code, _, err = lth(capsys, "branch", "reinit", "--preset", "digits_mlp", "--levels", "1",
                       "--training-steps", "1ep", "--root", root)
    assert code == 0, err


def test_no_trunk_at_all_suggests_the_lottery_command_that_makes_it(capsys: pytest.CaptureFixture,
                                                                     tmp_path: Path) -> None:
    argv = ["branch", "random-mask", "--preset", "digits_mlp", "--levels", "1-2", "--mask-mode", "global",
            "--training-steps", "1ep", "--root", str(tmp_path), "--json"]
    code, _, err = lth(capsys, *argv)
    assert code == 2
    command = err.split("`")[1]
    words = shlex.split(command)
    assert words[:2] == ["lth", "lottery"]
    assert "--mask-mode" not in words and "--json" not in words and words[-2:] == ["--levels", "2"]
    code, _, err = lth(capsys, *words[1:])  # runs as printed
    assert code == 0, err
    code, _, err = lth(capsys, *argv)
    assert code == 0, err


def test_trunk_command_drops_every_branch_option() -> None:
    cmd = trunk_command(["branch", "retrain", "--preset", "p", "--set", "lr=0.1", "momentum=0.9", "--dn-pool",
                         "layer", "--branch-seed=3", "--lr", "0.01", "--strict", "--levels", "1-4"], 4)
    assert cmd == "lth lottery --preset p --lr 0.01 --levels 4"


def test_unknown_branch_name_is_named_as_typed(capsys: pytest.CaptureFixture) -> None:
    """`lth branch reinitt` is a typo in the command's NAME, not in a --branches flag the user never typed."""
    code, _, err = lth(capsys, "branch", "reinitt", "--preset", "digits_mlp", "--levels", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lth branch NAME: unknown branch 'reinitt'; allowed: reinit," in err and "--branches" not in err


def test_set_schedule_past_the_end_is_refused_before_anything_is_written(capsys: pytest.CaptureFixture,
                                                                         tmp_path: Path) -> None:
    """`lth train --milestones 5ep --training-steps 3ep` is refused; so is the same schedule given to a retrained
    ticket as --set (digits_mlp: 46 it an epoch, 3ep = 138it), naming --set as typed, before the branch writes."""
    root = str(tmp_path)
    code, _, err = lth(capsys, "lottery", "--preset", "digits_mlp", "--levels", "0", "--training-steps", "3ep",
                       "--root", root)
    assert code == 0, err
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    common = ["--preset", "digits_mlp", "--levels", "0", "--training-steps", "3ep", "--root", root]
    for item in ["milestones=5ep", "warmup-steps=10ep", "milestones=139it"]:
        code, out, err = lth(capsys, "branch", "retrain", "--set", item, *common)
        assert code == 2 and out == ""
        assert err.strip() == (f"lth: error: --set {item.replace('-', '_')}: after the end of training "
                               f"(--training-steps 3ep = "
                               f"138it); allowed: a step from 0it to 138it (--training-steps)")
    # a length changed by --set is the end named
    code, _, err = lth(capsys, "branch", "retrain", "--set", "training_steps=2ep", "milestones=93it", *common)
    assert code == 2
    assert err.strip() == ("lth: error: --set milestones=93it: after the end of training (--set training_steps=2ep "
                           "= 92it); allowed: a step from 0it to 92it (--set training_steps)")
    # through lth lottery --branches too
    code, _, err = lth(capsys, "lottery", "--branches", "retrain", "--branch-levels", "0", "--set", "milestones=5ep",
                         *common)
    assert code == 2 and "--set milestones=5ep: after the end of training" in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing trained, nothing made
    code, _, err = lth(capsys, "branch", "retrain", "--set", "milestones=138it", *common)  # at the end: fine
    assert code == 0, err
