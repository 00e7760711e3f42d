"""``lth recipe NAME --datasets``: bad names and filters exit 2 with one line naming the flag, the value and what
is allowed; the data check asks only for the kept pieces' files before anything trains; the JSON carries the kept
datasets. Only the last test trains (digits, a few iterations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lth.cli import main

SMALL = ["--levels", "1", "--replicates", "1"]  # the full recipe's pieces and datasets with fewer nodes


def lth(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run `lth` in-process; (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_dataset(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = lth(capsys, "recipe", "mode-connectivity", "--datasets", "mnist", "cifar100", "--root",
                       str(tmp_path / "r"), *SMALL)
    line = one_line(err)
    assert code == 2 and "--datasets" in line and "cifar100" in line and "allowed: cifar10, imagenet, mnist" in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("spec.json"))


def test_quick_mode_trains_on_digits(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = lth(capsys, "recipe", "lottery", "--quick", "--datasets", "mnist", "--root", str(tmp_path / "r"))
    line = one_line(err)
    assert code == 2 and "--datasets: bad value mnist" in line and "allowed: digits" in line


def test_list_takes_no_datasets(capsys: pytest.CaptureFixture) -> None:
    code, _, err = lth(capsys, "recipe", "list", "--datasets", "mnist")
    line = one_line(err)
    assert code == 2 and "--datasets: bad value mnist" in line and "allowed: with a recipe NAME" in line


@pytest.mark.parametrize("recipe", ["lottery", "mode-connectivity"])
def test_missing_mnist_is_named_cifar10_is_not_asked_for(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                         recipe: str) -> None:
    """An empty --data-dir: with --datasets mnist the one line names MNIST's missing files (before anything trains)
    and says nothing of CIFAR-10; without the filter the same command stops at CIFAR-10 (checked first)."""
    empty = tmp_path / "data"
    empty.mkdir()
    code, _, err = lth(capsys, "recipe", recipe, "--datasets", "mnist", "--data-dir", str(empty), "--root",
                       str(tmp_path / "r"), *SMALL)
    line = one_line(err)
    assert code == 2 and "mnist: files not found" in line and str(empty) in line and "cifar10" not in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("spec.json"))  # nothing trained
    code, _, err = lth(capsys, "recipe", recipe, "--data-dir", str(empty), "--root", str(tmp_path / "r"), *SMALL)
    assert code == 2 and "cifar10: files not found" in one_line(err)


def test_json_carries_the_kept_datasets(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = lth(capsys, "recipe", "lottery", "--quick", "--datasets", "digits", "--json", "--root",
                       str(tmp_path / "r"), "--levels", "1", "--replicates", "1", "--training-steps", "5it")
    assert code == 0
    doc = json.loads(out)
    assert doc["datasets"] == ["digits"]
    assert "test" in doc["verdict_basis"] and "replicate" in doc["verdict_basis"]  # what the verdicts rest on
    assert not any("left out" in s for s in doc["substitutions"])  # digits is every piece of the quick plan


def _fake_mnist(root: Path, train: int = 5100, test: int = 100) -> Path:
    """Random IDX files in MNIST's layout (enough training examples for lenet_300_100's 5,000 held out)."""
    import numpy as np

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (train, 28, 28)), ("train-labels-idx1-ubyte", (train,)),
                        ("t10k-images-idx3-ubyte", (test, 28, 28)), ("t10k-labels-idx1-ubyte", (test,))):
        data = rng.integers(0, 10 if len(shape) == 1 else 256, shape, dtype=np.uint8)
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        (raw / name).write_bytes(header + data.tobytes())
    return root


def test_a_rescaled_full_recipe_is_not_comparable(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    # --levels 1 --training-steps 2it: the "ticket at 3.5% density" row is a level-1 ticket after 2 iterations
    data = _fake_mnist(tmp_path / "data")
    code, out, err = lth(capsys, "recipe", "lottery", "--datasets", "mnist", *SMALL, "--training-steps", "2it",
                         "--data-dir", str(data), "--root", str(tmp_path / "r"), "--threads", "1", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert any(r["paper"] is not None for r in rows)
    assert not any(r["comparable"] for r in rows), rows
    with open(tmp_path / "r" / "report" / "paper_vs_lth.csv") as f:
        assert "True" not in f.read()
    page = (tmp_path / "r" / "report" / "index.html").read_text()
    assert "Mode: full, except the substitutions listed below" in page and "Mode: full (the paper" not in page


def test_without_root_each_recipe_has_its_own_store(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe's report draws every run under its root, so by default each recipe (and its --quick form) gets a
    folder of its own: ./runs/NAME-quick, or $LTH_ROOT/NAME-quick; other runs in ./runs stay out of it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LTH_ROOT", raising=False)
    small = ("--levels", "1", "--replicates", "1", "--training-steps", "5it", "--json")
    code, out, err = lth(capsys, "recipe", "lottery", "--quick", *small)
    assert code == 0, err
    assert Path(json.loads(out)["report"]) == (tmp_path / "runs" / "lottery-quick" / "report" / "index.html").resolve()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["lottery-quick"]
    monkeypatch.setenv("LTH_ROOT", str(tmp_path / "store"))
    code, out, err = lth(capsys, "recipe", "lottery", "--quick", *small)
    assert code == 0, err
    assert Path(json.loads(out)["report"]).parent.parent == (tmp_path / "store" / "lottery-quick").resolve()
