"""The `lth` command as scripts use it: JSON on stdout, one-line errors with exit code 2, nothing trained twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lth.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "nope"],
    ["train", "--preset", "digits_mlp", "--dataset", "imagenet"],
    ["train", "--preset", "digits_mlp", "--model", "transformer"],
    ["train", "--preset", "digits_mlp", "--training-steps", "5xyz"],
    ["train", "--preset", "digits_mlp", "--lr", "-0.1"],
    ["train", "--preset", "digits_mlp", "--batch-size", "0"],
    ["train", "--preset", "digits_mlp", "--replicates", "0"],
    ["train", "--preset", "digits_mlp", "--batch-size", "5000"],
    ["train", "--preset", "digits_mlp", "--save-states", "99ep"],
    ["train", "--preset", "lenet_300_100", "--data-dir", "{empty}"],
    ["frobnicate"],
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path: Path, argv: list[str]) -> None:
    root = tmp_path / "store"
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    code, out, err = run(capsys, *argv, "--root", str(root))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("lth: error:")
    assert not root.exists()
    assert list(empty.iterdir()) == []  # a failed download attempt leaves nothing behind either


def test_train_json_then_nothing_twice(capsys, tmp_path: Path) -> None:
    root = tmp_path / "store"
    args = ["train", "--preset", "digits_mlp", "--training-steps", "2ep", "--replicates", "3", "--root", str(root),
            "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0
    doc = json.loads(out)
    runs = doc["runs"]
    assert [r["replicate"] for r in runs] == [0, 1, 2]
    for r in runs:
        assert Path(r["path"]).is_absolute() and Path(r["path"]).exists()
        assert 0.5 < r["final_test_accuracy"] <= 1.0
        assert set(r["states"]) == {"init", "final"}
        assert all(Path(p).is_absolute() for p in r["states"].values())
    assert "trained 1 population (sizes 3)" in err
    mtime = (Path(runs[0]["path"]) / "states" / "final.pt").stat().st_mtime_ns
    code, out2, err2 = run(capsys, *args)
    assert code == 0 and json.loads(out2) == doc
    assert "already trained" in err2 and "population" not in err2
    assert (Path(runs[0]["path"]) / "states" / "final.pt").stat().st_mtime_ns == mtime
    # results: one tidy row per run per evaluation
    code, out, _ = run(capsys, "results", "--root", str(root), "--json")
    rows = json.loads(out)["rows"]
    assert len(rows) == 3 * 3  # evaluations at 0, 1ep, 2ep for each replicate
    assert {r["replicate"] for r in rows} == {0, 1, 2}
    code, out, _ = run(capsys, "results", "--root", str(root), "--csv")
    assert out.splitlines()[0].count(",") >= 5 and len(out.splitlines()) == 10


def test_max_population_one_trains_one_at_a_time(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "train", "--preset", "digits_mlp", "--training-steps", "1ep", "--replicates", "2",
                       "--max-population", "1", "--root", str(tmp_path))
    assert code == 0 and "trained 2 populations (sizes 1, 1)" in err


def test_presets_and_preset_help(capsys) -> None:
    code, out, _ = run(capsys, "presets")
    for name in ("lenet_300_100", "conv2", "conv4", "conv6", "lenet5", "resnet20", "resnet20_low", "resnet20_warmup",
                 "resnet20_fixup", "resnet20_fc", "vgg16", "vgg19", "digits_mlp"):
        assert name in out
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "lenet_300_100", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--lr" in out and "[preset: 0.0012]" in out and "[preset: 50000it]" in out


def test_save_states_at_named_steps(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "train", "--preset", "digits_mlp", "--training-steps", "2ep", "--save-states", "0it",
                       "10it", "1ep", "--root", str(tmp_path), "--json")
    assert code == 0
    (rec,) = json.loads(out)["runs"]
    assert set(rec["states"]) == {"init", "0it", "10it", "1ep", "final"}
    import torch

    s10, s1 = (torch.load(rec["states"][k], weights_only=True) for k in ("10it", "1ep"))
    assert not torch.equal(s10["layers.0.weight"], s1["layers.0.weight"])


def test_the_last_preset_flag_wins_everywhere(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "train", "--preset", "lenet_300_100", "--preset", "digits_mlp", "--training-steps",
                       "1ep", "--root", str(tmp_path), "--json")
    assert code == 0
    (rec,) = json.loads(out)["runs"]
    spec = json.loads((Path(rec["path"]) / "spec.json").read_text())
    assert spec["preset"] == "digits_mlp" and spec["data"]["dataset"] == "digits"
