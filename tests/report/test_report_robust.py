"""`lth report` on stores a newcomer makes: a trunk alone, runs that differ in one flag, a damaged file, and a
rebuild that fails part-way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lth.report import build_report
from lth.report.sections import STUDY_SECTIONS
from tests.conftest import lth


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-level trunk and two training experiments that differ only in --training-steps."""
    root = tmp_path_factory.mktemp("store")
    assert lth("lottery", "--preset", "digits_mlp", "--levels", "2", "--training-steps", "1ep",
               "--root", str(root))[0] == 0
    for steps in ("1ep", "2ep"):
        assert lth("train", "--preset", "digits_mlp", "--training-steps", steps, "--root", str(root))[0] == 0
    return root


def test_trunk_only_store(store: Path, tmp_path: Path) -> None:
    trunk = next(store.glob("lottery_*"))
    shutil.copytree(trunk, tmp_path / trunk.name)
    code, out, err = lth("report", "--root", str(tmp_path))
    assert code == 0, err
    page = Path(out.strip()).read_text()
    assert 'src="accuracy_vs_density.png"' in page and 'src="accuracy_curves.png"' in page
    acc = pd.read_csv(tmp_path / "report" / "accuracy_vs_density.csv")
    assert set(acc["series"]) == {"IMP ticket"} and acc["level"].tolist() == [0, 1, 2]


def test_legends_name_the_differing_flag(store: Path, tmp_path: Path) -> None:
    code, _, err = lth("report", "--root", str(store), "-o", str(tmp_path / "out"))
    assert code == 0, err
    curves = pd.read_csv(tmp_path / "out" / "train_curves.csv")
    assert set(curves["label"]) == {"digits_mlp, training_steps=1ep", "digits_mlp, training_steps=2ep"}
    svg = (tmp_path / "out" / "train_curves.svg").read_text()  # text kept as text (svg.fonttype none)
    assert "training_steps=1ep" in svg and "training_steps=2ep" in svg


@pytest.mark.parametrize("name", ["metrics.csv", "done.json", "states/final.pt"])
def test_damaged_file_skips_one_run(store: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / "copy"
    shutil.copytree(store, root, ignore=shutil.ignore_patterns("report"))
    run = next(root.glob("lottery_*/replicate_0/level_1"))
    bad = run / name
    bad.write_bytes(bad.read_bytes()[:bad.stat().st_size // 2])
    code, _, err = lth("report", "--root", str(root), "--json")
    assert code == 0, err
    assert len(err.splitlines()) == 1 and str(bad) in err and f"run {run}:" in err
    listed = pd.read_csv(root / "report" / "runs.csv")
    assert str(run) not in set(listed["path"]) and len(listed) == 4  # levels 0 and 2, two training runs
    acc = pd.read_csv(root / "report" / "accuracy_vs_density.csv")
    assert acc["level"].tolist() == [0, 2]


def test_failed_rebuild_leaves_no_stale_page(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    first = build_report(store, out)
    assert first.index.is_file()

    def boom(*args: object) -> None:
        raise RuntimeError("injected failure while drawing")

    monkeypatch.setitem(STUDY_SECTIONS, "early_stopping", boom)
    with pytest.raises(RuntimeError, match="injected"):
        build_report(store, out)
    assert not first.index.exists()  # the old page is gone: it would show the new accuracy figure as its own
    assert (out / "accuracy_vs_density.png").is_file()
    monkeypatch.undo()
    again = build_report(store, out)
    assert again.index.is_file() and not list(out.glob(".index.html.*"))  # written whole, no temporary left
    for src in re.findall(r'src="([^"]+)"', again.index.read_text()):
        assert (out / src).is_file()
    assert json.loads(json.dumps(again.to_json()))["report"] == str(again.index)
