"""The divergence summary and its exit codes (CONTRACT: 1 when every run diverged, or any with --strict)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lth.cli import main
from lth.cli.output import report_divergence


def test_report_divergence_exit_codes(capsys: pytest.CaptureFixture) -> None:
    ok, bad = {"status": "complete", "path": "/r/a"}, {"status": "diverged", "path": "/r/b"}
    assert report_divergence([ok, ok]) == 0 and capsys.readouterr().err == ""
    assert report_divergence([ok, bad]) == 0
    assert capsys.readouterr().err.strip() == "lth: 1 of 2 runs diverged: /r/b"
    assert report_divergence([ok, bad], strict=True) == 1
    assert report_divergence([bad, bad]) == 1
    assert report_divergence([ok, {"status": "failed", "path": "/r/c", "error": "boom"}]) == 1
    assert "lth: failed: /r/c: boom" in capsys.readouterr().err


def test_every_run_diverged_exits_1_with_one_summary(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code = main(["train", "--preset", "digits_mlp", "--lr", "1e30", "--optimizer", "sgd", "--norm", "none",
                 "--training-steps", "1ep", "--replicates", "2", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("lth: 2 of 2 runs diverged:") == 1


def test_a_bad_pruning_value_names_the_flag_as_typed(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    for flag, value in (("--pruning-fraction", "abc"), ("--pruning-seed", "1.5")):
        code = main(["lottery", "--preset", "digits_mlp", "--levels", "1", flag, value, "--root", str(tmp_path / "s")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"lth: error: {flag}: bad value {value!r}"), err
        assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("argv", "named"), [
    (["train", "--preset", "digits_mlp", "--lr-rate", "0.1"], ["--lr-rate", "did you mean --lr", "lth train --help"]),
    (["train", "--preset", "digits_mlp", "--streams", "4"], ["--streams", "lth train --help"]),
    (["lottery", "--preset", "digits_mlp", "--levels", "1", "--brnches", "reinit"],
     ["--brnches", "did you mean --branches", "lth lottery --help"]),
    (["lotery", "--preset", "digits_mlp", "--levels", "1"], ["'lotery'", "did you mean lottery", "allowed: train"]),
    (["train", "--preset", "digits_mlp", "--cuda-graph", "of"], ["--cuda-graph", "'of'", "allowed: auto, off"]),
    # a flag of another command is named as such, not as a near spelling of an unrelated flag (--set ~ --preset)
    (["train", "--preset", "digits_mlp", "--branches", "reinit"],
     ["--branches is a flag of `lth lottery`, not of `lth train`"]),
    (["train", "--preset", "digits_mlp", "--set", "lr=0.1"],
     ["--set is a flag of `lth lottery`, `lth branch`", "its own flag: --lr 0.1"]),
    (["train", "--preset", "digits_mlp", "--set=weight_decay=0.1"], ["its own flag: --weight-decay 0.1"]),
])
def test_unknown_flags_commands_and_choices_suggest_the_near_ones(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                                    argv: list[str], named: list[str]) -> None:
    code = main([*argv, "--root", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("lth: error: ")
    for word in named:
        assert word in err, err
    assert not (tmp_path / "s").exists()


def test_tf32_on_the_cpu_says_it_does_nothing(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    argv = ["train", "--preset", "digits_mlp", "--training-steps", "1it", "--device", "cpu", "--root", str(tmp_path)]
    assert main([*argv, "--tf32"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "--tf32" in line]
    assert len(warned) == 1 and "no effect" in warned[0] and "cpu" in warned[0], warned
    assert main(argv) == 0
    assert "--tf32" not in capsys.readouterr().err
