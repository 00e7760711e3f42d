"""The store tells the truth (#32): a planned run that is not in the store is named by ``lth status``, ``lth results``
and ``lth report`` (and their Python faces), never silently left out of a verdict; a ``--root`` inside a store is
refused naming the store's root; an empty store is one error for every command that reads a store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import lth

import lth.api as api
from lth.errors import UserError

TINY = ("--preset", "digits_mlp", "--model", "fc_8", "--levels", "2", "--replicates", "2", "--branches", "reinit",
        "--training-steps", "4it")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lottery: 2 replicates, levels 0-2, the reinit branch at levels 1-2 (10 runs)."""
    root = tmp_path_factory.mktemp("status") / "s"
    code, _, err = lth("lottery", *TINY, "--root", str(root))
    assert code == 0, err
    return root


@pytest.fixture
def store(trained: Path, tmp_path: Path) -> Path:
    """A copy of :func:`trained` this test may damage."""
    root = tmp_path / "s"
    shutil.copytree(trained, root, ignore=shutil.ignore_patterns("report"))
    return root


def test_the_plan_is_recorded(store: Path) -> None:
    (plan,) = (store / "plans").glob("*.json")
    doc = json.loads(plan.read_text())
    assert doc["command"] == "lottery" and plan.name.endswith("-lottery.json")
    runs = {r["path"]: r for r in doc["runs"]}
    assert len(runs) == 10 and all((store / p / "done.json").is_file() for p in runs)
    (exp,) = {Path(p).parts[0] for p in runs}
    level2 = runs[f"{exp}/replicate_1/level_2"]
    assert (level2["kind"], level2["what"], level2["replicate"], level2["level"]) == ("lottery", "trunk level 2", 1, 2)
    assert level2["parents"] == [f"{exp}/replicate_1/level_0", f"{exp}/replicate_1/level_1"]
    branch = next(r for r in runs.values() if r["kind"] == "branch")
    assert branch["what"].startswith("branch reinit level ") and branch["branch"] == "reinit"
    code, out, err = lth("status", "--root", str(store))
    assert code == 0 and out.strip() == f"{store}: all 10 planned runs are present", (out, err)
    code, _, err = lth("lottery", *TINY, "--root", str(store))  # the same command again: nothing trained or written
    assert code == 0 and list((store / "plans").iterdir()) == [plan], err
    code, _, err = lth("lottery", *TINY[:-1], "5it", "--root", str(store))  # another graph: its own plan
    assert code == 0 and len(list((store / "plans").iterdir())) == 2, err


def test_a_deleted_level_is_named_by_status_results_and_report(store: Path) -> None:
    """The issue's case: one level's run folder deleted by hand. The report used to say "N runs, N complete", and
    the level's verdict silently moved to the replicates left."""
    gone = next(store.glob("lottery_*/replicate_1/level_2"))
    shutil.rmtree(gone)
    code, out, err = lth("status", "--root", str(store))
    assert code == 1, err
    assert str(gone) in out and "trunk level 2" in out and "missing" in out
    assert "1 of 10 planned runs are not in the store (1 missing)" in out
    code, out, err = lth("status", "--root", str(store), "--json")
    doc = json.loads(out)
    assert code == 1 and (doc["planned"], doc["present"], doc["complete"]) == (10, 9, False)
    assert [(m["path"], m["status"], m["level"], m["replicate"]) for m in doc["missing"]] == [(str(gone), "missing",
                                                                                             2, 1)]
    assert [(g["kind"], g["level"], g["planned"], g["present"], g["replicates_missing"]) for g in doc["shortfalls"]] \
        == [("lottery", 2, 2, 1, [1])]
    assert api.status(store) == doc

    code, out, err = lth("results", "--root", str(store), "--json")
    assert code == 0 and str(gone) in err and "warning" in err
    res = json.loads(out)
    assert (res["planned"], res["present"]) == (10, 9) and res["missing"] == doc["missing"]
    code, csv, err = lth("results", "--root", str(store), "--csv")
    assert code == 0 and str(gone) in err and str(gone) not in csv
    assert api.results(store).attrs["missing"] == doc["missing"]

    code, out, err = lth("report", "--root", str(store), "--json")
    assert code == 0 and str(gone) in err
    rep = json.loads(out)
    assert rep["missing"] == doc["missing"] and rep["shortfalls"] == doc["shortfalls"]
    page = Path(rep["report"]).read_text()
    assert 'class="warn"' in page and str(gone) in page and "9 of 10 planned runs present" in page
    assert "IMP level 2: 1 of 2 present (replicate 1 not in the store)" in page
    matching = (store / "report" / "matching.csv").read_text().splitlines()
    assert matching[0].split(",")[-1] == "planned" and matching[-1].startswith("0it,2,")  # level 2: count 1 of 2
    level2 = dict(zip(matching[0].split(","), matching[-1].split(","), strict=True))
    assert (level2["count"], level2["planned"]) == ("1", "2")


def test_unfinished_failed_blocked_and_damaged_runs_are_told_apart(store: Path) -> None:
    from lth.store import RunDir
    from lth.store.plans import mark_failed

    level1 = next(store.glob("lottery_*/replicate_0/level_1"))
    level2 = level1.parent / "level_2"
    branch1 = next(store.glob("lottery_*/replicate_0/branch_reinit_*/level_1"))
    other2 = next(store.glob("lottery_*/replicate_1/level_2"))
    shutil.rmtree(level2)  # its parent failed: blocked
    RunDir(level1).drop_done()
    mark_failed(level1, "RuntimeError: injected")
    RunDir(other2).drop_done()  # spec.json, no done marker: interrupted
    (branch1 / "metrics.csv").write_text("iteration,test_accuracy\n4,0.")  # cut mid-line: damaged
    doc = api.status(store)
    got = {m["path"]: m["status"] for m in doc["missing"]}
    assert got == {str(level1): "failed", str(level2): "blocked", str(other2): "unfinished",
                   str(branch1): "damaged"}
    assert next(m for m in doc["missing"] if m["status"] == "failed")["error"] == "RuntimeError: injected"
    assert doc["present"] == 6 and not doc["complete"]


def test_one_plan_file_per_invocation(tmp_path: Path) -> None:
    """An executor that runs several graphs (a recipe's pieces) writes one plan file holding them all."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "executor"))
    from cluster_cases import OPTIONS, failing_graph

    from lth.executor import LocalExecutor

    root = tmp_path / "s"
    g = failing_graph(root, tmp_path / "attempts.log")
    ex = LocalExecutor(options=OPTIONS, plan_root=root, command="two")
    ex.run([g["good"]])
    ex.run([g["alone"]])
    (plan,) = (root / "plans").glob("*.json")
    assert sorted(r["path"] for r in json.loads(plan.read_text())["runs"]) == ["alone", "good", "p"]


@pytest.mark.parametrize("command", ["results", "report", "status"])
def test_a_root_inside_a_store_names_the_store_root(trained: Path, command: str) -> None:
    """A run folder, a replicate folder or an experiment folder as --root (results and report crashed with
    IndexError: tuple index out of range): one line, exit 2, naming the store's root to give."""
    level = next(trained.glob("lottery_*/replicate_0/level_1"))
    for inside in (level, level.parent, level.parent.parent, level / "states"):
        code, out, err = lth(command, "--root", str(inside))
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith(f"lth: error: --root '{inside}': a folder inside the store {trained}")
        assert err.strip().endswith(f"allowed: the store's root: --root {trained}")
    with pytest.raises(UserError, match=r"^root .*allowed: the store's root: root "):
        api.results(level)


def test_an_empty_store_is_one_error_for_every_reader(tmp_path: Path) -> None:
    """``lth results --csv`` on an empty store printed nothing (not even a header) and exited 0 while ``lth
    report`` exited 2: every command that reads a store now exits 2 with the same line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    lines = set()
    for argv in (["results"], ["results", "--csv"], ["results", "--json"], ["report"], ["status"]):
        code, out, err = lth(*argv, "--root", str(empty))
        assert code == 2 and out == "" and len(err.splitlines()) == 1, (argv, err)
        lines.add(err)
    (line,) = lines
    assert line.startswith(f"lth: error: --root '{empty}': no runs in this store")
    assert not (empty / "report").exists()
