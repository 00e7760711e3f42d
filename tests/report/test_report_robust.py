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
    code, out, err = lth("report", "--root", str(root), "--json")
    assert code == 0, err
    skipped, account = err.splitlines()  # the damaged file, then the planned run it takes out of the report
    assert str(bad) in skipped and f"run {run}:" in skipped
    assert f"{run} (trunk level 1, replicate 0: damaged)" in account
    assert [(m["path"], m["status"]) for m in json.loads(out)["missing"]] == [(str(run), "damaged")]
    listed = pd.read_csv(root / "report" / "runs.csv")
    assert str(run) not in set(listed["path"]) and len(listed) == 4  # levels 0 and 2, two training runs
    acc = pd.read_csv(root / "report" / "accuracy_vs_density.csv")
    assert acc["level"].tolist() == [0, 2]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_rebuild_leaves_the_previous_report_whole(store: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, error: type) -> None:
    """A rebuild that fails or is interrupted (Ctrl-C) part-way leaves the previous report as it was, page and
    figures (it used to delete index.html first and leave new and old figures mixed); the next build replaces it
    whole, with no temporary folder left."""
    out = tmp_path / "out"
    first = build_report(store, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first.index.is_file() and Path("accuracy_vs_density.png") in before

    def boom(*args: object) -> None:
        raise error("injected failure while drawing")

    monkeypatch.setitem(STUDY_SECTIONS, "early_stopping", boom)  # after the accuracy figure is drawn
    with pytest.raises(error, match="injected"):
        build_report(store, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the half-built folder is gone
    monkeypatch.undo()
    again = build_report(store, out)
    assert again.index.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    for src in re.findall(r'src="([^"]+)"', again.index.read_text()):
        assert (out / src).is_file()
    assert json.loads(json.dumps(again.to_json()))["report"] == str(again.index)
    assert all(Path(p).parent == out for p in again.figures + again.tables)


def test_a_swap_cut_between_its_renames_is_put_back(store: Path, tmp_path: Path) -> None:
    """Interrupted between renaming the old report aside and the new one in: the next build finds the old one
    aside and puts it back before building."""
    out = tmp_path / "out"
    build_report(store, out)
    out.rename(tmp_path / ".out.old-12345678")
    again = build_report(store, out)
    assert again.index.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_holding_other_files_is_refused(store: Path, tmp_path: Path) -> None:
    """The report replaces its folder whole: a folder holding other files is refused in one line (exit 2) and
    left alone."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = lth("report", "--root", str(store), "-o", str(out))
    assert code == 2 and err.startswith("lth: error: -o ") and "not an lth report" in err and len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
