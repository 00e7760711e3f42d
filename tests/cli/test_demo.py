"""``lth demo`` (reduced): trains the trunk and both branches, writes the report, prints its path and the
sparsest level's accuracies; run again it trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lth.cli import main


def test_demo_small(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    argv = ["demo", "--root", str(tmp_path), "--levels", "2", "--training-steps", "1ep", "--replicates", "1"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    index = Path(out.strip())
    assert index == (tmp_path / "report" / "index.html").resolve() and index.is_file()
    assert "sparsest level 2 (density 64.8%)" in err  # digits_mlp: fc layers keep 0.8^2, the output 0.9^2
    assert "mean test accuracy (the digits test split, 297 examples) over" in err  # the split the numbers are on
    for name in ("ticket", "reinit", "random-mask"):
        assert f"{name} " in err.split("sparsest level")[1]
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "training a population" not in err
    doc = json.loads(out)
    assert set(doc["accuracy"]) == {"ticket", "reinit", "random-mask"}
    assert doc["level"] == 2 and len(doc["runs"]) == 3 and len(doc["branches"]) == 4
    ticket = [r["final_test_accuracy"] for r in doc["runs"] if r["level"] == 2]
    assert doc["accuracy"]["ticket"] == pytest.approx(ticket[0])


def test_demo_bad_flags(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    for argv, named in ((["--levels", "0"], "--levels"), (["--training-steps", "1xx"], "--training-steps"),
                        (["--data-dir", str(tmp_path / "none")], "--data-dir")):
        code = main(["demo", "--root", str(tmp_path / "s"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and named in err
    assert not (tmp_path / "s").exists()
