"""Reading a store as library functions (``lth.studies.report``): the report, results, runs, presets, one run's
state and ticket; each equals what its command prints, and errors name the field per face."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import lth

import lth.api as api
from lth.errors import UserError
from lth.studies.report import (
    ReportOptions,
    presets,
    presets_frame,
    report,
    results,
    results_document,
    run_dir,
    runs,
    state,
    ticket,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    code, _, err = lth("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "4it", "--root",
                       str(root))
    assert code == 0, err
    return root


def test_results_equal_the_command(store: Path) -> None:
    code, out, _ = lth("results", "--root", str(store), "--json")
    assert code == 0 and results_document(results(store)) == json.loads(out)
    code, out, _ = lth("results", "--root", str(store))
    assert code == 0 and out == results(store).to_csv(index=False, lineterminator="\n")
    pd.testing.assert_frame_equal(api.results(store), results(store))
    assert len(runs(store)) == 2 and set(runs(store)["level"]) == {0, 1}
    pd.testing.assert_frame_equal(api.runs(store), runs(store))


def test_report_equals_the_command(store: Path, tmp_path: Path) -> None:
    code, out, err = lth("report", "--root", str(store), "-o", str(tmp_path / "cli"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    mine = report(ReportOptions.from_values(root=str(store), out=str(tmp_path / "py"))).to_json()
    assert set(mine) == set(doc) == {"report", "figures", "tables", "planned", "present", "missing", "shortfalls"}
    assert doc["planned"] == doc["present"] == 2 and doc["missing"] == doc["shortfalls"] == []
    assert [Path(p).name for p in mine["figures"]] == [Path(p).name for p in doc["figures"]]
    assert Path(mine["report"]) == tmp_path / "py" / "index.html" and Path(mine["report"]).is_file()
    assert api.report(store, out=tmp_path / "api")["report"] == str(tmp_path / "api" / "index.html")


def test_report_errors_name_the_field_per_face(store: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as e:
        report(ReportOptions.from_values(root=str(store), out=str(tmp_path / "notes.txt" / "x")))
    assert str(e.value).startswith("--out ") and "notes.txt is a file; allowed: a folder" in str(e.value)
    with pytest.raises(UserError, match=r"^out '.*notes.txt/x': .*notes.txt is a file"):
        api.report(store, out=tmp_path / "notes.txt" / "x")
    with pytest.raises(UserError, match=r"^root '.*typo': no such store directory$"):
        api.report(tmp_path / "typo")
    with pytest.raises(UserError, match=r"^unknown keyword argument 'ot' \(did you mean 'out'\?\); allowed: root, out"):
        api.report(store, ot=tmp_path / "x")
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "typo").exists()


def test_presets_equal_the_command() -> None:
    code, out, _ = lth("presets", "--json")
    assert code == 0 and presets().to_json() == json.loads(out)
    frame = presets_frame()
    assert list(frame.columns) == ["name", "note", "spec"] and "digits_mlp" in set(frame["name"])
    pd.testing.assert_frame_equal(api.presets(), frame)
    code, out, _ = lth("presets")
    assert out.splitlines()[0].split()[0] == frame["name"].iloc[0]


def test_state_and_ticket_of_a_run(store: Path) -> None:
    table = runs(store)
    dense = table[table["level"] == 0]["path"].iloc[0]
    pruned = table[table["level"] == 1]["path"].iloc[0]
    weights, mask = ticket(pruned)
    init = state(pruned, "init")
    assert set(mask) <= set(weights) and all(v.dtype.is_floating_point for v in weights.values())
    for name, m in mask.items():
        assert (weights[name][~m] == 0).all() and (weights[name][m] == init[name][m]).all()
    assert run_dir(dense).path == Path(dense)
    with pytest.raises(UserError, match=r"^run '.*': trained without a mask"):
        api.ticket(dense)
    with pytest.raises(UserError) as e:
        state(dense, "7it")
    assert str(e.value).startswith("state '7it': run ") and "allowed: " in str(e.value)
    with pytest.raises(UserError, match=r"^run '.*typo': not a run directory"):
        api.state(store / "typo")


def test_a_missing_store_is_named_not_read_as_empty(tmp_path: Path) -> None:
    for call in (lambda: results(tmp_path / "typo"), lambda: runs(tmp_path / "typo")):
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value).startswith("--root ") and e.value.for_face("api").render().startswith("root ")
